"""An ephemeral ``redis-server`` on 127.0.0.1, for tests and the fleet demo.

It runs the real server (Debian's ``redis-server`` package, or any on ``PATH``) with no
persistence, on a free port, and stops it by its PID. The Redis parts of sippet_async are
tested against it, never against a mock.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from types import TracebackType
from typing import Self

from ._outage import _free_port

__all__ = ["RedisServer", "RedisServerError"]


class RedisServerError(RuntimeError):
    """``redis-server`` is missing, or did not start listening in time."""


class RedisServer:
    """A throwaway ``redis-server`` on 127.0.0.1: no RDB, no AOF, stopped by its PID.

    ``restart()`` stops it and starts it again on the same port (its data is gone, as after
    a real restart with persistence off): the "Redis restarted mid-run" case.

    Example:
        with RedisServer() as redis_server:
            limit = RedisRateLimit(redis_server.url, key="acct", rate=100)
            ...
    """

    def __init__(self, *, port: int | None = None, executable: str = "redis-server",
                 start_timeout: float = 10.0) -> None:
        found = shutil.which(executable)
        if found is None:
            raise RedisServerError(
                f"{executable!r} is not on PATH: install Redis (Debian: apt-get install "
                f"redis-server) to run the fleet tests and demo")
        self.executable = found
        self.port = _free_port() if port is None else port
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.start_timeout = start_timeout
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The running server's PID (None when stopped)."""
        return None if self._process is None else self._process.pid

    def start(self) -> None:
        """Start the server and return once it accepts connections."""
        if self._process is not None:
            return
        self._process = subprocess.Popen(
            [self.executable, "--bind", "127.0.0.1", "--port", str(self.port),
             "--save", "", "--appendonly", "no", "--daemonize", "no",
             "--protected-mode", "yes", "--loglevel", "warning", "--dir", os.getcwd()],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + self.start_timeout
        while not self._answers():
            if self._process.poll() is not None:
                error = self._process.stderr.read().decode(errors="replace") \
                    if self._process.stderr else ""
                self._process = None
                raise RedisServerError(f"redis-server exited at start: {error.strip()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RedisServerError(
                    f"redis-server did not listen on 127.0.0.1:{self.port} "
                    f"within {self.start_timeout} s")
            time.sleep(0.01)  # polling a child process we started, not test synchronisation

    def _answers(self) -> bool:
        """Whether the server answers PING on its port."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the server (SIGTERM by its PID, SIGKILL if it lingers) and wait for it."""
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()

    def kill(self) -> None:
        """Crash the server: SIGKILL by its PID, as a lost machine would."""
        process, self._process = self._process, None
        if process is None:
            return
        process.kill()
        process.wait()
        if process.stderr is not None:
            process.stderr.close()

    def restart(self) -> None:
        """Stop, then start again on the same port, with no data."""
        self.stop()
        self.start()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self._process is not None else "stopped"
        return f"RedisServer(url={self.url!r}, {state})"
