"""The state of a whole job, one enum and its transition table (sans-I/O).

```
            stop            abort            interrupt          close
RUNNING   ─▶ STOPPING     ─▶ ABORTING       ─▶ INTERRUPTING   ─▶ CLOSING ─▶ CLOSED
REDRIVING ─▶ STOPPING     ─▶ ABORTING       ─▶ INTERRUPTING   ─▶ CLOSING
STOPPING  ─▶ (stays)      ─▶ ABORTED        ─▶ INTERRUPTING   ─▶ CLOSING
ABORTING  ─▶ ABORTED      ─▶ (stays)        ─▶ INTERRUPTING   ─▶ CLOSING
ABORTED   ─▶ (stays)      ─▶ (stays)        ─▶ INTERRUPTING   ─▶ CLOSING
INTERRUPTING (stays)        (stays)           (stays)         ─▶ CLOSING
```

RUNNING becomes REDRIVING once the input has ended and nothing is in flight but items set
aside for the one redrive pass. ``abort`` on a job made with ``report_unsent=False`` is
``abort`` then ``stop``. CLOSING ignores every event but ``closed``; CLOSED is final.
What each state allows (pull input, send, redrive) is read from the groups below, never
from separate flags.
"""

from __future__ import annotations

import enum
from typing import Final

__all__ = ["PULLING", "REDRIVES", "SENDING", "STOP_REQUESTED", "JobEvent", "JobState",
           "next_state"]


class JobState(enum.Enum):
    """Where a job stands; see the module docstring for the table."""

    RUNNING = "running"  # take input, send, set failures aside for the redrive pass
    REDRIVING = "redriving"  # the input has ended: the items set aside go once more
    STOPPING = "stopping"  # stop(): no more input; what was taken finishes
    ABORTING = "aborting"  # abort(): nothing more is sent; the rest is read, reported unsent
    ABORTED = "aborted"  # abort() and stop(): nothing more is sent, nothing more is read
    INTERRUPTING = "interrupting"  # interrupt(): what is in flight is cut off, reported
    CLOSING = "closing"  # the caller left: workers are cancelled, the journal closes
    CLOSED = "closed"  # nothing runs any more

    # Members are singletons compared by identity, so identity hashing is exact; Enum's own
    # hashes the name in Python, and the bulk job hashes the state twice an item (its
    # remembered steps: the register of speed shortcuts).
    __hash__ = object.__hash__


class JobEvent(enum.Enum):
    """What moves a job from one state to the next."""

    INPUT_DONE = "input_done"  # input ended, nothing in flight, items set aside
    STOP = "stop"
    ABORT = "abort"
    INTERRUPT = "interrupt"
    CLOSE = "close"
    CLOSED = "closed"


_S = JobState
_E = JobEvent

TRANSITIONS: Final[dict[tuple[JobState, JobEvent], JobState]] = {
    (_S.RUNNING, _E.INPUT_DONE): _S.REDRIVING,
    (_S.RUNNING, _E.STOP): _S.STOPPING,
    (_S.RUNNING, _E.ABORT): _S.ABORTING,
    (_S.RUNNING, _E.INTERRUPT): _S.INTERRUPTING,
    (_S.REDRIVING, _E.STOP): _S.STOPPING,
    (_S.REDRIVING, _E.ABORT): _S.ABORTING,
    (_S.REDRIVING, _E.INTERRUPT): _S.INTERRUPTING,
    (_S.STOPPING, _E.ABORT): _S.ABORTED,
    (_S.STOPPING, _E.INTERRUPT): _S.INTERRUPTING,
    (_S.ABORTING, _E.STOP): _S.ABORTED,
    (_S.ABORTING, _E.INTERRUPT): _S.INTERRUPTING,
    (_S.ABORTED, _E.INTERRUPT): _S.INTERRUPTING,
    **{(state, _E.CLOSE): _S.CLOSING for state in JobState if state is not _S.CLOSED},
    (_S.CLOSING, _E.CLOSED): _S.CLOSED,
}

# What each state allows. Tuples, not sets: ``in`` then compares by identity, where a set
# would call Enum.__hash__, a Python function, several times per item.
# Workers take input from the source (after abort() only to report each item unsent).
PULLING: Final = (_S.RUNNING, _S.REDRIVING, _S.ABORTING)
# An item that has been taken may be sent.
SENDING: Final = (_S.RUNNING, _S.REDRIVING, _S.STOPPING)
# Failures may be set aside, and set-aside items re-driven.
REDRIVES: Final = (_S.RUNNING, _S.REDRIVING)
# stop() was called: a wait inside the input ends quietly instead of failing.
STOP_REQUESTED: Final = (_S.STOPPING, _S.ABORTED, _S.INTERRUPTING)


def next_state(state: JobState, event: JobEvent) -> JobState:
    """The state after ``event``; a pair missing from the table leaves the state as is."""
    return TRANSITIONS.get((state, event), state)
