"""``sippet import ACTION FILE``: a CSV or JSONL file through ``client.bulk``, resumable.

Each data row becomes one request (its mapped columns are the ``input``) and gets exactly one
outcome. Rows the server rejects, and rows that cannot even be read (bad JSON, too many
CSV values), go to the rejects file with their error; none is dropped. The journal sits next
to the file by default, so running the same command again resumes: done rows are skipped,
rows in doubt are reconciled (``--reconcile-by``) or reported unknown, failed rows are
tried again.

An error no retry can fix (a rejected key, an unknown action, a wrong URL) stops the import
at once, and so does ``--max-rejects`` when rows fail far more than expected: rows not sent
are counted, not listed, and the journal sends them on the next run.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from sippet_async._cli._progress import ImportProgress
from sippet_async._cli._rejects import (
    RejectLimit,
    Rejects,
    TooManyRejectsError,
    parse_max_rejects,
)
from sippet_async._cli._rows import (
    Format,
    Row,
    check_header,
    count_rows,
    format_of,
    parse_map,
    read_rows,
)
from sippet_async._cli._signals import STOP_SIGNALS, Interrupts, exit_code
from sippet_async._errors import (
    ActionNotFoundError,
    AuthenticationError,
    ProtocolError,
    SippetError,
    UsageError,
)
from sippet_async._jobs._bulk import DEFAULT_REDRIVE_WAIT, BulkJob
from sippet_async._jobs._report import BulkReport, default_key

if TYPE_CHECKING:
    from sippet_async._client import SippetClient

__all__ = [
    "ImportResult", "RejectLimit", "Row", "TooManyRejectsError", "add_arguments", "command",
    "import_file", "parse_map", "parse_max_rejects",
]

JOURNAL_SUFFIX: Final = ".journal"
REJECTS_SUFFIX: Final = ".rejects.jsonl"

# Exit codes of ``sippet import``: 0 and 2 are the CLI's own; 130 is Ctrl-C (``_cli``).
EXIT_OK: Final = 0  # every row succeeded, now or in an earlier run
EXIT_REJECTED: Final = 1  # the job ran to the end; some rows failed or are unknown
EXIT_STOPPED: Final = 3  # an error no retry can fix stopped it; rows were not sent
EXIT_TOO_MANY_REJECTS: Final = 4  # --max-rejects stopped it; rows were not sent
EXIT_CODES_HELP: Final = """\
exit codes:
  0    every row succeeded (now or in an earlier run)
  1    the job ran to the end; some rows failed or are unknown (see the rejects file)
  2    bad arguments
  3    stopped: an error no retry can fix (the key was rejected, the action does not
       exist, the URL is wrong); the rows not sent are sent by the next run
  4    stopped: more rows were rejected than --max-rejects allows
  130  interrupted (Ctrl-C): rows in flight finished and were recorded; the summary
       is printed and the same command resumes (a second Ctrl-C stops at once)
"""


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What an import did: the bulk report and where the rejects and journal are."""

    report: BulkReport
    rejected: int
    rejects: Path | None
    journal: Path
    signalled: signal.Signals | None = None  # what stopped it early (Ctrl-C: SIGINT)

    @property
    def ok(self) -> bool:
        """True when every row succeeded (now or in an earlier run)."""
        report = self.report
        return report.failed == report.unknown == report.not_sent == 0 \
            and self.signalled is None

    @property
    def stopped_by(self) -> SippetError | None:
        """Why the import stopped before sending every row (then ``report.not_sent`` rows
        were not sent: the next run sends them), or None."""
        return self.report.stopped_by


class _Request:
    """Row -> request keys; a row that cannot be sent raises UsageError (a failed outcome)."""

    def __init__(self, mapping: Mapping[str, str] | None) -> None:
        self._mapping = mapping

    def input(self, row: Row) -> dict[str, Any]:
        if row.problem is not None or row.values is None:
            raise UsageError(row.problem or f"row {row.number} has no values")
        if self._mapping is None:
            return dict(row.values)
        return {field: row.values[column] for field, column in self._mapping.items()
                if column in row.values}

    def __call__(self, row: Row) -> dict[str, Any]:
        return {"input": self.input(row)}


class _Lookup:
    """``--reconcile-by FIELD``: find the record a create may have made, by that field."""

    def __init__(self, client: SippetClient, action: str, field: str,
                 request: _Request) -> None:
        self._client = client
        self._action = action
        self._field = field
        self._request = request

    async def __call__(self, row: Row) -> Any:
        value = self._request.input(row).get(self._field)
        if value is None:
            raise UsageError(f"row {row.number} has no {self._field!r} to reconcile by")
        # No page: the filter leaves one record or none, and list_calls takes no page (§1.3).
        data = await self._client.run(
            self._action, fields=["id", self._field], filter={self._field: {"eq": value}},
        )
        records = data.get("results", []) if isinstance(data, Mapping) else data
        return records[0] if records else None


def _list_action_for(action: str) -> str:
    if not action.startswith("create_"):
        raise UsageError(
            f"--reconcile-by needs a create_* action (or --reconcile-action), got {action!r}"
        )
    return "list_" + action.removeprefix("create_") + "s"


async def import_file(
    client: SippetClient,
    action: str,
    path: str | Path,
    *,
    mapping: Mapping[str, str] | None = None,
    format: str | None = None,
    fields: Sequence[str] | None = ("id",),
    concurrency: int | None = None,
    journal: str | Path | None = None,
    rejects: str | Path | None = None,
    reconcile_by: str | None = None,
    reconcile_action: str | None = None,
    progress: bool = False,
    max_rejects: str | int | None = None,
    redrive_wait: float | None = None,
    stop_signals: Sequence[signal.Signals] = (),
) -> ImportResult:
    """Import every row of a CSV or JSONL file with ``action``; resumable through the journal.

    ``journal`` defaults to ``<file>.journal`` and ``rejects`` to ``<file>.rejects.jsonl``.
    ``max_rejects`` (``50`` or ``"5%"`` of the file's rows) stops the import once more rows
    than that are rejected; the rest are reported ``not_sent``. An error no retry can fix
    stops it too; either way ``stopped_by`` on the result says why. ``redrive_wait`` bounds
    how long rows wait for an unreachable server to answer again (default: the bulk job's).
    On the first of ``stop_signals`` (the command passes Ctrl-C and SIGTERM) no more rows
    are sent and those in flight finish (``signalled`` on the result); on the second those
    in flight are cancelled too (reported unknown, looked up or reported again next run).

    Example:
        result = await import_file(client, "create_contact", "contacts.csv",
                                   mapping={"fullName": "name", "phoneE164": "phone"},
                                   reconcile_by="phoneE164")
        print(result.report.summary(), result.rejected)
    """
    source, kind, journal_path, rejects_path = _plan(path, format, journal, rejects, mapping)
    limit = parse_max_rejects(max_rejects)
    request = _Request(mapping)
    lookup = None
    if reconcile_by is not None:
        lookup = _Lookup(client, reconcile_action or _list_action_for(action), reconcile_by,
                         request)
    counted = progress or (limit is not None and limit.percent is not None)
    total = count_rows(source, kind) if counted else None
    job = client.bulk(
        action, _rows(source, kind), fields=fields, request=request, key=_row_key,
        concurrency=concurrency, journal=journal_path, reconcile=lookup,
        redrive_wait=DEFAULT_REDRIVE_WAIT if redrive_wait is None else redrive_wait,
    )
    allowed = limit.allowed(total or 0) if limit is not None else None
    with Rejects(rejects_path) as rejected, ImportProgress(progress, total, job.report) as live, \
            Interrupts(stop_signals, job.stop, job.interrupt) as interrupts:
        async with job:
            async for outcome in job:
                # Rows not sent are counted, not listed: they are not rejected, and the
                # journal sends them on the next run.
                if not outcome.ok and outcome.status != "not_sent":
                    rejected.add(outcome)
                    if allowed is not None and rejected.count > allowed:
                        _too_many(job, rejected.count, allowed, limit, total)
                live.tick()
    return ImportResult(job.report, rejected.count,
                        rejects_path if rejected.count else None, journal_path,
                        interrupts.signum)


def _too_many(job: BulkJob[Row], rejected: int, allowed: int, limit: RejectLimit | None,
              rows: int | None) -> None:
    """Stop the job: more rows were rejected than ``--max-rejects`` allows."""
    if job.stopped_by is not None:
        return
    of = f" of {rows} rows" if limit is not None and limit.percent is not None else ""
    job.abort(TooManyRejectsError(
        f"too many rejects: {rejected} rows rejected, more than the {allowed} that "
        f"--max-rejects {limit}{of} allows", rejected=rejected, limit=allowed,
    ))


async def _rows(path: Path, format: Format) -> AsyncIterator[Row]:
    # An async generator so the feeder yields to the loop between rows of a huge file.
    for row in read_rows(path, format):
        yield row


def _row_key(row: Row) -> str:
    """Stable per row of one file: its number and its values (or its problem)."""
    return default_key({"row": row.number, "values": row.values, "problem": row.problem})


def _plan(
    path: str | Path, format: str | None, journal: str | Path | None,
    rejects: str | Path | None, mapping: Mapping[str, str] | None,
) -> tuple[Path, Format, Path, Path]:
    """Check the file and the options before any I/O; resolve the default paths."""
    source = Path(path)
    kind = format_of(source, format)
    if not source.is_file():
        raise UsageError(f"{source} is not a file")
    check_header(source, kind, mapping)
    journal_path = Path(journal) if journal is not None else _beside(source, JOURNAL_SUFFIX)
    rejects_path = Path(rejects) if rejects is not None else _beside(source, REJECTS_SUFFIX)
    return source, kind, journal_path, rejects_path


def _beside(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


# -- the command --------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``sippet import``."""
    parser.add_argument("action", help="the RPC action per row, e.g. create_contact")
    parser.add_argument("file", type=Path, help="a .csv (with a header) or .jsonl file")
    parser.add_argument("--map", metavar="FIELD=COLUMN,...",
                        help="input fields from columns, e.g. fullName=name,phoneE164=phone "
                             "(default: each column under its header name)")
    parser.add_argument("--format", choices=("csv", "jsonl"),
                        help="default: from the file name")
    parser.add_argument("--rate", type=float, metavar="N",
                        help="requests per second at most (default: no limit)")
    parser.add_argument("--concurrency", type=int, metavar="N",
                        help="rows in flight at once (default: 64)")
    parser.add_argument("--journal", type=Path,
                        help=f"the resume journal (default: FILE{JOURNAL_SUFFIX})")
    parser.add_argument("--rejects", type=Path,
                        help=f"failed/unknown rows with errors (default: FILE{REJECTS_SUFFIX})")
    parser.add_argument("--reconcile-by", metavar="FIELD",
                        help="look an uncertain create up by this input field before "
                             "re-sending it (e.g. phoneE164)")
    parser.add_argument("--reconcile-action", metavar="ACTION",
                        help="the list action for --reconcile-by (default: create_x -> "
                             "list_xs)")
    parser.add_argument("--max-rejects", metavar="N|P%",
                        help="stop once more than N rows (or P%% of the file's rows) are "
                             "rejected; the rest are not sent (exit code 4)")
    parser.add_argument("--redrive-wait", metavar="SECONDS", type=float,
                        help="how long rows wait for an unreachable server to answer again "
                             "before they are reported failed (default: 60)")
    parser.add_argument("--fields", default="id",
                        help="fields to ask back, comma-separated ('' for none; default: id)")
    parser.add_argument("--no-progress", action="store_true",
                        help="no live display even on a terminal")
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="log retries and pauses to stderr")


async def command(args: argparse.Namespace) -> int:
    """Run ``sippet import``; exit code 0 only when every row succeeded (``EXIT_CODES_HELP``)."""
    from sippet_async._client import SippetClient

    _configure_logging(args.verbose)
    mapping = parse_map(args.map)
    parse_max_rejects(args.max_rejects)  # a bad value is a usage error before any I/O
    if args.concurrency is not None and args.concurrency < 1:
        raise UsageError(f"--concurrency must be >= 1, got {args.concurrency}")
    fields = [name.strip() for name in args.fields.split(",") if name.strip()] or None
    options: dict[str, Any] = {"rate_limit": args.rate}
    if args.concurrency is not None:
        options["max_concurrency"] = args.concurrency
    progress = not args.no_progress and sys.stderr.isatty()
    async with SippetClient(args.api_key, base_url=args.base_url, **options) as client:
        result = await import_file(
            client, args.action, args.file, mapping=mapping, format=args.format,
            fields=fields, concurrency=args.concurrency, journal=args.journal,
            rejects=args.rejects, reconcile_by=args.reconcile_by,
            reconcile_action=args.reconcile_action, progress=progress,
            max_rejects=args.max_rejects, redrive_wait=args.redrive_wait,
            stop_signals=STOP_SIGNALS,
        )
    _print_summary(result)
    return _exit_code(result)


def _exit_code(result: ImportResult) -> int:
    if result.signalled is not None:
        return exit_code(result.signalled)
    if isinstance(result.stopped_by, TooManyRejectsError):
        return EXIT_TOO_MANY_REJECTS
    if result.stopped_by is not None:
        return EXIT_STOPPED
    return EXIT_OK if result.ok else EXIT_REJECTED


def _print_summary(result: ImportResult) -> None:
    out = sys.stderr
    print(f"sippet import: {result.report.summary()}", file=out)
    if result.rejects is not None:
        print(f"sippet import: {result.rejected} row(s) rejected or unknown, with their "
              f"errors: {result.rejects}", file=out)
    stopped = result.stopped_by
    if stopped is not None:
        print(f"sippet import: STOPPED by {type(stopped).__name__}: {stopped}", file=out)
        print(f"sippet import: {result.report.not_sent} row(s) not sent; {_remedy(stopped)}, "
              "then run the same command again to send them", file=out)
    if result.signalled is not None:
        print(f"sippet import: INTERRUPTED by {result.signalled.name}: rows in flight "
              "finished and were recorded; the rest were not sent", file=out)
    print(f"sippet import: journal {result.journal} (run the same command again to resume)",
          file=out)


def _remedy(cause: SippetError) -> str:
    """What to fix before the next run, by what stopped this one."""
    if isinstance(cause, AuthenticationError):
        return "check the API key (--api-key or $SIPPET_SECRET_KEY)"
    if isinstance(cause, ActionNotFoundError):
        return "check the action name"
    if isinstance(cause, TooManyRejectsError):
        return "fix the rows or --map (see the rejects file), or raise --max-rejects"
    if isinstance(cause, ProtocolError):
        return "check --base-url"
    return "fix the cause"


def _configure_logging(verbose: bool) -> None:
    logger = logging.getLogger("sippet_async")
    if verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
