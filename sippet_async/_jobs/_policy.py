"""One bulk item's lifecycle, with no I/O: named stages and a pure transition function.

``step(item, event, rules, job)`` returns the item's next state and what to do next; the
bulk job (``_bulk``) does it (sends, looks up, waits, journals) and reports back with the
next event. Like ``_walk`` this module never awaits, so the property tests drive these very
rules. The rule the package is built on, *never send a write twice when it may have
executed* (docs/protocol.md §12.5), lives in one function, ``_send_or_resolve``.

```
NEW ──begin──▶ (in doubt? ─▶ CHECKING) ─▶ SENDING ──sent──────────────▶ SETTLED succeeded
                                            ├─ unknown ─▶ RECONCILING ──found──▶ SETTLED
                                            │               └ absent ─▶ SENDING (again)
                                            ├─ retryable ─▶ SET_ASIDE ──begin──▶ WAITING
                                            │                                     └ ─▶ ...
                                            └─ final ─────────────────▶ SETTLED failed
```

An item is *in doubt* when it may have executed: an earlier run left it ``started`` or
``unknown`` in the journal, or a send of this run ended in ``OutcomeUnknownError``. Only a
lookup (``reconcile``) that finds it absent clears the doubt. Otherwise an item in doubt
is re-sent blind only if sending twice is harmless (a read, or ``idempotent=True``) and
the doubt is an earlier run's: within this run the request engine has already retried it
as far as its policy allows.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import Final, Literal

from sippet_async._jobs._state import REDRIVES, SENDING, JobState

__all__ = ["MAX_RECONCILE_ROUNDS", "NEW_ITEM", "Act", "Action", "Doubt", "Event", "ItemState",
           "Rules", "Stage", "Why", "admit", "step"]

# Each unknown outcome costs one lookup and at most one re-send per round. Rounds only end
# early when a lookup finds the record, so a generous bound costs nothing in the common case
# and keeps a job from giving up while an ambiguous failure rate of ~10% persists.
MAX_RECONCILE_ROUNDS: Final = 10


class Stage(enum.Enum):
    """Where one item stands."""

    NEW = "new"  # taken from the input; nothing done yet in this run
    CHECKING = "checking"  # in doubt before a send: looking it up first
    SENDING = "sending"  # a send is in flight
    RECONCILING = "reconciling"  # a send of this run may have executed: looking it up
    SET_ASIDE = "set_aside"  # retries ran out (or a lookup failed) for now: redrive later
    WAITING = "waiting"  # re-driven during an outage: waiting for the server to answer
    SETTLED = "settled"  # its one outcome is decided


class Doubt(enum.Enum):
    """Whether the item may have executed, and since when."""

    NONE = "none"  # never sent, or a lookup proved it absent
    EARLIER_RUN = "earlier_run"  # the journal says an earlier run may have sent it
    THIS_RUN = "this_run"  # a send of this run may have executed


class Event(enum.Enum):
    """What the job reports back after doing an action (or to start one)."""

    BEGIN = "begin"  # a worker takes the item (from the input, or for its redrive)
    SENT = "sent"  # the send succeeded
    SEND_UNKNOWN = "send_unknown"  # OutcomeUnknownError: it may have executed
    SEND_RETRYABLE = "send_retryable"  # 429/5xx/connection, retries ran out; not executed
    SEND_OUTAGE = "send_outage"  # the same, on a connection while the breaker is open
    SEND_FAILED = "send_failed"  # a definite error: it did not execute
    FOUND = "found"  # the lookup found the record
    ABSENT = "absent"  # the lookup proved it absent
    LOOKUP_FAILED = "lookup_failed"  # the lookup itself failed for good
    LOOKUP_BUSY = "lookup_busy"  # the lookup failed for now (429, 5xx, connection)
    REACHABLE = "reachable"  # the server answers again
    UNREACHABLE = "unreachable"  # it stayed unreachable for redrive_wait seconds
    BAD_REQUEST = "bad_request"  # the caller's request= failed on this item
    CUT_OFF = "cut_off"  # cancelled mid-flight by interrupt() or by closing the job
    RELEASED = "released"  # set aside, but the job will not redrive: settle as it stands


class Act(enum.Enum):
    """What to do next."""

    SEND = "send"  # run the action (write the journal's "started" line first if ``mark``)
    LOOKUP = "lookup"  # run reconcile
    WAIT = "wait"  # wait for the server to answer again (redrive_wait)
    DEFER = "defer"  # set it aside for the redrive pass
    SETTLE = "settle"  # report ``status``; ``why`` says which data or error goes with it


class Why(enum.Enum):
    """Which data or error a settled outcome carries."""

    SENT = "sent"  # the send's data
    FOUND = "found"  # the lookup's data (reconciled)
    ERROR = "error"  # the last error seen
    EARLIER_RUN = "earlier_run"  # in doubt from an earlier run; reconcile= would resolve it
    UNREACHABLE = "unreachable"  # redrive_wait ran out
    STOPPED = "stopped"  # not sent: job.stopped_by
    INTERRUPTED = "interrupted"  # cut off mid-flight; its journal line stays "started"


Settled = Literal["succeeded", "failed", "unknown", "not_sent"]


@dataclass(frozen=True, slots=True)
class Action:
    """One thing to do. ``mark``: record "started" before sending; ``cause``: the retry
    cause to count for this send; ``status``/``why``: the outcome to settle."""

    act: Act
    mark: bool = False
    cause: str | None = None
    status: Settled | None = None
    why: Why | None = None


@dataclass(frozen=True, slots=True)
class Rules:
    """What a job allows, fixed when it starts."""

    reconcile: bool  # a lookup can tell whether an item that may have executed did
    resend_safe: bool  # sending twice is harmless: a read, or idempotent=True
    redrive: bool  # retryable failures get one more pass at the end
    journal: bool  # items are recorded "started" before they are first sent
    max_rounds: int = MAX_RECONCILE_ROUNDS


@dataclass(frozen=True, slots=True)
class ItemState:
    """One item's state. ``earlier``: the journal left it in doubt; ``rounds``: lookups
    that found it absent in this pass; ``marked``: its "started" line is written;
    ``lookup_failed``: it was set aside because a lookup failed, so if it is never sent
    again it is reported ``unknown`` (it may have executed), not ``failed``."""

    stage: Stage = Stage.NEW
    doubt: Doubt = Doubt.NONE
    earlier: bool = False
    attempts: int = 0
    rounds: int = 0
    marked: bool = False
    redriven: bool = False
    lookup_failed: bool = False
    status: Settled | None = None


NEW_ITEM: Final = ItemState()
_LOOKUP: Final = Action(Act.LOOKUP)
_WAIT: Final = Action(Act.WAIT)
_DEFER: Final = Action(Act.DEFER)


def admit(previous: str | None) -> ItemState | None:
    """The state of an item taken from the input, given its journal status from an earlier
    run (None if none); None when that run succeeded: the item is ``skipped``."""
    if previous == "succeeded":
        return None
    if previous in ("started", "unknown"):
        return ItemState(earlier=True)
    return NEW_ITEM


def step(item: ItemState, event: Event, rules: Rules, job: JobState) -> tuple[ItemState, Action]:
    """The item's next state and what to do, after ``event``, in a job in state ``job``.

    Raises:
        ValueError: ``event`` cannot happen in the item's stage.
    """
    stage = item.stage
    if stage is Stage.SETTLED:
        raise ValueError(f"item already settled ({item.status}); got {event.name}")
    if event is Event.CUT_OFF:
        return _settle(item, "unknown", Why.INTERRUPTED)
    if event is Event.BAD_REQUEST:
        return _settle(item, "failed", Why.ERROR)
    if event is Event.BEGIN and stage in (Stage.NEW, Stage.SET_ASIDE):
        return _begin(item, rules, job)
    if event is Event.RELEASED and stage is Stage.SET_ASIDE:
        return _settle(item, _unsent(item), Why.ERROR)
    if stage is Stage.SENDING:
        return _sent(item, event, rules, job)
    if stage in (Stage.CHECKING, Stage.RECONCILING):
        return _looked_up(item, event, rules, job)
    if stage is Stage.WAITING:
        if event is Event.REACHABLE:
            return _send_or_resolve(item, rules, job)
        if event is Event.UNREACHABLE:
            return _settle(item, _unsent(item), Why.UNREACHABLE)
    raise ValueError(f"{event.name} cannot happen to an item in stage {stage.name}")


def _begin(item: ItemState, rules: Rules, job: JobState) -> tuple[ItemState, Action]:
    if job is JobState.INTERRUPTING:  # interrupt() came before this item was started
        return _settle(item, "unknown", Why.INTERRUPTED)
    if job not in SENDING:  # abort(): read, never sent; no journal line, a later run sends it
        return _settle(item, "not_sent", Why.STOPPED)
    doubt = item.doubt
    if doubt is Doubt.NONE and item.earlier:
        doubt = Doubt.EARLIER_RUN  # the journal's word holds for every pass
    if item.stage is Stage.SET_ASIDE:  # the redrive: the server must answer first
        return replace(item, stage=Stage.WAITING, doubt=doubt, rounds=0, redriven=True), _WAIT
    return _send_or_resolve(replace(item, doubt=doubt, rounds=0), rules, job)


def _send_or_resolve(
    item: ItemState, rules: Rules, job: JobState, cause: str | None = None
) -> tuple[ItemState, Action]:
    """Send the item, unless it may have executed: THE rule of docs/protocol.md §12.5.

    The only way to ``Act.SEND``. An item in doubt is looked up first when a lookup is
    possible; without one it is re-sent only when sending twice is harmless and the doubt
    is an earlier run's, else it is settled ``unknown`` and never sent again.
    """
    if item.doubt is not Doubt.NONE:
        if rules.reconcile:
            return replace(item, stage=Stage.CHECKING), _LOOKUP
        if not (rules.resend_safe and item.doubt is Doubt.EARLIER_RUN):
            why = Why.EARLIER_RUN if item.doubt is Doubt.EARLIER_RUN else Why.ERROR
            return _settle(item, "unknown", why)
    if job not in SENDING:  # abort() while this item waited (a lookup, the server)
        return _settle(item, "not_sent", Why.STOPPED)
    mark = rules.journal and not item.marked  # on record before it can leave
    sending = replace(item, stage=Stage.SENDING, attempts=item.attempts + 1,
                      marked=item.marked or rules.journal)
    return sending, Action(Act.SEND, mark=mark, cause=cause)


def _sent(item: ItemState, event: Event, rules: Rules, job: JobState) -> tuple[ItemState, Action]:
    if event is Event.SENT:
        return _settle(item, "succeeded", Why.SENT)
    if event is Event.SEND_UNKNOWN:
        if not rules.reconcile:
            return _settle(item, "unknown", Why.ERROR)
        return replace(item, stage=Stage.RECONCILING, doubt=Doubt.THIS_RUN), _LOOKUP
    if event is Event.SEND_OUTAGE and item.redriven:
        # The outage is not over: wait for an answer, then send it again (it provably did
        # not execute, so it may go again).
        return replace(item, stage=Stage.WAITING), _WAIT
    if event in (Event.SEND_RETRYABLE, Event.SEND_OUTAGE):
        return _defer_or(item, rules, job, "failed")
    if event is Event.SEND_FAILED:
        return _settle(item, "failed", Why.ERROR)
    raise ValueError(f"{event.name} cannot happen to an item in stage {item.stage.name}")


def _looked_up(
    item: ItemState, event: Event, rules: Rules, job: JobState
) -> tuple[ItemState, Action]:
    if event is Event.FOUND:
        return _settle(item, "succeeded", Why.FOUND)
    if event is Event.ABSENT:
        rounds = item.rounds + 1
        cleared = replace(item, doubt=Doubt.NONE, rounds=rounds)
        if item.stage is Stage.CHECKING:  # looked before sending: a first send, not a retry
            return _send_or_resolve(cleared, rules, job)
        if rounds >= rules.max_rounds:
            return _settle(item, "unknown", Why.ERROR)
        return _send_or_resolve(cleared, rules, job, cause="resend_after_reconcile")
    if event is Event.LOOKUP_BUSY:  # the redrive pass starts with the lookup again
        return _defer_or(replace(item, lookup_failed=True), rules, job, "unknown")
    if event is Event.LOOKUP_FAILED:
        return _settle(item, "unknown", Why.ERROR)
    raise ValueError(f"{event.name} cannot happen to an item in stage {item.stage.name}")


def _defer_or(
    item: ItemState, rules: Rules, job: JobState, status: Settled
) -> tuple[ItemState, Action]:
    """Set the item aside for the redrive pass if it may still have one, else settle it."""
    if rules.redrive and not item.redriven and job in REDRIVES:
        return replace(item, stage=Stage.SET_ASIDE), _DEFER
    return _settle(item, status, Why.ERROR)


def _unsent(item: ItemState) -> Settled:
    """How an item that was not sent again ends: ``unknown`` if a lookup failed on it."""
    return "unknown" if item.lookup_failed else "failed"


def _settle(item: ItemState, status: Settled, why: Why) -> tuple[ItemState, Action]:
    return replace(item, stage=Stage.SETTLED, status=status), Action(
        Act.SETTLE, status=status, why=why
    )
