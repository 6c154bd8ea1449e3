"""Every hand-written wire sample through decode_run / decode_validate (docs/protocol.md §4-§7,
§12)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from sippet_async._errors import ProtocolError, RpcError, SippetError
from sippet_async._models import ErrorItem, RunResult
from sippet_async._protocol import decode_run, decode_validate, error_for_status

from ._wire import GROUPS, RUN_KEYS, VALIDATE_KEYS, Sample, check_raised, check_result_keys, load
from ._wire import params as sample_params

ALL = sample_params(*GROUPS)


def test_every_group_has_samples() -> None:
    """The table is not silently empty (a moved folder would make every test vanish)."""
    counts = {group: len(load(group)) for group in GROUPS}
    assert all(count >= 10 for count in counts.values()), counts


@pytest.mark.parametrize("sample", ALL)
def test_decode_run(sample: Sample) -> None:
    """decode_run returns the sample's data/metadata or raises exactly its exception."""
    expect = sample.run
    if "raises" in expect:
        with pytest.raises(SippetError) as info:
            decode_run(sample.action, sample.response)
        check_raised(info.value, expect)
        return
    check_result_keys(expect, RUN_KEYS)
    result: RunResult[Any] = decode_run(sample.action, sample.response)
    assert result.data == expect["data"]
    assert result.metadata == expect["metadata"]


@pytest.mark.parametrize("sample", ALL)
def test_decode_validate(sample: Sample) -> None:
    """decode_validate returns ok/errors or raises exactly the sample's exception (§7)."""
    expect = sample.validate
    if "raises" in expect:
        with pytest.raises(SippetError) as info:
            decode_validate(sample.action, sample.response)
        check_raised(info.value, expect)
        return
    check_result_keys(expect, VALIDATE_KEYS)
    result = decode_validate(sample.action, sample.response)
    assert result.ok is expect["ok"]
    assert bool(result) is expect["ok"]
    assert [item.kind for item in result.errors] == expect.get("kinds", [])


@pytest.mark.parametrize("sample", sample_params("success", "errors", "malformed"))
def test_status_200_is_not_an_error_by_status(sample: Sample) -> None:
    """A 200 is judged by its body alone: error_for_status returns None (§2, §12.1)."""
    assert error_for_status(sample.action, sample.response) is None


@pytest.mark.parametrize("sample", sample_params("status"))
def test_non_200_maps_by_status_before_body(sample: Sample) -> None:
    """error_for_status alone already gives the sample's exception (§12.1: status first)."""
    error = error_for_status(sample.action, sample.response)
    assert error is not None
    check_raised(error, sample.run)


def _wire_item(item: ErrorItem) -> dict[str, Any]:
    """The item as JSON would carry it (camelCase keys, arrays as lists)."""
    decoded: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(item))
    return decoded


@pytest.mark.parametrize("sample", sample_params("errors"))
def test_error_items_keep_every_key_sent(sample: Sample) -> None:
    """`.errors` holds one ErrorItem per wire item, each key as sent, absent (or null)
    keys defaulted."""
    sent = sample.body_json["errors"]
    with pytest.raises(SippetError) as info:
        decode_run(sample.action, sample.response)
    items: tuple[ErrorItem, ...] = getattr(info.value, "errors")  # noqa: B009
    assert len(items) == len(sent)
    defaults = _wire_item(ErrorItem())
    for item, wire in zip(items, sent, strict=True):
        decoded = _wire_item(item)
        expected = {key: defaults[key] if value is None else value for key, value in wire.items()}
        assert {key: decoded[key] for key in wire} == expected
        assert {k: v for k, v in decoded.items() if k not in wire} == {
            k: v for k, v in defaults.items() if k not in wire
        }


@pytest.mark.parametrize("sample", sample_params("errors"))
def test_validate_errors_equal_run_errors(sample: Sample) -> None:
    """/validate reports the same items /run raises for the same envelope (§7)."""
    with pytest.raises(SippetError) as info:
        decode_run(sample.action, sample.response)
    run_items = getattr(info.value, "errors")  # noqa: B009
    if "raises" in sample.validate:
        with pytest.raises(SippetError) as vinfo:
            decode_validate(sample.action, sample.response)
        assert getattr(vinfo.value, "errors") == run_items  # noqa: B009
    else:
        assert decode_validate(sample.action, sample.response).errors == run_items


@pytest.mark.parametrize("sample", sample_params("errors"))
def test_rpc_error_str_names_action_and_first_error(sample: Sample) -> None:
    """str(error) is '<action>: <kind>: <first rendered message>' (§6.2)."""
    with pytest.raises(SippetError) as info:
        decode_run(sample.action, sample.response)
    error = info.value
    items: tuple[ErrorItem, ...] = getattr(error, "errors")  # noqa: B009
    first = items[0]
    label = first.type or first.code or "error"
    assert str(error).startswith(f"{sample.action}: {label}: {first.render()}")
    if isinstance(error, RpcError):
        assert error.action == sample.action
        assert error.first == first


@pytest.mark.parametrize("sample", sample_params("malformed"))
def test_protocol_errors_are_chained_from_the_decoder(sample: Sample) -> None:
    """A malformed reply's ProtocolError keeps the decoder's error as __cause__ when one exists."""
    with pytest.raises(ProtocolError) as info:
        decode_run(sample.action, sample.response)
    cause = info.value.__cause__
    assert cause is None or isinstance(
        cause, msgspec.MsgspecError | UnicodeDecodeError | RecursionError)
    assert info.value.status == 200
