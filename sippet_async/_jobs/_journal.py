"""The bulk journal: an append-only JSONL file that lets a killed job resume without loss.

One header line names the job, then one line per event::

    {"sippetJournal":1,"action":"create_contact","job":"3f2a…"}
    {"i":0,"k":"+15550000001","s":"started"}
    {"i":0,"k":"+15550000001","s":"succeeded","id":"6d1c…"}
    {"i":1,"k":"+15550000002","s":"failed","e":"InvalidInputError: …"}

Every line is handed to the OS as it is recorded, so ``kill -9`` loses nothing recorded: a
``started`` line is written *before* the request is sent, so after a crash every item that
may have executed is known (it has a ``started`` line and no final one). ``fsync`` runs in
small batches in a worker thread, so an OS crash or power loss may lose the last ~50 ms.
The last line of a journal may be truncated (a crash mid-write); it is dropped on open.

A call worker's journal (``by="key"``, its header says ``"by":"key"``) has the same lines,
but a queue has no stable index: ``i`` is only the request's number in its run, and what an
earlier run recorded is looked up by the item's key (``previous_key``), the last line per
key winning. It also learns from its own lines, so a key is placed at most once per journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import msgspec

from sippet_async._errors import UsageError

try:  # POSIX: one running job per journal; Windows has no fcntl and goes without a lock.
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = ["By", "FinalStatus", "Journal", "Previous", "key_digest"]

FinalStatus = Literal["succeeded", "failed", "unknown"]
Status = Literal["started", "succeeded", "failed", "unknown"]
# What a journal's history is looked up by: the item's index in the input (a bulk job), or
# its key (a call worker: a queue has no stable index).
By = Literal["index", "key"]

FORMAT_VERSION: Final = 1
# fsync at most this often; each runs in a worker thread so the loop never blocks on disk.
FSYNC_INTERVAL: Final = 0.05
# Error texts are for people reading the journal; the rejects file has the full error.
_MAX_ERROR_TEXT: Final = 300
_MAX_INDEX: Final = 1 << 40

log: Final = logging.getLogger("sippet_async")

_CODES: Final[dict[str, int]] = {"started": 1, "succeeded": 2, "failed": 3, "unknown": 4}
_NAMES: Final[tuple[Status, ...]] = ("started", "started", "succeeded", "failed", "unknown")
_DIGEST_SIZE: Final = 8
_NO_ID: Final = bytes(16)


class _Header(msgspec.Struct, kw_only=True, omit_defaults=True,
              rename={"version": "sippetJournal"}):
    version: int
    action: str
    job: str
    by: str = "index"  # omitted for a bulk job's journal: its lines are as they always were


class _Entry(msgspec.Struct, omit_defaults=True):
    i: int
    k: str
    s: str
    id: str | None = None
    e: str | None = None


_ENCODER: Final = msgspec.json.Encoder()
_HEADER: Final = msgspec.json.Decoder(_Header)
_ENTRY: Final = msgspec.json.Decoder(_Entry)


def key_digest(key: str) -> bytes:
    """A short fingerprint of an item key: what a resumed run compares, per index."""
    return hashlib.blake2b(key.encode(), digest_size=_DIGEST_SIZE).digest()


@dataclass(frozen=True, slots=True)
class Previous:
    """What an earlier run recorded last for one index."""

    status: Status
    digest: bytes
    record_id: str | None


class _History:
    """Per-index state of earlier runs in ~25 bytes an index, so a resumed million-item job
    stays small: a status byte, an 8-byte key digest and a 16-byte uuid (other ids aside)."""

    def __init__(self) -> None:
        self._status = bytearray()
        self._digests = bytearray()
        self._ids = bytearray()
        self._other_ids: dict[int, str] = {}
        self.count = 0

    def _grow(self, index: int) -> None:
        missing = index + 1 - len(self._status)
        if missing > 0:
            missing = max(missing, len(self._status) // 2)  # amortised growth
            self._status.extend(bytes(missing))
            self._digests.extend(bytes(missing * _DIGEST_SIZE))
            self._ids.extend(bytes(missing * 16))

    def set(self, index: int, status: Status, digest: bytes, record_id: str | None) -> None:
        self._grow(index)
        if self._status[index] == 0:
            self.count += 1
        self._status[index] = _CODES[status]
        self._digests[index * _DIGEST_SIZE:(index + 1) * _DIGEST_SIZE] = digest
        if record_id is None and status == "started":
            return  # a new attempt does not forget the id an earlier one recorded
        packed = _NO_ID
        self._other_ids.pop(index, None)
        if record_id is not None:
            try:
                parsed = uuid.UUID(record_id)
            except ValueError:
                parsed = None
            if parsed is not None and str(parsed) == record_id:
                packed = parsed.bytes
            else:
                self._other_ids[index] = record_id
        self._ids[index * 16:(index + 1) * 16] = packed

    def get(self, index: int) -> Previous | None:
        if index >= len(self._status) or self._status[index] == 0:
            return None
        packed = bytes(self._ids[index * 16:(index + 1) * 16])
        record_id = self._other_ids.get(index)
        if record_id is None and packed != _NO_ID:
            record_id = str(uuid.UUID(bytes=packed))
        return Previous(
            status=_NAMES[self._status[index]],
            digest=bytes(self._digests[index * _DIGEST_SIZE:(index + 1) * _DIGEST_SIZE]),
            record_id=record_id,
        )


class _KeyHistory:
    """A call worker's history: the last status (and record id) per key digest."""

    def __init__(self) -> None:
        self._last: dict[bytes, tuple[Status, str | None]] = {}

    @property
    def count(self) -> int:
        return len(self._last)

    def set(self, index: int, status: Status, digest: bytes, record_id: str | None) -> None:
        if record_id is None and status == "started":  # keep what an earlier attempt found
            earlier = self._last.get(digest)
            record_id = earlier[1] if earlier is not None else None
        self._last[digest] = (status, record_id)

    def get(self, digest: bytes) -> Previous | None:
        last = self._last.get(digest)
        if last is None:
            return None
        return Previous(status=last[0], digest=digest, record_id=last[1])


class Journal:
    """An open journal: what earlier runs recorded, and the appender for this run.

    Example:
        journal = Journal.open("contacts.journal", action="create_contact")
        journal.started(0, "+15550000001")  # before sending item 0
        journal.finished(0, "+15550000001", "succeeded", record_id="6d1c…")
        await journal.aclose()
    """

    def __init__(self, path: Path, fd: int, job: str, history: _History | _KeyHistory) -> None:
        self.path = path
        self.job = job
        self._fd: int | None = fd
        self._history = history
        self._indexes = history if isinstance(history, _History) else None
        self._keys = history if isinstance(history, _KeyHistory) else None
        self._last_sync = time.monotonic()
        self._sync_task: asyncio.Task[None] | None = None
        # fsync runs in a worker thread; close() must not close the descriptor under it.
        self._fd_lock = threading.Lock()

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, action: str, by: By = "index") -> Journal:
        """Open (or create) the journal at ``path`` for ``action`` and read its history.

        ``by="key"``: a call worker's journal, its history looked up with ``previous_key``.

        Raises:
            UsageError: it belongs to another action or kind of job, a line before the last
                is corrupt, or another running job holds it.
        """
        target = Path(path)
        try:
            fd = os.open(target, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        except OSError as exc:
            raise UsageError(f"cannot open journal {target}: {exc.strerror}") from exc
        try:
            _lock(fd, target)
            history: _History | _KeyHistory = _History() if by == "index" else _KeyHistory()
            job, good_end = _read(fd, target, action, by, history)
            size = os.fstat(fd).st_size
            if good_end < size:  # drop a line cut short by a crash, so appends start clean
                os.ftruncate(fd, good_end)
            os.lseek(fd, 0, os.SEEK_END)
            if job is None:
                job = uuid.uuid4().hex
                header = _Header(version=FORMAT_VERSION, action=action, job=job, by=by)
                _write_all(fd, _ENCODER.encode(header) + b"\n")
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        return cls(target, fd, job, history)

    @property
    def resumed(self) -> int:
        """How many indexes (keys, for a worker's journal) earlier runs recorded."""
        return self._history.count

    def previous(self, index: int) -> Previous | None:
        """What earlier runs recorded last for ``index``, or None."""
        indexes = self._indexes
        if indexes is None:
            raise UsageError(f"journal {self.path} is looked up by key: use previous_key")
        return indexes.get(index)

    def previous_key(self, key: str) -> Previous | None:
        """What was recorded last for ``key`` (a worker's journal), this run included."""
        if self._keys is None:
            raise UsageError(f"journal {self.path} is looked up by index: use previous")
        return self._keys.get(key_digest(key))

    def started(self, index: int, key: str) -> None:
        """Record that ``index`` is about to be sent (call it before sending)."""
        self._write(_Entry(index, key, "started"))
        if self._keys is not None:
            self._keys.set(index, "started", key_digest(key), None)

    def finished(
        self, index: int, key: str, status: FinalStatus, *,
        record_id: str | None = None, error: BaseException | None = None,
    ) -> None:
        """Record a final outcome."""
        text = None
        if error is not None:
            text = f"{type(error).__name__}: {error}"[:_MAX_ERROR_TEXT]
        self._write(_Entry(index, key, status, record_id, text))
        if self._keys is not None:
            self._keys.set(index, status, key_digest(key), record_id)

    def _write(self, entry: _Entry) -> None:
        """One line to the OS now (it survives ``kill -9``); fsync follows soon."""
        if self._fd is None:
            raise UsageError(f"journal {self.path} is closed")
        _write_all(self._fd, _ENCODER.encode(entry) + b"\n")
        self._maybe_sync()

    def _maybe_sync(self) -> None:
        running = self._sync_task is not None and not self._sync_task.done()
        if running or time.monotonic() - self._last_sync < FSYNC_INTERVAL:
            return
        with contextlib.suppress(RuntimeError):  # no running loop: aclose() syncs
            self._sync_task = asyncio.get_running_loop().create_task(self._sync())

    async def _sync(self) -> None:
        self._last_sync = time.monotonic()
        await asyncio.to_thread(self._fsync)

    def _fsync(self) -> None:
        with self._fd_lock:
            if self._fd is None:
                return
            try:
                os.fsync(self._fd)
            except OSError as exc:  # the OS has the lines; only a machine crash could lose them
                log.warning("journal %s: fsync failed: %s", self.path, exc)

    async def aclose(self) -> None:
        """Wait for a running fsync, fsync, release the lock and close. Safe to call twice."""
        if self._fd is None:
            return
        task, self._sync_task = self._sync_task, None
        if task is not None:
            await task
        self.close()

    def close(self) -> None:
        """The synchronous ``aclose()``, for when no loop runs (still fsyncs)."""
        with self._fd_lock:
            fd, self._fd = self._fd, None
            if fd is None:
                return
            try:
                os.fsync(fd)
            finally:
                os.close(fd)  # closing the descriptor releases the flock


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _lock(fd: int, path: Path) -> None:
    if fcntl is None:  # pragma: no cover
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise UsageError(
            f"journal {path} is in use by another running job; wait for it or use another"
        ) from None


def _read(fd: int, path: Path, action: str, by: By,
          history: _History | _KeyHistory) -> tuple[str | None, int]:
    """Read the header and every entry into ``history``. Returns (job id, end of the last
    good line)."""
    job: str | None = None
    offset = 0
    bad_line: int | None = None
    with open(os.dup(fd), "rb", closefd=True) as stream:
        stream.seek(0)
        for number, raw in enumerate(stream, start=1):
            if bad_line is not None:
                raise UsageError(
                    f"journal {path}: line {bad_line} is corrupt and is not the last line; "
                    "repair or remove the journal"
                )
            if not raw.endswith(b"\n"):
                bad_line = number  # a truncated last line: tolerated, dropped below
                continue
            if number == 1:
                try:
                    header = _HEADER.decode(raw)
                except msgspec.DecodeError:
                    raise UsageError(
                        f"{path} is not a sippet journal (bad first line); "
                        "pass another journal path"
                    ) from None
                job = _check_header(header, path, action, by)
            else:
                try:
                    _apply(_ENTRY.decode(raw), history)
                except (msgspec.DecodeError, ValueError):
                    bad_line = number
                    continue
            offset += len(raw)
    return job, offset


def _check_header(header: _Header, path: Path, action: str, by: By) -> str:
    if header.version != FORMAT_VERSION:
        raise UsageError(f"journal {path} has format {header.version}, not {FORMAT_VERSION}")
    if header.action != action:
        raise UsageError(
            f"journal {path} belongs to a {header.action!r} job, not {action!r}; "
            "pass another journal path"
        )
    if header.by != by:
        owner = {"index": "a bulk job's", "key": "a call worker's"}
        raise UsageError(
            f"journal {path} is {owner.get(header.by, repr(header.by))}, not "
            f"{owner[by]}; pass another journal path"
        )
    return header.job


def _apply(entry: _Entry, history: _History | _KeyHistory) -> None:
    if entry.s not in _CODES or not 0 <= entry.i < _MAX_INDEX:
        raise ValueError(entry)
    status: Status = _NAMES[_CODES[entry.s]]
    history.set(entry.i, status, key_digest(entry.k), entry.id)
