"""One bulk item's lifecycle (``_jobs._policy``), pure: the transition table and its properties.

No server, no event loop: the policy is driven by hand (the table) and by hypothesis over a
simulated world where each send may or may not execute and each lookup tells the truth.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sippet_async._jobs._policy import (
    MAX_RECONCILE_ROUNDS,
    NEW_ITEM,
    Act,
    Doubt,
    Event,
    ItemState,
    Rules,
    Stage,
    Why,
    admit,
    step,
)
from sippet_async._jobs._state import SENDING, JobEvent, JobState, next_state

WRITE = Rules(reconcile=False, resend_safe=False, redrive=True, journal=True)
LOOKUP = replace(WRITE, reconcile=True)
SAFE = replace(WRITE, resend_safe=True)  # a read, or idempotent=True
NO_REDRIVE = replace(WRITE, redrive=False)
NO_JOURNAL = replace(WRITE, journal=False)

EARLIER = ItemState(earlier=True)
SENT_ONCE = ItemState(stage=Stage.SENDING, attempts=1, marked=True)
REDRIVEN = replace(SENT_ONCE, redriven=True)
CHECKING = ItemState(stage=Stage.CHECKING, doubt=Doubt.EARLIER_RUN, earlier=True)
RECONCILING = replace(SENT_ONCE, stage=Stage.RECONCILING, doubt=Doubt.THIS_RUN)
SET_ASIDE = replace(SENT_ONCE, stage=Stage.SET_ASIDE)
SET_ASIDE_UNRESOLVED = replace(RECONCILING, stage=Stage.SET_ASIDE, lookup_failed=True)
WAITING = replace(REDRIVEN, stage=Stage.WAITING)

S, J = Stage, JobState
RUN = J.RUNNING

# (name, item, event, rules, job) -> (next stage, act, settled status, why)
TABLE = [
    ("new item is marked then sent", NEW_ITEM, Event.BEGIN, WRITE, RUN,
     (S.SENDING, Act.SEND, None, None)),
    ("a stopping job still sends what it took", NEW_ITEM, Event.BEGIN, WRITE, J.STOPPING,
     (S.SENDING, Act.SEND, None, None)),
    ("abort: read, not sent", NEW_ITEM, Event.BEGIN, WRITE, J.ABORTING,
     (S.SETTLED, Act.SETTLE, "not_sent", Why.STOPPED)),
    ("abort and stop: not sent", NEW_ITEM, Event.BEGIN, WRITE, J.ABORTED,
     (S.SETTLED, Act.SETTLE, "not_sent", Why.STOPPED)),
    ("interrupt before start: unknown", NEW_ITEM, Event.BEGIN, WRITE, J.INTERRUPTING,
     (S.SETTLED, Act.SETTLE, "unknown", Why.INTERRUPTED)),
    ("earlier doubt, no lookup: unknown", EARLIER, Event.BEGIN, WRITE, RUN,
     (S.SETTLED, Act.SETTLE, "unknown", Why.EARLIER_RUN)),
    ("earlier doubt with reconcile: look first", EARLIER, Event.BEGIN, LOOKUP, RUN,
     (S.CHECKING, Act.LOOKUP, None, None)),
    ("earlier doubt, resend safe: send", EARLIER, Event.BEGIN, SAFE, RUN,
     (S.SENDING, Act.SEND, None, None)),
    ("earlier doubt, aborted: not sent", EARLIER, Event.BEGIN, LOOKUP, J.ABORTING,
     (S.SETTLED, Act.SETTLE, "not_sent", Why.STOPPED)),
    ("sent", SENT_ONCE, Event.SENT, WRITE, RUN,
     (S.SETTLED, Act.SETTLE, "succeeded", Why.SENT)),
    ("unknown, no lookup: unknown", SENT_ONCE, Event.SEND_UNKNOWN, WRITE, RUN,
     (S.SETTLED, Act.SETTLE, "unknown", Why.ERROR)),
    ("unknown, resend safe but no lookup: unknown", SENT_ONCE, Event.SEND_UNKNOWN, SAFE, RUN,
     (S.SETTLED, Act.SETTLE, "unknown", Why.ERROR)),
    ("unknown with reconcile: reconcile", SENT_ONCE, Event.SEND_UNKNOWN, LOOKUP, RUN,
     (S.RECONCILING, Act.LOOKUP, None, None)),
    ("unknown while aborted: still reconcile", SENT_ONCE, Event.SEND_UNKNOWN, LOOKUP,
     J.ABORTING, (S.RECONCILING, Act.LOOKUP, None, None)),
    ("retryable: set aside", SENT_ONCE, Event.SEND_RETRYABLE, WRITE, RUN,
     (S.SET_ASIDE, Act.DEFER, None, None)),
    ("retryable, stopping: failed", SENT_ONCE, Event.SEND_RETRYABLE, WRITE, J.STOPPING,
     (S.SETTLED, Act.SETTLE, "failed", Why.ERROR)),
    ("retryable, redrive=False: failed", SENT_ONCE, Event.SEND_RETRYABLE, NO_REDRIVE, RUN,
     (S.SETTLED, Act.SETTLE, "failed", Why.ERROR)),
    ("retryable on the redrive: failed", REDRIVEN, Event.SEND_RETRYABLE, WRITE, J.REDRIVING,
     (S.SETTLED, Act.SETTLE, "failed", Why.ERROR)),
    ("outage on the redrive: wait", REDRIVEN, Event.SEND_OUTAGE, WRITE, J.REDRIVING,
     (S.WAITING, Act.WAIT, None, None)),
    ("outage on the first pass: set aside", SENT_ONCE, Event.SEND_OUTAGE, WRITE, RUN,
     (S.SET_ASIDE, Act.DEFER, None, None)),
    ("definite error: failed", SENT_ONCE, Event.SEND_FAILED, WRITE, RUN,
     (S.SETTLED, Act.SETTLE, "failed", Why.ERROR)),
    ("check found it: succeeded", CHECKING, Event.FOUND, LOOKUP, RUN,
     (S.SETTLED, Act.SETTLE, "succeeded", Why.FOUND)),
    ("check proved it absent: send", CHECKING, Event.ABSENT, LOOKUP, RUN,
     (S.SENDING, Act.SEND, None, None)),
    ("absent, but aborted meanwhile: not sent", CHECKING, Event.ABSENT, LOOKUP, J.ABORTING,
     (S.SETTLED, Act.SETTLE, "not_sent", Why.STOPPED)),
    ("reconcile proved it absent: send again", RECONCILING, Event.ABSENT, LOOKUP, RUN,
     (S.SENDING, Act.SEND, None, None)),
    ("reconcile rounds ran out: unknown",
     replace(RECONCILING, rounds=MAX_RECONCILE_ROUNDS - 1), Event.ABSENT, LOOKUP, RUN,
     (S.SETTLED, Act.SETTLE, "unknown", Why.ERROR)),
    ("reconcile found it: succeeded", RECONCILING, Event.FOUND, LOOKUP, RUN,
     (S.SETTLED, Act.SETTLE, "succeeded", Why.FOUND)),
    ("lookup busy: set aside in doubt", RECONCILING, Event.LOOKUP_BUSY, LOOKUP, RUN,
     (S.SET_ASIDE, Act.DEFER, None, None)),
    ("lookup busy, stopping: unknown", RECONCILING, Event.LOOKUP_BUSY, LOOKUP, J.STOPPING,
     (S.SETTLED, Act.SETTLE, "unknown", Why.ERROR)),
    ("lookup failed: unknown", RECONCILING, Event.LOOKUP_FAILED, LOOKUP, RUN,
     (S.SETTLED, Act.SETTLE, "unknown", Why.ERROR)),
    ("redrive: wait for the server first", SET_ASIDE, Event.BEGIN, WRITE, J.REDRIVING,
     (S.WAITING, Act.WAIT, None, None)),
    ("redrive after abort: not sent", SET_ASIDE, Event.BEGIN, WRITE, J.ABORTING,
     (S.SETTLED, Act.SETTLE, "not_sent", Why.STOPPED)),
    ("released, never in doubt: failed", SET_ASIDE, Event.RELEASED, WRITE, J.STOPPING,
     (S.SETTLED, Act.SETTLE, "failed", Why.ERROR)),
    ("released after a failed lookup: unknown", SET_ASIDE_UNRESOLVED, Event.RELEASED, LOOKUP,
     J.STOPPING, (S.SETTLED, Act.SETTLE, "unknown", Why.ERROR)),
    ("reachable again: send", WAITING, Event.REACHABLE, WRITE, J.REDRIVING,
     (S.SENDING, Act.SEND, None, None)),
    ("reachable again, in doubt: look first", replace(WAITING, doubt=Doubt.THIS_RUN),
     Event.REACHABLE, LOOKUP, J.REDRIVING, (S.CHECKING, Act.LOOKUP, None, None)),
    ("still unreachable: failed", WAITING, Event.UNREACHABLE, WRITE, J.REDRIVING,
     (S.SETTLED, Act.SETTLE, "failed", Why.UNREACHABLE)),
    ("still unreachable after a failed lookup: unknown",
     replace(WAITING, lookup_failed=True), Event.UNREACHABLE, LOOKUP, J.REDRIVING,
     (S.SETTLED, Act.SETTLE, "unknown", Why.UNREACHABLE)),
    ("cut off mid-send: unknown", SENT_ONCE, Event.CUT_OFF, WRITE, J.INTERRUPTING,
     (S.SETTLED, Act.SETTLE, "unknown", Why.INTERRUPTED)),
    ("cut off mid-lookup: unknown", RECONCILING, Event.CUT_OFF, LOOKUP, J.CLOSING,
     (S.SETTLED, Act.SETTLE, "unknown", Why.INTERRUPTED)),
    ("request= failed: failed", NEW_ITEM, Event.BAD_REQUEST, WRITE, RUN,
     (S.SETTLED, Act.SETTLE, "failed", Why.ERROR)),
]


@pytest.mark.parametrize(("item", "event", "rules", "job", "expected"),
                         [row[1:] for row in TABLE], ids=[row[0] for row in TABLE])
def test_transition_table(item: ItemState, event: Event, rules: Rules, job: JobState,
                          expected: tuple[Stage, Act, str | None, Why | None]) -> None:
    """Each (stage, event, job state) leads to the stage and action of the table."""
    after, action = step(item, event, rules, job)
    assert (after.stage, action.act, action.status, action.why) == expected
    assert after.status == action.status


def test_the_first_send_is_on_record_before_it_leaves() -> None:
    """With a journal the first send is marked "started"; later sends and journal-less
    jobs are not."""
    first, action = step(NEW_ITEM, Event.BEGIN, WRITE, RUN)
    assert action.mark
    assert first.marked
    assert first.attempts == 1
    _, again = step(replace(RECONCILING, marked=True), Event.ABSENT, LOOKUP, RUN)
    assert again.act is Act.SEND
    assert not again.mark
    assert again.cause == "resend_after_reconcile"
    _, plain = step(NEW_ITEM, Event.BEGIN, NO_JOURNAL, RUN)
    assert not plain.mark


def test_admit_reads_the_journal() -> None:
    """Succeeded before: skipped (None); started or unknown: in doubt; else new."""
    assert admit("succeeded") is None
    assert admit("started") == admit("unknown") == EARLIER
    assert admit("failed") == admit(None) == NEW_ITEM


@pytest.mark.parametrize("event", list(Event))
def test_a_settled_item_takes_no_event(event: Event) -> None:
    """An item settles once: any event after that is a bug, not a second outcome."""
    settled, _ = step(SENT_ONCE, Event.SENT, WRITE, RUN)
    with pytest.raises(ValueError, match="already settled"):
        step(settled, event, WRITE, RUN)


@pytest.mark.parametrize(("item", "event"), [
    (SENT_ONCE, Event.FOUND), (CHECKING, Event.SENT), (WAITING, Event.ABSENT),
    (SET_ASIDE, Event.SENT), (NEW_ITEM, Event.REACHABLE), (SENT_ONCE, Event.BEGIN),
])
def test_an_event_out_of_place_is_refused(item: ItemState, event: Event) -> None:
    """An event that cannot happen in the stage raises instead of guessing."""
    with pytest.raises(ValueError, match="cannot happen"):
        step(item, event, LOOKUP, RUN)


# -- properties: a simulated world ------------------------------------------------------

SEND_REPLIES = ("ok", "unknown", "retryable", "outage", "failed")


@dataclass
class World:
    """What really happened to the item, which the policy can only learn through lookups."""

    earlier: int = 0  # executions by an earlier run (0 or 1)
    executions: int = 0  # executions by this run
    may_have_executed: bool = False  # what an observer of this run knows
    doubt_this_run: bool = False


def _simulate(data: st.DataObject, rules: Rules, earlier: bool) -> tuple[World, str, int]:
    """Drive one item to its end; returns the world, the settled status and the steps."""
    world = World()
    if earlier:  # an earlier run sent it; maybe it executed
        world.earlier = data.draw(st.integers(0, 1), label="executed before")
        world.may_have_executed = True
    item = admit("started" if earlier else None)
    assert item is not None
    job = JobState.RUNNING
    event = Event.BEGIN
    for steps in range(1, 200):
        item, action = step(item, event, rules, job)
        if action.act is Act.SETTLE:
            assert action.status is not None
            return world, action.status, steps
        job_event = data.draw(st.sampled_from([None, None, None, *JobEvent]), label="job")
        if job_event is not None and job_event is not JobEvent.CLOSED:
            job = next_state(job, job_event)
        in_flight = action.act in (Act.SEND, Act.LOOKUP, Act.WAIT)
        if in_flight and job in (JobState.INTERRUPTING, JobState.CLOSING) \
                and job_event in (JobEvent.INTERRUPT, JobEvent.CLOSE):
            if action.act is Act.SEND:  # cancelled mid-send: it may have gone out
                world.executions += data.draw(st.integers(0, 1), label="cut off")
            event = Event.CUT_OFF
            continue
        if action.act is Act.SEND:
            if not rules.resend_safe:
                assert not world.may_have_executed, "a write that may have executed was sent"
            assert not world.doubt_this_run, "re-sent after an unknown outcome, unresolved"
            reply = data.draw(st.sampled_from(SEND_REPLIES), label="reply")
            if reply == "ok":
                world.executions += 1
                event = Event.SENT
            elif reply == "unknown":
                world.executions += data.draw(st.integers(0, 1), label="executed")
                world.may_have_executed = world.doubt_this_run = True
                event = Event.SEND_UNKNOWN
            else:
                event = {"retryable": Event.SEND_RETRYABLE, "outage": Event.SEND_OUTAGE,
                         "failed": Event.SEND_FAILED}[reply]
        elif action.act is Act.LOOKUP:
            fails = data.draw(st.sampled_from([None, None, Event.LOOKUP_BUSY,
                                               Event.LOOKUP_FAILED]), label="lookup")
            if fails is not None:
                event = fails
            elif world.earlier + world.executions:
                event = Event.FOUND
            else:  # the truth: it did not execute, so it may go (again)
                world.may_have_executed = world.doubt_this_run = False
                event = Event.ABSENT
        elif action.act is Act.WAIT:
            event = data.draw(st.sampled_from([Event.REACHABLE, Event.UNREACHABLE]))
        else:  # DEFER: redriven while the job may, else released as it stands
            event = Event.BEGIN if job in (JobState.RUNNING, JobState.REDRIVING) \
                else Event.RELEASED
            if event is Event.BEGIN:
                job = next_state(job, JobEvent.INPUT_DONE)
    raise AssertionError("the item never settled")


rules_strategy = st.builds(Rules, reconcile=st.booleans(), resend_safe=st.booleans(),
                           redrive=st.booleans(), journal=st.booleans())


@settings(max_examples=400, deadline=None)
@given(data=st.data(), rules=rules_strategy, earlier=st.booleans())
def test_a_write_that_may_have_executed_is_never_sent_again(
    data: st.DataObject, rules: Rules, earlier: bool
) -> None:
    """Whatever fails and whenever the job stops, a write runs at most once, and is only
    re-sent when a truthful lookup proved it absent (or sending twice is harmless)."""
    world, _, _ = _simulate(data, rules, earlier)
    if not rules.resend_safe:
        assert world.earlier + world.executions <= 1


@settings(max_examples=400, deadline=None)
@given(data=st.data(), rules=rules_strategy, earlier=st.booleans())
def test_every_item_settles_once_with_a_status_that_tells_the_truth(
    data: st.DataObject, rules: Rules, earlier: bool
) -> None:
    """Every item settles, in bounded steps, with one status; succeeded means it executed,
    failed or not_sent that this run did not execute it."""
    world, status, steps = _simulate(data, rules, earlier)
    assert steps <= 6 * MAX_RECONCILE_ROUNDS
    if status == "succeeded":
        assert world.earlier + world.executions >= 1
    if status in ("failed", "not_sent"):
        assert world.executions == 0


@settings(max_examples=200, deadline=None)
@given(rules=st.builds(Rules, reconcile=st.just(False), resend_safe=st.just(True),
                       redrive=st.booleans(), journal=st.booleans()),
       job=st.sampled_from(sorted(SENDING, key=lambda s: s.value)),
       redriven=st.booleans())
def test_a_read_left_in_doubt_by_an_earlier_run_may_always_be_sent(
    rules: Rules, job: JobState, redriven: bool
) -> None:
    """Sending twice is harmless for a read (or idempotent=True): an earlier run's doubt
    never blocks it, first pass or redrive."""
    item = replace(EARLIER, stage=Stage.SET_ASIDE if redriven else Stage.NEW)
    item, action = step(item, Event.BEGIN, rules, job)
    if action.act is Act.WAIT:
        item, action = step(item, Event.REACHABLE, rules, job)
    assert action.act is Act.SEND


@settings(max_examples=200, deadline=None)
@given(item=st.builds(ItemState, stage=st.sampled_from([Stage.NEW, Stage.SET_ASIDE,
                                                         Stage.WAITING]),
                      doubt=st.sampled_from(list(Doubt)), earlier=st.booleans(),
                      attempts=st.integers(0, 3), redriven=st.booleans()),
       rules=rules_strategy, job=st.sampled_from(list(JobState)))
def test_only_a_clear_item_or_a_harmless_resend_is_sent(
    item: ItemState, rules: Rules, job: JobState
) -> None:
    """Whenever the policy says send, the item is clear of doubt, or the doubt is an earlier
    run's and sending twice is harmless; and the job is one that sends."""
    event = Event.REACHABLE if item.stage is Stage.WAITING else Event.BEGIN
    before = item
    _, action = step(item, event, rules, job)
    if action.act is Act.SEND:
        assert job in SENDING
        doubt = before.doubt
        if doubt is Doubt.NONE and before.earlier and event is Event.BEGIN:
            doubt = Doubt.EARLIER_RUN
        assert doubt is Doubt.NONE or (doubt is Doubt.EARLIER_RUN and rules.resend_safe
                                       and not rules.reconcile)
