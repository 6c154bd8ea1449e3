"""One bulk item's lifecycle (``_jobs._policy``), pure: the transition table and its properties.

No server, no event loop: the policy is driven by hand (the table) and by hypothesis over a
simulated world where each send may or may not execute and each lookup tells the truth.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec.structs import replace as changed

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
    stepper,
)
from sippet_async._jobs._state import SENDING, JobEvent, JobState, next_state

WRITE = Rules(reconcile=False, resend_safe=False, redrive=True, journal=True)
LOOKUP = replace(WRITE, reconcile=True)
SAFE = replace(WRITE, resend_safe=True)  # a read, or idempotent=True
NO_REDRIVE = replace(WRITE, redrive=False)
NO_JOURNAL = replace(WRITE, journal=False)

EARLIER = ItemState(earlier=True)
SENT_ONCE = ItemState(stage="sending", attempts=1, marked=True)
REDRIVEN = changed(SENT_ONCE, redriven=True)
CHECKING = ItemState(stage="checking", doubt="earlier_run", earlier=True)
RECONCILING = changed(SENT_ONCE, stage="reconciling", doubt="this_run")
SET_ASIDE = changed(SENT_ONCE, stage="set_aside")
SET_ASIDE_UNRESOLVED = changed(RECONCILING, stage="set_aside", lookup_failed=True)
WAITING = changed(REDRIVEN, stage="waiting")

J = JobState
RUN = J.RUNNING

# (name, item, event, rules, job) -> (next stage, act, settled status, why)
TABLE = [
    ("new item is marked then sent", NEW_ITEM, "begin", WRITE, RUN,
     ("sending", "send", None, None)),
    ("a stopping job still sends what it took", NEW_ITEM, "begin", WRITE, J.STOPPING,
     ("sending", "send", None, None)),
    ("abort: read, not sent", NEW_ITEM, "begin", WRITE, J.ABORTING,
     ("settled", "settle", "not_sent", "stopped")),
    ("abort and stop: not sent", NEW_ITEM, "begin", WRITE, J.ABORTED,
     ("settled", "settle", "not_sent", "stopped")),
    ("interrupt before start: unknown", NEW_ITEM, "begin", WRITE, J.INTERRUPTING,
     ("settled", "settle", "unknown", "interrupted")),
    ("earlier doubt, no lookup: unknown", EARLIER, "begin", WRITE, RUN,
     ("settled", "settle", "unknown", "earlier_run")),
    ("earlier doubt with reconcile: look first", EARLIER, "begin", LOOKUP, RUN,
     ("checking", "lookup", None, None)),
    ("earlier doubt, resend safe: send", EARLIER, "begin", SAFE, RUN,
     ("sending", "send", None, None)),
    ("earlier doubt, aborted: not sent", EARLIER, "begin", LOOKUP, J.ABORTING,
     ("settled", "settle", "not_sent", "stopped")),
    ("sent", SENT_ONCE, "sent", WRITE, RUN,
     ("settled", "settle", "succeeded", "sent")),
    ("unknown, no lookup: unknown", SENT_ONCE, "send_unknown", WRITE, RUN,
     ("settled", "settle", "unknown", "error")),
    ("unknown, resend safe but no lookup: unknown", SENT_ONCE, "send_unknown", SAFE, RUN,
     ("settled", "settle", "unknown", "error")),
    ("unknown with reconcile: reconcile", SENT_ONCE, "send_unknown", LOOKUP, RUN,
     ("reconciling", "lookup", None, None)),
    ("unknown while aborted: still reconcile", SENT_ONCE, "send_unknown", LOOKUP,
     J.ABORTING, ("reconciling", "lookup", None, None)),
    ("retryable: set aside", SENT_ONCE, "send_retryable", WRITE, RUN,
     ("set_aside", "defer", None, None)),
    ("retryable, stopping: failed", SENT_ONCE, "send_retryable", WRITE, J.STOPPING,
     ("settled", "settle", "failed", "error")),
    ("retryable, redrive=False: failed", SENT_ONCE, "send_retryable", NO_REDRIVE, RUN,
     ("settled", "settle", "failed", "error")),
    ("retryable on the redrive: failed", REDRIVEN, "send_retryable", WRITE, J.REDRIVING,
     ("settled", "settle", "failed", "error")),
    ("outage on the redrive: wait", REDRIVEN, "send_outage", WRITE, J.REDRIVING,
     ("waiting", "wait", None, None)),
    ("outage on the first pass: set aside", SENT_ONCE, "send_outage", WRITE, RUN,
     ("set_aside", "defer", None, None)),
    ("definite error: failed", SENT_ONCE, "send_failed", WRITE, RUN,
     ("settled", "settle", "failed", "error")),
    ("check found it: succeeded", CHECKING, "found", LOOKUP, RUN,
     ("settled", "settle", "succeeded", "found")),
    ("check proved it absent: send", CHECKING, "absent", LOOKUP, RUN,
     ("sending", "send", None, None)),
    ("absent, but aborted meanwhile: not sent", CHECKING, "absent", LOOKUP, J.ABORTING,
     ("settled", "settle", "not_sent", "stopped")),
    ("reconcile proved it absent: send again", RECONCILING, "absent", LOOKUP, RUN,
     ("sending", "send", None, None)),
    ("reconcile rounds ran out: unknown",
     changed(RECONCILING, rounds=MAX_RECONCILE_ROUNDS - 1), "absent", LOOKUP, RUN,
     ("settled", "settle", "unknown", "error")),
    ("reconcile found it: succeeded", RECONCILING, "found", LOOKUP, RUN,
     ("settled", "settle", "succeeded", "found")),
    ("lookup busy: set aside in doubt", RECONCILING, "lookup_busy", LOOKUP, RUN,
     ("set_aside", "defer", None, None)),
    ("lookup busy, stopping: unknown", RECONCILING, "lookup_busy", LOOKUP, J.STOPPING,
     ("settled", "settle", "unknown", "error")),
    ("lookup failed: unknown", RECONCILING, "lookup_failed", LOOKUP, RUN,
     ("settled", "settle", "unknown", "error")),
    ("redrive: wait for the server first", SET_ASIDE, "begin", WRITE, J.REDRIVING,
     ("waiting", "wait", None, None)),
    ("redrive after abort: not sent", SET_ASIDE, "begin", WRITE, J.ABORTING,
     ("settled", "settle", "not_sent", "stopped")),
    ("released, never in doubt: failed", SET_ASIDE, "released", WRITE, J.STOPPING,
     ("settled", "settle", "failed", "error")),
    ("released after a failed lookup: unknown", SET_ASIDE_UNRESOLVED, "released", LOOKUP,
     J.STOPPING, ("settled", "settle", "unknown", "error")),
    ("reachable again: send", WAITING, "reachable", WRITE, J.REDRIVING,
     ("sending", "send", None, None)),
    ("reachable again, in doubt: look first", changed(WAITING, doubt="this_run"),
     "reachable", LOOKUP, J.REDRIVING, ("checking", "lookup", None, None)),
    ("still unreachable: failed", WAITING, "unreachable", WRITE, J.REDRIVING,
     ("settled", "settle", "failed", "unreachable")),
    ("still unreachable after a failed lookup: unknown",
     changed(WAITING, lookup_failed=True), "unreachable", LOOKUP, J.REDRIVING,
     ("settled", "settle", "unknown", "unreachable")),
    ("cut off mid-send: unknown", SENT_ONCE, "cut_off", WRITE, J.INTERRUPTING,
     ("settled", "settle", "unknown", "interrupted")),
    ("cut off mid-lookup: unknown", RECONCILING, "cut_off", LOOKUP, J.CLOSING,
     ("settled", "settle", "unknown", "interrupted")),
    ("request= failed: failed", NEW_ITEM, "bad_request", WRITE, RUN,
     ("settled", "settle", "failed", "error")),
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
    """Only the first send of a journalled item is marked "started" before it leaves."""
    first, action = step(NEW_ITEM, "begin", WRITE, RUN)
    assert action.mark
    assert first.marked
    assert first.attempts == 1
    _, again = step(changed(RECONCILING, marked=True), "absent", LOOKUP, RUN)
    assert again.act == "send"
    assert not again.mark
    assert again.cause == "resend_after_reconcile"
    _, plain = step(NEW_ITEM, "begin", NO_JOURNAL, RUN)
    assert not plain.mark


def test_admit_reads_the_journal() -> None:
    """Succeeded before: skipped (None); started or unknown: in doubt; else new."""
    assert admit("succeeded") is None
    assert admit("started") == admit("unknown") == EARLIER
    assert admit("failed") == admit(None) == NEW_ITEM


@pytest.mark.parametrize("event", get_args(Event))
def test_a_settled_item_takes_no_event(event: Event) -> None:
    """An item settles once: any event after that is a bug, not a second outcome."""
    settled, _ = step(SENT_ONCE, "sent", WRITE, RUN)
    with pytest.raises(ValueError, match="already settled"):
        step(settled, event, WRITE, RUN)


@pytest.mark.parametrize(("item", "event"), [
    (SENT_ONCE, "found"), (CHECKING, "sent"), (WAITING, "absent"),
    (SET_ASIDE, "sent"), (NEW_ITEM, "reachable"), (SENT_ONCE, "begin"),
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
    event = "begin"
    for steps in range(1, 200):
        item, action = step(item, event, rules, job)
        if action.act == "settle":
            assert action.status is not None
            return world, action.status, steps
        job_event = data.draw(st.sampled_from([None, None, None, *JobEvent]), label="job")
        if job_event is not None and job_event is not JobEvent.CLOSED:
            job = next_state(job, job_event)
        in_flight = action.act in ("send", "lookup", "wait")
        if in_flight and job in (JobState.INTERRUPTING, JobState.CLOSING) \
                and job_event in (JobEvent.INTERRUPT, JobEvent.CLOSE):
            if action.act == "send":  # cancelled mid-send: it may have gone out
                world.executions += data.draw(st.integers(0, 1), label="cut off")
            event = "cut_off"
            continue
        if action.act == "send":
            if not rules.resend_safe:
                assert not world.may_have_executed, "a write that may have executed was sent"
            assert not world.doubt_this_run, "re-sent after an unknown outcome, unresolved"
            reply = data.draw(st.sampled_from(SEND_REPLIES), label="reply")
            if reply == "ok":
                world.executions += 1
                event = "sent"
            elif reply == "unknown":
                world.executions += data.draw(st.integers(0, 1), label="executed")
                world.may_have_executed = world.doubt_this_run = True
                event = "send_unknown"
            else:
                event = {"retryable": "send_retryable", "outage": "send_outage",
                         "failed": "send_failed"}[reply]
        elif action.act == "lookup":
            fails = data.draw(st.sampled_from([None, None, "lookup_busy",
                                               "lookup_failed"]), label="lookup")
            if fails is not None:
                event = fails
            elif world.earlier + world.executions:
                event = "found"
            else:  # the truth: it did not execute, so it may go (again)
                world.may_have_executed = world.doubt_this_run = False
                event = "absent"
        elif action.act == "wait":
            event = data.draw(st.sampled_from(["reachable", "unreachable"]))
        else:  # DEFER: redriven while the job may, else released as it stands
            event = "begin" if job in (JobState.RUNNING, JobState.REDRIVING) \
                else "released"
            if event == "begin":
                job = next_state(job, JobEvent.INPUT_DONE)
    raise AssertionError("the item never settled")


rules_strategy = st.builds(Rules, reconcile=st.booleans(), resend_safe=st.booleans(),
                           redrive=st.booleans(), journal=st.booleans())


@settings(max_examples=400, deadline=None)
@given(data=st.data(), rules=rules_strategy, earlier=st.booleans())
def test_a_write_that_may_have_executed_is_never_sent_again(
    data: st.DataObject, rules: Rules, earlier: bool
) -> None:
    """Whatever fails and whenever the job stops, a write executes at most once."""
    world, _, _ = _simulate(data, rules, earlier)
    if not rules.resend_safe:
        assert world.earlier + world.executions <= 1


@settings(max_examples=400, deadline=None)
@given(data=st.data(), rules=rules_strategy, earlier=st.booleans())
def test_every_item_settles_once_with_a_status_that_tells_the_truth(
    data: st.DataObject, rules: Rules, earlier: bool
) -> None:
    """Each item settles once, in bounded steps; succeeded iff executed, failed/not_sent not."""
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
    """A read (or idempotent=True) left in doubt by an earlier run is always sent."""
    item = changed(EARLIER, stage="set_aside" if redriven else "new")
    item, action = step(item, "begin", rules, job)
    if action.act == "wait":
        item, action = step(item, "reachable", rules, job)
    assert action.act == "send"


@settings(max_examples=200, deadline=None)
@given(item=st.builds(ItemState, stage=st.sampled_from(["new", "set_aside",
                                                         "waiting"]),
                      doubt=st.sampled_from(get_args(Doubt)), earlier=st.booleans(),
                      attempts=st.integers(0, 3), redriven=st.booleans()),
       rules=rules_strategy, job=st.sampled_from(list(JobState)))
def test_only_a_clear_item_or_a_harmless_resend_is_sent(
    item: ItemState, rules: Rules, job: JobState
) -> None:
    """Send only when clear of doubt, or an earlier run's doubt and resending is harmless."""
    event = "reachable" if item.stage == "waiting" else "begin"
    before = item
    _, action = step(item, event, rules, job)
    if action.act == "send":
        assert job in SENDING
        doubt = before.doubt
        if doubt == "none" and before.earlier and event == "begin":
            doubt = "earlier_run"
        assert doubt == "none" or (doubt == "earlier_run" and rules.resend_safe
                                       and not rules.reconcile)


# -- the remembered steps the bulk job asks ----------------------------------------------

@settings(max_examples=200, deadline=None)
@given(item=st.builds(ItemState, stage=st.sampled_from(get_args(Stage)),
                      doubt=st.sampled_from(get_args(Doubt)), earlier=st.booleans(),
                      attempts=st.integers(0, 3), rounds=st.integers(0, 3),
                      marked=st.booleans(), redriven=st.booleans(),
                      lookup_failed=st.booleans()),
       event=st.sampled_from(get_args(Event)), rules=rules_strategy,
       job=st.sampled_from(list(JobState)))
def test_a_remembered_step_answers_as_step_does(
    item: ItemState, event: Event, rules: Rules, job: JobState
) -> None:
    """``stepper(rules)`` is ``step`` with the rules fixed: the same answer, asked twice,
    and the same refusal (a ValueError is raised each time, never remembered)."""
    remembered = stepper(rules)
    refusal = None
    try:
        expected = step(item, event, rules, job)
    except ValueError as exc:
        refusal = str(exc)
    if refusal is not None:
        for _ in range(2):
            with pytest.raises(ValueError, match=r"cannot happen|already settled") as raised:
                remembered(item, event, job)
            assert str(raised.value) == refusal
        return
    assert remembered(item, event, job) == expected
    assert remembered(item, event, job) == expected


def test_job_states_hash_by_identity_and_still_look_up_by_value() -> None:
    """``JobState`` hashes by identity (its members are singletons): a member built from
    its value is the same key."""
    table = {state: state.value for state in JobState}
    for state in JobState:
        assert table[JobState(state.value)] == state.value
    assert len(table) == len(JobState)
