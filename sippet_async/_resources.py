"""Typed records for the resources of docs/protocol.md §12.6: ``Contact`` and ``Call``.

Attributes are snake_case in Python and camelCase on the wire (§8). A field that was not
selected in ``fields`` is simply absent: it stays ``msgspec.UNSET`` and is omitted again
when the record is encoded. Unknown keys (fields a newer server adds) are ignored.

Example:
    async for contact in client.iter("list_contacts", fields=["id", "fullName"],
                                     type=Contact):
        print(contact.full_name)          # contact.email is UNSET: not selected
"""

from __future__ import annotations

from datetime import datetime

import msgspec
from msgspec import UNSET, UnsetType

__all__ = ["Call", "Contact"]


class Contact(msgspec.Struct, kw_only=True, rename="camel", repr_omit_defaults=True):
    """A contact (§12.6); required attributes are never null, optional ones may be."""

    id: str | UnsetType = UNSET
    full_name: str | UnsetType = UNSET
    phone_e164: str | UnsetType = UNSET
    email: str | UnsetType | None = UNSET
    company: str | UnsetType | None = UNSET
    tags: list[str] | UnsetType | None = UNSET
    inserted_at: datetime | UnsetType = UNSET
    updated_at: datetime | UnsetType = UNSET


class Call(msgspec.Struct, kw_only=True, rename="camel", repr_omit_defaults=True):
    """A call (§12.6); ``status`` is kept as the server's string (values are never renamed)."""

    id: str | UnsetType = UNSET
    contact_id: str | UnsetType | None = UNSET
    to_e164: str | UnsetType = UNSET
    status: str | UnsetType = UNSET
    inserted_at: datetime | UnsetType = UNSET
