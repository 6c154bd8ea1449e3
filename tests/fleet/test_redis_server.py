"""The throwaway ``redis-server`` the fleet's tests and demo start: it really runs, answers,
restarts without its data, and is gone (by PID) once stopped."""

from __future__ import annotations

import os

import pytest
import redis

from sippet_async.testing import RedisServer, RedisServerError


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_server_answers_and_stops_by_pid() -> None:
    server = RedisServer()
    with server:
        pid = server.pid
        assert pid is not None
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        with redis.Redis.from_url(server.url) as connection:
            assert connection.ping() is True
            assert connection.config_get("save")["save"] == ""
            assert connection.config_get("appendonly")["appendonly"] == "no"
            assert connection.config_get("bind")["bind"] == "127.0.0.1"
    assert server.pid is None
    assert not _alive(pid)


def test_restart_keeps_the_port_and_loses_the_data(own_redis: RedisServer) -> None:
    with redis.Redis.from_url(own_redis.url) as connection:
        connection.set("k", "v")
        before = own_redis.pid
        own_redis.restart()
        assert own_redis.pid != before
        assert connection.get("k") is None


def test_a_missing_executable_is_a_named_error() -> None:
    with pytest.raises(RedisServerError, match="'no-such-redis-server' is not on PATH"):
        RedisServer(executable="no-such-redis-server")
