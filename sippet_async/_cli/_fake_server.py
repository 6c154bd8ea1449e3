"""Serve the local Sippet-compatible fake server until Ctrl-C or SIGTERM, with optional faults.

Each RPC request draws once from a generator seeded by --seed, so a run repeats exactly.
Faults stand for the layers in front of Sippet (proxies, load balancers): they answer with
non-200 statuses and non-envelope bodies, or drop the connection.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import sys
from collections.abc import Callable
from typing import Final

from sippet_async import UsageError
from sippet_async.testing import FakeSippet, Faults, run_forever

__all__ = ["add_arguments", "command", "faults_from"]

DEFAULT_PORT: Final = 8787  # a fixed port, so a second shell can point at it without reading it

# (flag, Faults field, help); the probabilities add up to at most 1 together.
_CHANCES: Final = (
    ("--p-500", "p_500", "chance of HTTP 500 with an HTML body; the action does not run"),
    ("--p-503", "p_503",
     "chance of HTTP 503 with Retry-After (see --retry-after); the action does not run"),
    ("--p-429", "p_429",
     "chance of HTTP 429 with Retry-After (see --retry-after); the action does not run"),
    ("--p-reset-before", "p_reset_before",
     "chance the connection is dropped before the action runs"),
    ("--p-lost-after-commit", "p_lost_after_commit",
     "chance the action runs, then the connection is dropped without a reply"),
)


def _probability(text: str) -> float:
    value = _number(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a probability within [0, 1], got {text}")
    return value


def _seconds(text: str) -> float:
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be seconds >= 0, got {text}")
    return value


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def _int_at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {text}")
        return value

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``sippet fake-server``, each with its help line."""
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=_int_at_least(0), default=DEFAULT_PORT,
                        help=f"port to listen on; 0 picks a free one (default: {DEFAULT_PORT})")
    parser.add_argument("--seed-contacts", type=_int_at_least(0), default=0, metavar="N",
                        help="deterministic contacts created at start-up (default: 0)")
    parser.add_argument("--seed", type=int, default=0, metavar="N",
                        help="seeds record ids and the fault draws, so a run repeats "
                             "exactly (default: 0)")
    parser.add_argument("--honour-idempotency-key", action="store_true",
                        help="replay the first result for a repeated Idempotency-Key on /run "
                             "(default: the header is ignored)")
    faults = parser.add_argument_group(
        "faults", "Each RPC request draws once; the probabilities add up to at most 1.")
    for flag, _, text in _CHANCES:
        faults.add_argument(flag, type=_probability, default=0.0, metavar="P",
                            help=f"{text} (default: 0)")
    faults.add_argument("--retry-after", type=_seconds, default=1.0, metavar="SECONDS",
                        help="seconds sent in Retry-After by the 503 and 429 faults "
                             "(default: 1)")
    faults.add_argument("--latency", type=_seconds, default=0.0, metavar="SECONDS",
                        help="seconds added before answering each RPC request the faults "
                             "cover (default: 0)")
    faults.add_argument("--rate-limit", type=_int_at_least(1), default=None, metavar="N",
                        help="admit at most N requests in any rolling second; the rest get "
                             "429 with the exact Retry-After, not run (default: no limit)")
    faults.add_argument("--rate-limit-headers", action="store_true",
                        help="also send RateLimit-Limit/-Remaining/-Reset with each 429")
    faults.add_argument("--only-action", action="append", metavar="ACTION",
                        dest="only_actions",
                        help="apply the faults only to this action; repeat for several "
                             "(default: every action)")


def faults_from(args: argparse.Namespace) -> Faults | None:
    """The ``Faults`` the options ask for, or None when they ask for none."""
    chances = {field: getattr(args, field) for _, field, _ in _CHANCES}
    if not any(chances.values()) and args.latency == 0 and args.rate_limit is None:
        return None
    try:
        return Faults(
            **chances,
            retry_after=args.retry_after,
            latency=args.latency,
            rate_limit=args.rate_limit,
            rate_limit_headers=args.rate_limit_headers,
            only_actions=frozenset(args.only_actions) if args.only_actions else None,
        )
    except ValueError as exc:  # the sum of the probabilities; each one is checked above
        raise UsageError(str(exc)) from exc


def _describe(faults: Faults | None) -> str:
    if faults is None:
        return "no faults"
    default = Faults()
    changed = [
        f"{name}={getattr(faults, name)!r}"
        for name in ("p_500", "p_503", "p_429", "p_reset_before", "p_lost_after_commit",
                     "retry_after", "latency", "rate_limit", "rate_limit_headers")
        if getattr(faults, name) != getattr(default, name)
    ]
    if faults.only_actions is not None:
        changed.append(f"only_actions={sorted(faults.only_actions)}")
    return "faults: " + ", ".join(changed)


async def command(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; the banner goes to stderr once the port is bound."""
    api_key = args.api_key or os.environ.get("SIPPET_SECRET_KEY")
    if not api_key:
        raise UsageError("fake-server needs --api-key or SIPPET_SECRET_KEY")
    faults = faults_from(args)

    def ready(server: FakeSippet) -> None:
        # A process of its own: the startup heap (imports, the app) leaves the collector's
        # reach, so a full collection stalls arrival stamps (and the rolling limit that
        # counts them) for ~10 ms, not 20-40 ms (docs/design.md, register of shortcuts).
        gc.freeze()
        print(f"fake Sippet listening on {server.url} ({_describe(faults)}; Ctrl-C to stop)",
              file=sys.stderr, flush=True)

    await run_forever(
        args.host, args.port, api_key, args.seed_contacts,
        handle_signals=True, on_ready=ready, faults=faults, seed=args.seed,
        honour_idempotency_key=args.honour_idempotency_key,
    )
    return 0
