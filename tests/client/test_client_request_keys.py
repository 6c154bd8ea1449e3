"""Every request key of docs/protocol.md §3 reaches the server exactly as specified."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from sippet_async import SippetClient, SippetError
from sippet_async.testing import FakeSippet

RUN = "/rpc/public/run"
VALIDATE = "/rpc/public/validate"


async def _sent(server: FakeSippet, client: SippetClient, action: str,
                **keys: Any) -> dict[str, Any]:
    """Run ``action`` (ignoring the RPC outcome) and return the JSON body the server got."""
    # The RPC outcome is not under test here, the bytes are; only our own errors may occur.
    with contextlib.suppress(SippetError):
        await client.run(action, **keys)
    assert len(server.requests) == 1
    body = server.requests[-1].json
    assert isinstance(body, dict)
    return body


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        pytest.param({}, {"action": "list_calls"}, id="action-only"),
        pytest.param({"fields": ["id", "fullName"]},
                     {"fields": ["id", "fullName"]}, id="fields-strings"),
        pytest.param({"fields": ["id", {"calls": ["id", {"contact": ["fullName"]}]}]},
                     {"fields": ["id", {"calls": ["id", {"contact": ["fullName"]}]}]},
                     id="fields-nested-objects"),
        pytest.param({"input": {"fullName": "Ada", "phoneE164": "+15555550123"}},
                     {"input": {"fullName": "Ada", "phoneE164": "+15555550123"}}, id="input"),
        pytest.param({"input": {"meta": {"a_b": [1, {"c": None}]}}},
                     {"input": {"meta": {"a_b": [1, {"c": None}]}}}, id="input-nested-verbatim"),
        pytest.param({"identity": "3f1c0000-0000-4000-8000-000000000000"},
                     {"identity": "3f1c0000-0000-4000-8000-000000000000"}, id="identity-raw"),
        pytest.param({"identity": {"email": "a@b.c"}},
                     {"identity": {"email": "a@b.c"}}, id="identity-object"),
        pytest.param({"filter": {"and": [{"fullName": {"eq": "Ada"}},
                                         {"tags": {"isNil": False}}]}},
                     {"filter": {"and": [{"fullName": {"eq": "Ada"}},
                                         {"tags": {"isNil": False}}]}}, id="filter"),
        pytest.param({"sort": "-insertedAt"}, {"sort": "-insertedAt"}, id="sort-string"),
        pytest.param({"sort": ["++fullName", "-insertedAt"]},
                     {"sort": ["++fullName", "-insertedAt"]}, id="sort-list"),
        pytest.param({"page": {"limit": 20, "offset": 40, "count": True}},
                     {"page": {"limit": 20, "offset": 40, "count": True}}, id="page-offset"),
        pytest.param({"page": {"limit": 20, "after": "g2wA+/=="}},
                     {"page": {"limit": 20, "after": "g2wA+/=="}}, id="page-keyset"),
        pytest.param({"metadata_fields": ["someString"]},
                     {"metadataFields": ["someString"]}, id="metadataFields"),
        pytest.param({"get_by": {"email": "a@b.c"}},
                     {"getBy": {"email": "a@b.c"}}, id="getBy"),
        pytest.param({"tenant": "org_1"}, {"tenant": "org_1"}, id="tenant"),
    ],
)
async def test_each_key_is_sent_camelcased_and_alone(
    server: FakeSippet, client: SippetClient, keys: dict[str, Any], expected: dict[str, Any]
) -> None:
    """Each key arrives camelCased, with its value untouched, and no other key is added."""
    body = await _sent(server, client, "list_calls", **keys)
    assert body == {"action": "list_calls", **expected}


async def test_all_keys_together_exactly(server: FakeSippet, client: SippetClient) -> None:
    """A request with every §3.1 key carries exactly those keys, in camelCase."""
    keys: dict[str, Any] = {
        "input": {"fullName": "Ada"}, "identity": "id-1", "fields": ["id"],
        "filter": {"fullName": {"eq": "Ada"}}, "sort": "fullName", "page": {"limit": 1},
        "metadata_fields": ["m"], "get_by": {"email": "a@b.c"}, "tenant": "t",
    }
    body = await _sent(server, client, "update_contact", **keys)
    assert set(body) == {"action", "input", "identity", "fields", "filter", "sort", "page",
                         "metadataFields", "getBy", "tenant"}
    assert not any("_" in key for key in body)


async def test_none_valued_keys_are_not_sent(server: FakeSippet, client: SippetClient) -> None:
    """A key given as None is treated as not given (only the given keys are sent)."""
    body = await _sent(server, client, "list_calls", fields=["id"], filter=None, page=None)
    assert body == {"action": "list_calls", "fields": ["id"]}


async def test_run_posts_json_with_key_header(
    server: FakeSippet, client: SippetClient, api_key: str
) -> None:
    """/run is a POST with x-api-key and content-type: application/json (§1.1, §2)."""
    await client.run("list_calls", fields=["id"])
    request = server.requests[-1]
    assert request.method == "POST"
    assert request.path == RUN
    assert request.headers["x-api-key"] == api_key
    assert request.headers["content-type"] == "application/json"
    assert [name for name, value in request.headers.items() if api_key in value] == [
        "x-api-key"
    ], "the key travels in x-api-key only"
    assert request.action == "list_calls"


async def test_validate_posts_to_validate_path(
    server: FakeSippet, client: SippetClient, api_key: str
) -> None:
    """validate() is a POST to /rpc/public/validate with the same headers and body rules."""
    await client.validate("create_contact", input={"fullName": "Ada"}, fields=["id"])
    request = server.requests[-1]
    assert (request.method, request.path) == ("POST", VALIDATE)
    assert request.headers["x-api-key"] == api_key
    assert request.headers["content-type"] == "application/json"
    assert request.json == {"action": "create_contact", "input": {"fullName": "Ada"},
                            "fields": ["id"]}


async def test_body_is_compact_utf8_json(server: FakeSippet, client: SippetClient) -> None:
    """Non-ASCII values travel as UTF-8 JSON and decode back to the same text."""
    body = await _sent(server, client, "list_calls", filter={"fullName": {"eq": "Zoë 李"}})
    assert body["filter"] == {"fullName": {"eq": "Zoë 李"}}
    assert "Zoë 李".encode() in server.requests[-1].body
