"""Decoding cost per record of one list page: our typed path against the alternatives.

Run by hand (figures are printed, nothing is asserted):

    python benchmarks/bench_decode.py            # a 1,000-record page
    python benchmarks/bench_decode.py 5000       # another page size
    python benchmarks/bench_decode.py --tiny     # a quick smoke run

Paths, all decoding the same ``/run`` reply body (envelope + keyset page of contacts):

* ours, typed: ``_protocol.decode_run(..., type=page_type(Contact))`` — what
  ``client.iter(..., type=Contact)`` does per page (one cached decoder of a typed
  envelope, straight into ``KeysetPage[Contact]``; the two-pass Raw reading is kept
  for replies that fail it, to name the failing path);
* bare msgspec: one ``msgspec.json.Decoder`` of an envelope Struct whose ``data`` is the
  same page type — the floor for decoding into these Structs (one pass); the "envelope
  pass" row is what a first pass keeping ``data`` as ``msgspec.Raw`` would add;
* ours, dicts: ``decode_run`` without a type (what ``iter`` yields by default);
* msgspec into dicts: ``msgspec.json.decode(body)``;
* json + dataclasses: ``json.loads`` then a dataclass per record (camelCase keys renamed,
  datetimes parsed), the usual hand-written alternative.

Targets (issue 3): ours typed within 1.2x of bare msgspec, and >= 3x faster than
json + dataclasses.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import msgspec

from sippet_async import Contact
from sippet_async._protocol import HttpResponse, decode_run
from sippet_async._walk import page_type

_TAGS = ("vip", "lead", "partner", "churned", "beta")


def make_body(records: int) -> bytes:
    """A ``/run`` reply: an envelope around one keyset page of ``records`` contacts."""
    epoch = datetime(2024, 1, 1, tzinfo=UTC)
    results = []
    for i in range(records):
        stamp = (epoch + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        results.append({
            "id": str(uuid.UUID(int=i + 1, version=4)),
            "fullName": f"Person {i}",
            "phoneE164": f"+1555{i:07d}",
            "email": None if i % 7 == 6 else f"person.{i}@example.com",
            "company": None if i % 3 == 2 else "Acme",
            "tags": [t for bit, t in enumerate(_TAGS) if (i >> bit) & 1],
            "insertedAt": stamp,
            "updatedAt": stamp,
        })
    page = {"type": "keyset", "results": results, "hasMore": True, "limit": records,
            "after": None, "before": None, "count": None,
            "previousPage": "+/+/first==", "nextPage": "+/+/last=="}
    return msgspec.json.encode({"success": True, "data": page})


@dataclass(slots=True)
class ContactDC:
    """The dataclass a hand-written client would use."""

    id: str
    full_name: str
    phone_e164: str
    email: str | None
    company: str | None
    tags: list[str]
    inserted_at: datetime
    updated_at: datetime


def _json_dataclasses(body: bytes) -> list[ContactDC]:
    data = json.loads(body)["data"]
    return [
        ContactDC(id=r["id"], full_name=r["fullName"], phone_e164=r["phoneE164"],
                  email=r["email"], company=r["company"], tags=r["tags"],
                  inserted_at=datetime.fromisoformat(r["insertedAt"]),
                  updated_at=datetime.fromisoformat(r["updatedAt"]))
        for r in data["results"]
    ]


def paths(body: bytes) -> dict[str, Callable[[], object]]:
    """name -> a zero-argument function decoding ``body`` once."""
    typed = page_type(Contact)
    untyped = page_type(None)
    response = HttpResponse(status=200, headers={}, body=body)

    envelope = msgspec.defstruct("Envelope", [("success", bool), ("data", typed)])
    bare = msgspec.json.Decoder(envelope)
    raw_only = msgspec.json.Decoder(
        msgspec.defstruct("RawEnvelope", [("success", bool), ("data", msgspec.Raw)]))
    plain = msgspec.json.Decoder()
    return {
        "ours, typed (Contact)": lambda: decode_run("list_contacts", response, typed),
        "bare msgspec, same Struct": lambda: bare.decode(body),
        "  envelope pass (Raw data)": lambda: raw_only.decode(body),
        "ours, dicts": lambda: decode_run("list_contacts", response, untyped),
        "msgspec into dicts": lambda: plain.decode(body),
        "json.loads + dataclasses": lambda: _json_dataclasses(body),
    }


def best_ns(fn: Callable[[], object], repeat: int, number: int) -> float:
    """Best-of-``repeat`` nanoseconds per call (GC left on: records are kept in real use)."""
    fn()  # warm caches and decoders
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter_ns()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter_ns() - start) / number)
    return best


def main(argv: Sequence[str] | None = None) -> int:
    """Print ns/record for each path and the two target ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("records", nargs="?", type=int, default=1000, help="records per page")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--number", type=int, default=20, help="decodes per repeat")
    parser.add_argument("--tiny", action="store_true", help="a fast smoke run")
    args = parser.parse_args(argv)
    if args.tiny:
        args.records, args.rounds, args.repeat, args.number = 50, 1, 2, 2
    body = make_body(args.records)
    gc.collect()
    results: dict[str, float] = {}
    print(f"decoding one {args.records:,}-record page ({len(body):,} bytes), "
          f"best of {args.rounds} rounds x {args.repeat} x {args.number}:")
    candidates = paths(body)
    for _ in range(args.rounds):  # interleaved rounds: a noisy moment hits every path
        for name, fn in candidates.items():
            ns = best_ns(fn, args.repeat, args.number) / args.records
            results[name] = min(results.get(name, ns), ns)
    for name, ns in results.items():
        print(f"  {name:<28} {ns:8.0f} ns/record")
    ours = results["ours, typed (Contact)"]
    floor = results["bare msgspec, same Struct"]
    baseline = results["json.loads + dataclasses"]
    overhead, speedup = ours / floor, baseline / ours
    print(f"ours typed / bare msgspec:            {overhead:5.2f}x  (target <= 1.20x: "
          f"{'met' if overhead <= 1.2 else 'MISSED'})")
    print(f"json+dataclasses / ours typed:        {speedup:5.2f}x  (target >= 3x: "
          f"{'met' if speedup >= 3 else 'MISSED'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
