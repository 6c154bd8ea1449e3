"""Pure rule functions of the fake server: names, comparisons, windows, header values."""

from __future__ import annotations

import pytest

from sippet_async.testing import worst_window
from sippet_async.testing._faults import Faults, RollingWindow, seconds
from sippet_async.testing._rules import SortKey, compare_values, compile_filter, matches
from sippet_async.testing._schema import CONTACT, camel, cast_input, snake


@pytest.mark.parametrize(
    ("client", "ash"),
    [
        ("phoneE164", "phone_e164"),
        ("toE164", "to_e164"),
        ("fullName", "full_name"),
        ("greaterThanOrEqual", "greater_than_or_equal"),
        ("isNil", "is_nil"),
        ("already_snake", "already_snake"),
        ("HTTPServer", "http_server"),
    ],
)
def test_snake_and_camel(client: str, ash: str) -> None:
    """snake() is Macro.underscore; camel() inverts it for our field names (§8)."""
    assert snake(client) == ash
    if client != ash and client[0].islower():
        assert camel(ash) == client


@pytest.mark.parametrize(
    ("key", "left", "right", "order"),
    [
        (SortKey("x"), "a", "b", -1),
        (SortKey("x", descending=True), "a", "b", 1),
        (SortKey("x"), None, "a", 1),  # asc: nils last
        (SortKey("x", nils_first=True), None, "a", -1),
        (SortKey("x", descending=True, nils_first=True), None, "a", -1),
        (SortKey("x", descending=True), "a", None, -1),  # `--`: desc, nils last
        (SortKey("x"), None, None, 0),
    ],
)
def test_compare_values(key: SortKey, left: str | None, right: str | None, order: int) -> None:
    """Direction and nil placement follow the four sort prefixes (§3.4)."""
    assert compare_values([left], [right], [key]) == order


def test_filter_uses_three_valued_logic() -> None:
    """`not` of a comparison with nil stays unknown, so the row is dropped (as in SQL)."""
    predicate = compile_filter(CONTACT, {"not": {"company": {"eq": "Acme"}}})
    assert matches(predicate, {"company": "Globex"})
    assert not matches(predicate, {"company": "Acme"})
    assert not matches(predicate, {"company": None})
    either = compile_filter(CONTACT, {"or": [{"company": "Acme"}, {"email": {"isNil": True}}]})
    assert matches(either, {"company": None, "email": None})


def test_cast_input_collects_problems_in_attribute_order() -> None:
    """Create input casting reports required and invalid attributes; unknown keys raise."""
    changes, problems = cast_input(CONTACT, {"phoneE164": " +15550001111 ", "email": " "}, "create")
    assert changes == {"phoneE164": "+15550001111", "email": None}
    assert [(kind, a.name) for kind, a in problems] == [("required", "fullName")]
    with pytest.raises(KeyError):
        cast_input(CONTACT, {"id": "x"}, "create")
    assert cast_input(CONTACT, {"id": "x"}, "create", strict=False)[0] == {}


def test_rolling_window() -> None:
    """At most N admissions in any rolling second; the wait names when a slot frees up."""
    window = RollingWindow()
    assert [window.admit(t, 2) for t in (0.0, 0.2)] == [None, None]
    assert window.admit(0.5, 2) == pytest.approx(0.5)
    assert window.admit(1.0, 2) is None
    assert window.admit(1.1, 2) == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("value", "text"), [(1.0, "1"), (2, "2"), (0.25, "0.25"), (0.6000000001, "0.601"), (0.0, "0")]
)
def test_retry_after_seconds(value: float, text: str) -> None:
    """Retry-After is whole seconds when whole, else a decimal rounded up to the millisecond."""
    assert seconds(value) == text


def test_fault_pick_follows_cumulative_chances() -> None:
    """One uniform draw selects the fault by cumulative probability, in declaration order."""
    faults = Faults(p_500=0.1, p_503=0.2, p_lost_after_commit=0.1)
    assert faults._pick(0.05) == "http_500"
    assert faults._pick(0.25) == "http_503"
    assert faults._pick(0.35) == "lost_after_commit"
    assert faults._pick(0.45) is None


def test_worst_window_counts_the_busiest_half_open_window() -> None:
    """Events at t and t + width fall in different windows; the busiest one is counted."""
    assert worst_window([]) == 0
    assert worst_window([0.0, 1.0, 2.0]) == 1
    assert worst_window([0.0, 0.5, 0.99, 1.0, 1.2]) == 4
    assert worst_window([3.0, 0.1, 0.2], width=0.15) == 2
