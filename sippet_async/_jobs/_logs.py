"""Log levels inside a bulk job: the job, not the request, has an item's last word.

The client logs a write whose outcome is unknown (it may have executed, docs/protocol.md
§12.5) as a WARNING: a caller of ``run`` has to act on it. Inside a bulk job or a call
worker that is not the end of the item: with ``reconcile`` it is looked up, then found or
safely sent again. So there the client's line is logged at INFO, and the job logs a WARNING
for each item that *ends* ``unknown`` (``_items``): a 20k-row import whose doubts were all
resolved logs none.

The job's worker tasks are started inside ``job_logs()`` and inherit its context variable;
a filter on the package's logger reads it. (The client's own module decides its levels;
this is the seam the jobs layer has without reaching into it.)
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Final

__all__ = ["job_logs"]

log: Final = logging.getLogger("sippet_async")

# The client's line for an unknown outcome (``SippetClient._ended``); the test of this
# module fails if it is reworded.
_CLIENT_UNKNOWN: Final = "%s: outcome unknown after attempt"

_IN_JOB: Final[ContextVar[bool]] = ContextVar("sippet_async_in_job", default=False)


@contextlib.contextmanager
def job_logs() -> Iterator[None]:
    """Tasks created in this block are a job's: an unknown outcome there is logged at INFO."""
    token = _IN_JOB.set(True)
    try:
        yield
    finally:
        _IN_JOB.reset(token)


class _JobHasTheLastWord(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING and _IN_JOB.get() \
                and isinstance(record.msg, str) and record.msg.startswith(_CLIENT_UNKNOWN):
            record.levelno, record.levelname = logging.INFO, logging.getLevelName(logging.INFO)
        return True


if not any(isinstance(f, _JobHasTheLastWord) for f in log.filters):  # once, even if reloaded
    log.addFilter(_JobHasTheLastWord())
