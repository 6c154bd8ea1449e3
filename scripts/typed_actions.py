"""The table the typed methods are generated from: one entry per action.

``python scripts/generate_typed_methods.py`` writes ``sippet_async/_typed_methods.py`` from
it; ``tests/typed/test_generated.py`` fails when that file is not what the table gives.
Adding an action is one ``Method`` here (and a resource, one ``Resource``), then a re-run.

Kinds (docs/protocol.md §1.3, §3.5):

* ``list``: ``client.iter(action, fields=..., type=record)``; ``paginated=False`` for an
  action that answers a plain array and takes no ``page`` (``list_calls``);
* ``get``: ``input={"id": id}`` and ``fields``, returns one record;
* ``create``: ``input=<input Struct>`` and ``fields``, returns the record;
* ``update``: ``identity=id``, ``input=<input Struct>`` and ``fields``, returns the record;
* ``destroy``: ``identity=id``, returns nothing;
* ``by_id``: a generic action on one record, ``input={"id": id}``, returns nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["list", "get", "create", "update", "destroy", "by_id"]


@dataclass(frozen=True)
class Method:
    """One typed method: its Python name, the action it runs, and how."""

    name: str
    action: str
    kind: Kind
    doc: str
    input: str | None = None  # the input Struct of create / update (in _resources)
    paginated: bool = True  # list only: False for a plain array without `page`


@dataclass(frozen=True)
class Resource:
    """A resource: ``client.<attribute>`` is a ``<name>Resource`` of records ``record``."""

    attribute: str
    name: str
    record: str  # a Struct in sippet_async._resources
    methods: tuple[Method, ...]


RESOURCES: tuple[Resource, ...] = (
    Resource("contacts", "Contacts", "Contact", (
        Method("list", "list_contacts", "list", "Every contact, following the pages."),
        Method("get", "get_contact", "get", "One contact by id."),
        Method("create", "create_contact", "create", "Create a contact.",
               input="CreateContact"),
        Method("update", "update_contact", "update",
               "Change the attributes ``input`` gives; None clears an optional one.",
               input="UpdateContact"),
        Method("destroy", "destroy_contact", "destroy",
               "Delete a contact (deleting one that does not exist succeeds, §3.5)."),
    )),
    Resource("calls", "Calls", "Call", (
        Method("list", "list_calls", "list",
               "Every call (``list_calls`` answers one plain array and takes no ``page``).",
               paginated=False),
        Method("get", "get_call", "get", "One call by id."),
        Method("create", "create_call", "create", "Place a call.", input="CreateCall"),
        Method("end", "end_call", "by_id", "End a call."),
    )),
)
