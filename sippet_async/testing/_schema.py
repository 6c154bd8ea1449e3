"""Resources of the fake server (docs/protocol.md §12.6): attributes, names, value casting, seeds.

Records are stored with their wire (camelCase) keys. Clients may name a field in camelCase
or snake_case (§8): :func:`snake` is the server's `Macro.underscore` and :func:`camel` its
output formatter.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

FieldType = Literal["uuid", "string", "e164", "tags", "datetime", "status"]

_BOUNDARY: Final = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
E164: Final = re.compile(r"\+[1-9][0-9]{1,14}")
CALL_STATUSES: Final = ("queued", "ringing", "in_progress", "completed", "failed")


def snake(name: str) -> str:
    """camelCase → snake_case like Elixir's ``Macro.underscore``: ``phoneE164`` → ``phone_e164``."""
    return _BOUNDARY.sub("_", name).lower()


def camel(name: str) -> str:
    """snake_case → camelCase, the output formatter (``phone_e164`` → ``phoneE164``)."""
    head, *rest = snake(name).split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


@dataclass(frozen=True, slots=True)
class Attribute:
    """One public attribute; ``name`` is its wire (camelCase) name."""

    name: str
    type: FieldType
    required: bool = False  # allow_nil? false
    create: bool = False  # accepted in create input
    update: bool = False  # accepted in update input

    @property
    def snake(self) -> str:
        return snake(self.name)


@dataclass(frozen=True, slots=True, eq=False)  # singletons: identity hash, cheap as a dict key
class Resource:
    """A resource: its attributes and the module name that leaks into ``vars.resource``."""

    module: str
    attributes: tuple[Attribute, ...]

    def attribute(self, client_name: str) -> Attribute | None:
        """Look a field up by any client casing (fields, filter, sort keys)."""
        wanted = snake(client_name)
        return next((a for a in self.attributes if a.snake == wanted), None)

    def input_attribute(self, key: str) -> Attribute | None:
        """Look an ``input`` key up: the exact wire name or the exact Ash name (§3.7)."""
        return next((a for a in self.attributes if key in (a.name, a.snake)), None)


CONTACT: Final = Resource(
    "Sippet.Contacts.Contact",
    (
        Attribute("id", "uuid", required=True),
        Attribute("fullName", "string", required=True, create=True, update=True),
        Attribute("phoneE164", "e164", required=True, create=True, update=True),
        Attribute("email", "string", create=True, update=True),
        Attribute("company", "string", create=True, update=True),
        Attribute("tags", "tags", create=True, update=True),
        Attribute("insertedAt", "datetime", required=True),
        Attribute("updatedAt", "datetime", required=True),
    ),
)

CALL: Final = Resource(
    "Sippet.Calls.Call",
    (
        Attribute("id", "uuid", required=True),
        Attribute("contactId", "uuid", create=True),
        Attribute("toE164", "e164", required=True, create=True),
        Attribute("status", "status", required=True),
        Attribute("insertedAt", "datetime", required=True),
    ),
)


class Invalid(ValueError):
    """A value that does not cast to the attribute's type."""


def cast(attribute: Attribute, value: object) -> Any:
    """Cast one input value as Ash would; strings are trimmed and ``""`` becomes nil."""
    if value is None:
        return None
    kind = attribute.type
    if kind == "tags":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise Invalid(attribute.name)
        return [v.strip() for v in value]
    if not isinstance(value, str):
        raise Invalid(attribute.name)
    text = value.strip()
    if kind == "e164" and text and not E164.fullmatch(text):
        raise Invalid(attribute.name)
    if kind == "uuid" and text:
        return canonical_uuid(text)
    if kind == "status" and text not in CALL_STATUSES:
        raise Invalid(attribute.name)
    if kind == "datetime" and text:
        return canonical_datetime(text)
    return text or None


def canonical_uuid(text: str) -> str:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise Invalid(text) from None


def canonical_datetime(text: str) -> str:
    """ISO-8601 → the stored form, so string order is time order (naive means UTC)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise Invalid(text) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return format_datetime(moment)


def format_datetime(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


Problem = tuple[Literal["required", "invalid"], Attribute]


def cast_input(
    resource: Resource,
    data: Mapping[str, object],
    mode: Literal["create", "update"],
    *,
    strict: bool = True,
) -> tuple[dict[str, Any], list[Problem]]:
    """Cast ``input`` for a create or update.

    Returns the changes and the problems found, in attribute order. An unknown key raises
    ``KeyError`` when ``strict`` (Ash NoSuchInput, §3.7); forms (``/validate``) ignore it.
    """
    changes: dict[str, Any] = {}
    bad: set[str] = set()
    for key, value in data.items():
        attribute = resource.input_attribute(key)
        if attribute is None or not getattr(attribute, mode):
            if strict:
                raise KeyError(key)
            continue
        try:
            changes[attribute.name] = cast(attribute, value)
        except Invalid:
            bad.add(attribute.name)
    problems: list[Problem] = []
    for attribute in resource.attributes:
        if attribute.name in bad:
            problems.append(("invalid", attribute))
        elif attribute.required and getattr(attribute, mode):
            present = attribute.name in changes
            if (mode == "create" or present) and changes.get(attribute.name) is None:
                problems.append(("required", attribute))
    return changes, problems


# --- deterministic seed data ---

_FIRST: Final = (
    *("Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Margaret"),
    *("Dennis", "Radia", "Tim", "Hedy", "Claude", "Katherine", "John", "Sophie", "Linus"),
    *("Annie", "Niklaus"),
)
_LAST: Final = (
    *("Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson"),
    *("Hamilton", "Ritchie", "Perlman", "Berners-Lee", "Lamarr", "Shannon", "Johnson"),
    *("McCarthy", "Wilson", "Torvalds", "Easley", "Wirth"),
)
_COMPANIES: Final = ("Acme", "Globex", "Initech", "Umbrella", "Hooli")
_TAGS: Final = ("vip", "lead", "customer", "partner")
SEED_EPOCH: Final = datetime(2024, 1, 1, tzinfo=UTC)


def seed_contact(index: int, contact_id: str) -> dict[str, Any]:
    """The ``index``-th seeded contact: distinct phone ``+1555000NNNN``, some nil email/company."""
    first = _FIRST[index % len(_FIRST)]
    last = _LAST[(index // len(_FIRST)) % len(_LAST)]
    stamp = format_datetime(SEED_EPOCH + timedelta(seconds=index))
    return {
        "id": contact_id,
        "fullName": f"{first} {last}",
        "phoneE164": f"+1555{index + 1:07d}",
        "email": None if index % 7 == 6 else f"{first}.{last}.{index}@example.com".lower(),
        "company": None if index % 3 == 2 else _COMPANIES[index % len(_COMPANIES)],
        "tags": [tag for bit, tag in enumerate(_TAGS) if (index >> bit) & 1],
        "insertedAt": stamp,
        "updatedAt": stamp,
    }
