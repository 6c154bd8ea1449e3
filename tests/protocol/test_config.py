"""Config validation: the masked key, environment fallbacks, base URLs, control characters."""

from __future__ import annotations

import pickle

import pytest

from sippet_async._config import (
    DEFAULT_BASE_URL,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_RESPONSE_BYTES,
    ApiKey,
    ClientConfig,
    Timeouts,
    check_token,
)
from sippet_async._errors import SippetError, UsageError

SECRET = "sk_test_9f8e7d6c5b4a39281706f5e4d3c2b1a0"
ENV_KEY = "SIPPET_SECRET_KEY"
ENV_URL = "SIPPET_BASE_URL"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test here sees a key or URL from the developer's environment."""
    monkeypatch.delenv(ENV_KEY, raising=False)
    monkeypatch.delenv(ENV_URL, raising=False)


def _resolve(
    api_key: str | ApiKey | None = SECRET,
    base_url: str | None = None,
    timeout: float | Timeouts | None = None,
) -> ClientConfig:
    return ClientConfig.resolve(
        api_key, base_url, timeout, DEFAULT_MAX_CONCURRENCY, DEFAULT_MAX_RESPONSE_BYTES
    )


def test_usage_error_is_a_value_error() -> None:
    """UsageError is both a SippetError and a ValueError."""
    assert issubclass(UsageError, SippetError)
    assert issubclass(UsageError, ValueError)


def test_missing_key_names_the_env_var() -> None:
    """No api_key and no $SIPPET_SECRET_KEY: UsageError telling where to put one."""
    with pytest.raises(UsageError, match=ENV_KEY):
        _resolve(api_key=None)


@pytest.mark.parametrize("value", ["", "   ", "\t"])
def test_empty_key_is_rejected(value: str) -> None:
    """An empty or blank key is a UsageError, whether passed or from the environment."""
    with pytest.raises(UsageError, match="api_key"):
        _resolve(api_key=value)


def test_empty_env_key_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    """SIPPET_SECRET_KEY set but empty is an error, not an anonymous client."""
    monkeypatch.setenv(ENV_KEY, "")
    with pytest.raises(UsageError, match="empty"):
        _resolve(api_key=None)


def test_key_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no api_key, $SIPPET_SECRET_KEY is used."""
    monkeypatch.setenv(ENV_KEY, SECRET)
    assert _resolve(api_key=None).api_key.reveal() == SECRET


def test_explicit_key_wins_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """An explicit api_key (str or ApiKey) beats the environment."""
    monkeypatch.setenv(ENV_KEY, "sk_env_000000000000")
    assert _resolve(api_key=SECRET).api_key.reveal() == SECRET
    assert _resolve(api_key=ApiKey(SECRET)).api_key == ApiKey(SECRET)


def test_base_url_default_env_and_explicit(monkeypatch: pytest.MonkeyPatch) -> None:
    """base_url: explicit, else $SIPPET_BASE_URL, else https://api.sippet.ai (§1.1)."""
    assert _resolve().base_url == DEFAULT_BASE_URL == "https://api.sippet.ai"
    monkeypatch.setenv(ENV_URL, "http://127.0.0.1:8080/")
    assert _resolve().base_url == "http://127.0.0.1:8080"
    assert _resolve(base_url="https://staging.sippet.ai").base_url == "https://staging.sippet.ai"


def test_malformed_env_base_url_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad $SIPPET_BASE_URL fails like a bad argument."""
    monkeypatch.setenv(ENV_URL, "ftp://files.example")
    with pytest.raises(UsageError, match="base_url"):
        _resolve()


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("api.sippet.ai", "http\\(s\\) URL with a host"),
        ("//api.sippet.ai", "http\\(s\\) URL with a host"),
        ("ftp://api.sippet.ai", "http\\(s\\) URL with a host"),
        ("file:///etc/passwd", "http\\(s\\) URL with a host"),
        ("https://", "http\\(s\\) URL with a host"),
        ("https:///rpc", "http\\(s\\) URL with a host"),
        ("", "http\\(s\\) URL with a host"),
        ("https://api.sippet.ai/?x=1", "query"),
        ("https://api.sippet.ai/#frag", "fragment"),
        ("https://user:pw@api.sippet.ai", "credentials"),
        ("https://user@api.sippet.ai", "credentials"),
        ("https://api.sippet.ai:99999", "port"),
        ("https://api.sippet.ai:http", "port"),
        ("https://api.sippet.ai:-1", "port"),
        ("https://api.sippet .ai", "whitespace"),
        (" https://api.sippet.ai", "whitespace"),
        ("https://api.sippet.ai ", "whitespace"),
        ("https://api.sippet.ai\u00a0", "whitespace"),
        ("https://api.sippet.ai\r\n", "control character"),
        ("https://api.sippet.ai/\x00", "control character"),
        ("https://api.sippet.ai\t", "control character"),
    ],
)
def test_malformed_base_url(url: str, problem: str) -> None:
    """A malformed base URL is a UsageError (also a ValueError) naming base_url and the problem."""
    with pytest.raises(UsageError, match=problem) as info:
        _resolve(base_url=url) if url else ClientConfig(api_key=ApiKey(SECRET), base_url=url)
    assert isinstance(info.value, ValueError)
    assert "base_url" in str(info.value)


@pytest.mark.parametrize("url", [123, b"https://api.sippet.ai", ["https://api.sippet.ai"]])
def test_non_string_base_url_is_a_usage_error(url: object) -> None:
    """A base URL that is not a str is named as such, not a bare TypeError."""
    with pytest.raises(UsageError, match="base_url must be a string"):
        _resolve(base_url=url)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        ("https://api.sippet.ai", "https://api.sippet.ai"),
        ("https://api.sippet.ai/", "https://api.sippet.ai"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://[::1]:8080/", "http://[::1]:8080"),
        ("https://gw.example/sippet/", "https://gw.example/sippet"),
        ("HTTPS://API.SIPPET.AI", "HTTPS://API.SIPPET.AI"),
    ],
)
def test_valid_base_url_loses_trailing_slash(url: str, kept: str) -> None:
    """Valid http(s) URLs are kept, minus a trailing slash, so paths join cleanly."""
    assert _resolve(base_url=url).base_url == kept


@pytest.mark.parametrize("bad", ["\r", "\n", "\x00", "\x7f", "\x1b"])
def test_control_characters_in_key_are_rejected_without_echoing_it(bad: str) -> None:
    """CR/LF/NUL (header injection) in the key: UsageError that never contains the key."""
    key = SECRET[:10] + bad + SECRET[10:]
    with pytest.raises(UsageError, match="api_key") as info:
        ApiKey(key)
    assert SECRET[3:] not in str(info.value)
    assert SECRET[:10] not in str(info.value)


@pytest.mark.parametrize("bad", ["\r", "\n", "\x00", "\r\nX-Evil: 1"])
def test_control_characters_in_action_are_rejected(bad: str) -> None:
    """CR/LF/NUL in an action name: UsageError naming 'action'."""
    with pytest.raises(UsageError, match="action") as info:
        check_token("action", "list_contacts" + bad)
    assert isinstance(info.value, ValueError)


def test_plain_tokens_pass_check() -> None:
    """Ordinary action names and keys pass check_token unchanged."""
    check_token("action", "list_contacts")
    check_token("api_key", SECRET)


def test_api_key_repr_and_str_are_masked() -> None:
    """repr() and str() of the key, and of the config holding it, never show it."""
    key = ApiKey(SECRET)
    for text in (repr(key), str(key), f"{key}", repr(_resolve(api_key=key)), str([key])):
        assert SECRET not in text
        assert SECRET[3:12] not in text
    assert key.masked == "sk_…"
    assert repr(key) == "ApiKey('sk_…')"


def test_short_key_masks_everything() -> None:
    """A short key reveals not even its prefix."""
    assert ApiKey("sk_short").masked == "…"
    assert "sk_" not in repr(ApiKey("sk_short"))


def test_api_key_reveal_equality_and_pickling() -> None:
    """reveal() gives the key; equal keys compare equal; pickling is refused (no leaks)."""
    key = ApiKey(SECRET)
    assert key.reveal() == SECRET
    assert key == ApiKey(SECRET)
    assert key != ApiKey(SECRET + "x")
    assert key != SECRET
    assert hash(key) == hash(ApiKey(SECRET))
    with pytest.raises(TypeError, match="pickled"):
        pickle.dumps(key)


@pytest.mark.parametrize(("timeout", "total"), [(None, 60.0), (5, 5.0), (2.5, 2.5), (90, 90.0)])
def test_timeout_as_seconds(timeout: float | None, total: float) -> None:
    """timeout is seconds per attempt; connect never exceeds it, and a stalled reply is
    left to it (no separate per-chunk wait)."""
    timeouts = _resolve(timeout=timeout).timeouts
    assert timeouts.total == total
    assert timeouts.connect <= total
    assert timeouts.read is None


def test_timeout_as_timeouts_is_kept() -> None:
    """An explicit Timeouts is used exactly as given."""
    given = Timeouts(connect=1.0, read=2.0, total=3.0)
    assert _resolve(timeout=given).timeouts is given


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf"), True, "5"])
def test_bad_timeout_is_rejected(timeout: object) -> None:
    """Non-positive, non-finite, boolean or non-numeric timeouts name the problem."""
    with pytest.raises(UsageError, match="timeout"):
        _resolve(timeout=timeout)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_concurrency", 0), ("max_concurrency", 1.5), ("max_response_bytes", 10)],
)
def test_bad_limits_are_rejected(field: str, value: object) -> None:
    """Limits out of range are UsageErrors naming the field."""
    kwargs: dict[str, object] = {"api_key": ApiKey(SECRET), field: value}
    with pytest.raises(UsageError, match=field):
        ClientConfig(**kwargs)  # type: ignore[arg-type]


def test_config_is_frozen() -> None:
    """A resolved config cannot be changed afterwards."""
    config = _resolve()
    with pytest.raises(AttributeError):
        config.base_url = "https://evil.example"  # type: ignore[misc]
