"""5,000 creates under the issue's fault mix: one outcome per item, one contact per phone."""

from __future__ import annotations

import collections

from sippet_async.testing import FakeSippet

from ._support import (
    FAULTS,
    ByPhone,
    assert_exactly_one_contact_per_phone,
    assert_one_outcome_per_index,
    client_for,
    contacts,
)

N = 5000


async def test_5000_creates_under_faults_land_exactly_once(
    server: FakeSippet, fast_loop: None
) -> None:
    """5% 500, 5% 429, 2% reset-before, 1% lost-after-commit, reconcile by phone: exact."""
    server.faults = FAULTS
    async with client_for(server) as client:
        lookup = ByPhone(client)
        job = client.bulk("create_contact", contacts(N), fields=["id"], reconcile=lookup)
        async with job:
            outcomes = [o async for o in job]
    assert_one_outcome_per_index(outcomes, N)
    assert collections.Counter(o.status for o in outcomes) == {"succeeded": N}
    assert_exactly_one_contact_per_phone(server, N)

    requests = [r for r in server.requests if r.action == "create_contact"]
    assert sum(r.executed for r in requests) == N  # no create ran twice
    faults = collections.Counter(r.fault for r in requests)
    for kind in ("http_500", "http_429", "reset_before", "lost_after_commit"):
        assert faults[kind] > 0, faults  # every fault of the mix happened
    report = job.report
    assert report.reconciled > 0
    assert lookup.calls >= report.reconciled
    assert report.retries["429"] > 0
    assert report.retries["resend_after_reconcile"] > 0
    ids = {o.record_id for o in outcomes}
    assert ids == {c["id"] for c in server.contacts}  # each outcome names its own record
