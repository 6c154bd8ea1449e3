"""One bulk item's lifecycle, with no I/O: named stages and a pure transition function.

``step(item, event, rules, job)`` returns the item's next state and what to do next; the
bulk job's driver (``_items``) does it (sends, looks up, waits, journals) and reports back
with the next event. Like ``_walk`` this module never awaits, so the property tests drive
these very rules. The rule the package is built on, *never send a write twice when it may
have executed* (docs/protocol.md §12.5), lives in one function, ``_send_or_resolve``.

```
new ──begin──▶ sending ──sent──────────────────────────────▶ settled succeeded
 │ in doubt      ├─ send_unknown ─▶ reconciling ──found──────▶ settled succeeded
 ▼               │                   ├─ absent ─▶ sending (again, max_rounds)
checking         │                   └─ lookup_busy ─▶ set_aside
 ├─ found ─▶ settled succeeded
 └─ absent ─▶ sending
                 ├─ send_retryable ─▶ set_aside ──begin──▶ waiting ──reachable──▶ (as new)
                 └─ send_failed ──────────────────────────▶ settled failed
```
Any stage ──cut_off──▶ settled unknown; a job that no longer sends settles an item
``not_sent`` before it would be sent; ``set_aside`` ──released──▶ settled as it stands.

An item is *in doubt* when it may have executed: an earlier run left it ``started`` or
``unknown`` in the journal, or a send of this run ended in ``OutcomeUnknownError``. Only a
lookup (``reconcile``) that finds it absent clears the doubt. Otherwise an item in doubt
is re-sent blind only if sending twice is harmless (a read, or ``idempotent=True``) and
the doubt is an earlier run's: within this run the request engine has already retried it
as far as its policy allows.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

import msgspec

from sippet_async._jobs._state import REDRIVES, SENDING, JobState

replace: Final = msgspec.structs.replace

__all__ = ["MAX_RECONCILE_ROUNDS", "NEW_ITEM", "Act", "Action", "Doubt", "Event", "ItemState",
           "Rules", "Stage", "Why", "admit", "step", "stepper"]

# Each unknown outcome costs one lookup and at most one re-send per round. Rounds only end
# early when a lookup finds the record, so a generous bound costs nothing in the common case
# and keeps a job from giving up while an ambiguous failure rate of ~10% persists.
MAX_RECONCILE_ROUNDS: Final = 10


# The names of this module are string literals, like an outcome's ``status``: mypy checks
# every comparison with them (--strict-equality catches a misspelt one), and a step makes
# a dozen of them per item, where reading an Enum member off its class costs ~80 ns each
# on Python 3.11.

# Where one item stands.
Stage = Literal[
    "new",  # taken from the input; nothing done yet in this run
    "checking",  # in doubt before a send: looking it up first
    "sending",  # a send is in flight
    "reconciling",  # a send of this run may have executed: looking it up
    "set_aside",  # retries ran out (or a lookup failed) for now: redrive later
    "waiting",  # re-driven during an outage: waiting for the server to answer
    "settled",  # its one outcome is decided
]

# Whether the item may have executed, and since when.
Doubt = Literal[
    "none",  # never sent, or a lookup proved it absent
    "earlier_run",  # the journal says an earlier run may have sent it
    "this_run",  # a send of this run may have executed
]

# What the job reports back after doing an action (or to start one).
Event = Literal[
    "begin",  # a worker takes the item (from the input, or for its redrive)
    "sent",  # the send succeeded
    "send_unknown",  # OutcomeUnknownError: it may have executed
    "send_retryable",  # 429/5xx/connection, retries ran out; not executed
    "send_outage",  # the same, on a connection while the breaker is open
    "send_failed",  # a definite error: it did not execute
    "found",  # the lookup found the record
    "absent",  # the lookup proved it absent
    "lookup_failed",  # the lookup itself failed for good
    "lookup_busy",  # the lookup failed for now (429, 5xx, connection)
    "reachable",  # the server answers again
    "unreachable",  # it stayed unreachable for redrive_wait seconds
    "bad_request",  # the caller's request= failed on this item
    "cut_off",  # cancelled mid-flight by interrupt() or by closing the job
    "released",  # set aside, but the job will not redrive: settle as it stands
]

# What to do next.
Act = Literal[
    "send",  # run the action (write the journal's "started" line first if ``mark``)
    "lookup",  # run reconcile
    "wait",  # wait for the server to answer again (redrive_wait)
    "defer",  # set it aside for the redrive pass
    "settle",  # report ``status``; ``why`` says which data or error goes with it
]

# Which data or error a settled outcome carries.
Why = Literal[
    "sent",  # the send's data
    "found",  # the lookup's data (reconciled)
    "error",  # the last error seen
    "earlier_run",  # in doubt from an earlier run; reconcile= would resolve it
    "unreachable",  # redrive_wait ran out
    "stopped",  # not sent: job.stopped_by
    "interrupted",  # cut off mid-flight; its journal line stays "started"
]

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


class ItemState(msgspec.Struct, frozen=True):
    """One item's state. ``earlier``: the journal left it in doubt; ``rounds``: lookups
    that found it absent in this pass; ``marked``: its "started" line is written;
    ``lookup_failed``: it was set aside because a lookup failed, so if it is never sent
    again it is reported ``unknown`` (it may have executed), not ``failed``.

    A frozen msgspec Struct, changed with ``msgspec.structs.replace`` (``replace`` here):
    ``step`` makes a new one per event (two per item), and that costs 0.13 µs, where a
    named tuple's ``_replace`` costs 1.3 µs and ``dataclasses.replace`` ~3 µs (timeit;
    see the design page's register of speed shortcuts).
    """

    stage: Stage = "new"
    doubt: Doubt = "none"
    earlier: bool = False
    attempts: int = 0
    rounds: int = 0
    marked: bool = False
    redriven: bool = False
    lookup_failed: bool = False
    status: Settled | None = None


NEW_ITEM: Final = ItemState()
_LOOKUP: Final = Action("lookup")
_WAIT: Final = Action("wait")
_DEFER: Final = Action("defer")


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
    if stage == "settled":
        raise ValueError(f"item already settled ({item.status}); got {event}")
    if event == "cut_off":
        return _settle(item, "unknown", "interrupted")
    if event == "bad_request":
        return _settle(item, "failed", "error")
    if event == "begin" and stage in ("new", "set_aside"):
        return _begin(item, rules, job)
    if event == "released" and stage == "set_aside":
        return _settle(item, _unsent(item), "error")
    if stage == "sending":
        return _sent(item, event, rules, job)
    if stage in ("checking", "reconciling"):
        return _looked_up(item, event, rules, job)
    if stage == "waiting":
        if event == "reachable":
            return _send_or_resolve(item, rules, job)
        if event == "unreachable":
            return _settle(item, _unsent(item), "unreachable")
    raise ValueError(f"{event} cannot happen to an item in stage {stage}")


# Answers ``stepper`` remembers per job: far more than the handful of states its items pass.
STEP_CACHE: Final = 512

Stepper = Callable[[ItemState, Event, JobState], tuple[ItemState, Action]]


def stepper(rules: Rules) -> Stepper:
    """``step`` for one job's ``rules``, its answers remembered.

    ``step`` is pure and every item of a job passes through the same few states (a new
    item: begin, then sent), so the bulk job asks this instead: one dictionary lookup
    where ``step`` costs a few microseconds an item (the design page's register of
    speed shortcuts). A ``ValueError`` is raised, never remembered.
    """

    @functools.lru_cache(maxsize=STEP_CACHE)
    def stepped(item: ItemState, event: Event, job: JobState) -> tuple[ItemState, Action]:
        return step(item, event, rules, job)

    return stepped


def _begin(item: ItemState, rules: Rules, job: JobState) -> tuple[ItemState, Action]:
    if job is JobState.INTERRUPTING:  # interrupt() came before this item was started
        return _settle(item, "unknown", "interrupted")
    if job not in SENDING:  # abort(): read, never sent; no journal line, a later run sends it
        return _settle(item, "not_sent", "stopped")
    doubt = item.doubt
    if doubt == "none" and item.earlier:
        doubt = "earlier_run"  # the journal's word holds for every pass
    if item.stage == "set_aside":  # the redrive: the server must answer first
        return replace(item, stage="waiting", doubt=doubt, rounds=0, redriven=True), _WAIT
    if doubt is not item.doubt or item.rounds:
        item = replace(item, doubt=doubt, rounds=0)
    return _send_or_resolve(item, rules, job)


def _send_or_resolve(
    item: ItemState, rules: Rules, job: JobState, cause: str | None = None
) -> tuple[ItemState, Action]:
    """Send the item, unless it may have executed: THE rule of docs/protocol.md §12.5.

    The only way to the ``send`` action. An item in doubt is looked up first when a lookup is
    possible; without one it is re-sent only when sending twice is harmless and the doubt
    is an earlier run's, else it is settled ``unknown`` and never sent again.
    """
    if item.doubt != "none":
        if rules.reconcile:
            return replace(item, stage="checking"), _LOOKUP
        if not (rules.resend_safe and item.doubt == "earlier_run"):
            why: Why = "earlier_run" if item.doubt == "earlier_run" else "error"
            return _settle(item, "unknown", why)
    if job not in SENDING:  # abort() while this item waited (a lookup, the server)
        return _settle(item, "not_sent", "stopped")
    mark = rules.journal and not item.marked  # on record before it can leave
    sending = replace(item, stage="sending", attempts=item.attempts + 1,
                            marked=item.marked or rules.journal)
    return sending, _send_action(mark, cause)


def _sent(item: ItemState, event: Event, rules: Rules, job: JobState) -> tuple[ItemState, Action]:
    if event == "sent":
        return _settle(item, "succeeded", "sent")
    if event == "send_unknown":
        if not rules.reconcile:
            return _settle(item, "unknown", "error")
        return replace(item, stage="reconciling", doubt="this_run"), _LOOKUP
    if event == "send_outage" and item.redriven:
        # The outage is not over: wait for an answer, then send it again (it provably did
        # not execute, so it may go again).
        return replace(item, stage="waiting"), _WAIT
    if event in ("send_retryable", "send_outage"):
        return _defer_or(item, rules, job, "failed")
    if event == "send_failed":
        return _settle(item, "failed", "error")
    raise ValueError(f"{event} cannot happen to an item in stage {item.stage}")


def _looked_up(
    item: ItemState, event: Event, rules: Rules, job: JobState
) -> tuple[ItemState, Action]:
    if event == "found":
        return _settle(item, "succeeded", "found")
    if event == "absent":
        rounds = item.rounds + 1
        cleared = replace(item, doubt="none", rounds=rounds)
        if item.stage == "checking":  # looked before sending: a first send, not a retry
            return _send_or_resolve(cleared, rules, job)
        if rounds >= rules.max_rounds:
            return _settle(item, "unknown", "error")
        return _send_or_resolve(cleared, rules, job, cause="resend_after_reconcile")
    if event == "lookup_busy":  # the redrive pass starts with the lookup again
        return _defer_or(replace(item, lookup_failed=True), rules, job, "unknown")
    if event == "lookup_failed":
        return _settle(item, "unknown", "error")
    raise ValueError(f"{event} cannot happen to an item in stage {item.stage}")


def _defer_or(
    item: ItemState, rules: Rules, job: JobState, status: Settled
) -> tuple[ItemState, Action]:
    """Set the item aside for the redrive pass if it may still have one, else settle it."""
    if rules.redrive and not item.redriven and job in REDRIVES:
        return replace(item, stage="set_aside"), _DEFER
    return _settle(item, status, "error")


def _unsent(item: ItemState) -> Settled:
    """How an item that was not sent again ends: ``unknown`` if a lookup failed on it."""
    return "unknown" if item.lookup_failed else "failed"


def _settle(item: ItemState, status: Settled, why: Why) -> tuple[ItemState, Action]:
    return replace(item, stage="settled", status=status), _settle_action(status, why)


# A bulk job steps each item at least twice (begin, sent), so a step must cost little: the
# states are msgspec Structs and each action is made once, not once per item. Measured on
# the shared dev box (timeit, begin + sent): ~3 µs, against 12-20 µs with frozen dataclasses,
# enum members and dataclasses.replace; a bulk create costs ~150 µs end to end.
@functools.cache
def _send_action(mark: bool, cause: str | None) -> Action:
    return Action("send", mark=mark, cause=cause)


@functools.cache
def _settle_action(status: Settled, why: Why) -> Action:
    return Action("settle", status=status, why=why)
