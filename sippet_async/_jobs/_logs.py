"""Log levels inside a bulk job: the job, not the request, has an item's last word.

The client logs a write whose outcome is unknown (it may have executed, docs/protocol.md
§12.5) as a WARNING: a caller of ``run`` has to act on it. Inside a bulk job or a call
worker that is not the end of the item: with ``reconcile`` it is looked up, then found or
safely sent again. So there the client logs that line at INFO, and the job logs a WARNING
for each item that *ends* ``unknown`` (``_items``): a 20k-row import whose doubts were all
resolved logs none.

The job's worker tasks are started inside ``job_logs()`` and inherit its context variable
(``_runner.ON_BEHALF_OF_A_JOB``), which the client reads.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sippet_async._runner import ON_BEHALF_OF_A_JOB

__all__ = ["job_logs"]


@contextlib.contextmanager
def job_logs() -> Iterator[None]:
    """Tasks created in this block are a job's: an unknown outcome there is logged at INFO."""
    token = ON_BEHALF_OF_A_JOB.set(True)
    try:
        yield
    finally:
        ON_BEHALF_OF_A_JOB.reset(token)
