"""Typed records and inputs for the resources of docs/protocol.md §12.6.

Records (``Contact``, ``Call``) are what replies hold; inputs (``CreateContact``,
``UpdateContact``, ``CreateCall``) are what the typed methods send as ``input``.

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

__all__ = ["Call", "Contact", "CreateCall", "CreateContact", "UpdateContact"]


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


# Outgoing inputs are strict (frozen, keyword-only) and send only what was given: an UNSET
# field is left out of ``input``, while None is sent as null (clears the attribute, §3.7).


class CreateContact(msgspec.Struct, frozen=True, kw_only=True, rename="camel",
                    omit_defaults=True, repr_omit_defaults=True):
    """The ``input`` of ``create_contact`` (§12.6): ``full_name`` and ``phone_e164`` are
    required; the others are sent only when given."""

    full_name: str
    phone_e164: str
    email: str | UnsetType | None = UNSET
    company: str | UnsetType | None = UNSET
    tags: tuple[str, ...] | UnsetType | None = UNSET


class UpdateContact(msgspec.Struct, frozen=True, kw_only=True, rename="camel",
                    omit_defaults=True, repr_omit_defaults=True):
    """The ``input`` of ``update_contact``: only the attributes given change; None clears
    an optional one (``email=None``)."""

    full_name: str | UnsetType = UNSET
    phone_e164: str | UnsetType = UNSET
    email: str | UnsetType | None = UNSET
    company: str | UnsetType | None = UNSET
    tags: tuple[str, ...] | UnsetType | None = UNSET


class CreateCall(msgspec.Struct, frozen=True, kw_only=True, rename="camel",
                 omit_defaults=True, repr_omit_defaults=True):
    """The ``input`` of ``create_call`` (§12.6): the number to call and, optionally, the
    contact it belongs to."""

    to_e164: str
    contact_id: str | UnsetType | None = UNSET
