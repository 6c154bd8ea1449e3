"""The in-memory data of the fake server: contacts and calls, ids, timestamps, sorted views.

Every method is synchronous, so a request's reads and writes happen between two awaits
of the event loop and are atomic with respect to concurrent requests.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from ._rules import Record, SortKey, matches, sort_records
from ._schema import CALL, CONTACT, SEED_EPOCH, Resource, format_datetime, seed_contact

_MICROSECOND = timedelta(microseconds=1)


class Store:
    """Tables keyed by id (insertion-ordered), with a cache of sorted, filtered views."""

    def __init__(self, *, seed: int = 0, seed_contacts: int = 0) -> None:
        self._ids = random.Random(f"ids:{seed}")
        self._tables: dict[Resource, dict[str, Record]] = {CONTACT: {}, CALL: {}}
        self._views: dict[tuple[Any, ...], list[Record]] = {}
        for index in range(seed_contacts):
            self.insert(CONTACT, seed_contact(index, self.new_id()))
        # Seeds are stamped SEED_EPOCH + index seconds; later records come after them.
        self._last_stamp = SEED_EPOCH + timedelta(seconds=seed_contacts)

    def new_id(self) -> str:
        """A fresh uuid4, deterministic for a given seed and call order."""
        return str(uuid.UUID(int=self._ids.getrandbits(128), version=4))

    def now(self) -> str:
        """The current UTC time, strictly increasing across calls (§12.6 ``insertedAt``)."""
        stamp = max(datetime.now(UTC), self._last_stamp + _MICROSECOND)
        self._last_stamp = stamp
        return format_datetime(stamp)

    def table(self, resource: Resource) -> dict[str, Record]:
        return self._tables[resource]

    def get(self, resource: Resource, record_id: str) -> Record | None:
        return self._tables[resource].get(record_id)

    def insert(self, resource: Resource, record: Record) -> None:
        self._tables[resource][record["id"]] = record
        self._changed()

    def update(self, resource: Resource, record_id: str, changes: Record) -> Record:
        record = {**self._tables[resource][record_id], **changes}
        self._tables[resource][record_id] = record
        self._changed()
        return record

    def delete(self, resource: Resource, record_id: str) -> Record | None:
        record = self._tables[resource].pop(record_id, None)
        self._changed()
        return record

    def rows(
        self,
        resource: Resource,
        keys: tuple[SortKey, ...],
        predicate: Callable[[Record], bool | None],
        filter_key: bytes,
    ) -> list[Record]:
        """Filtered rows in ``keys`` order; reused until the next write (pages stay cheap)."""
        view_key = (resource.module, keys, filter_key)
        view = self._views.get(view_key)
        if view is None:
            if len(self._views) >= 16:
                self._views.clear()
            kept = (r for r in self._tables[resource].values() if matches(predicate, r))
            view = self._views[view_key] = sort_records(kept, keys)
        return view

    def _changed(self) -> None:
        self._views.clear()
