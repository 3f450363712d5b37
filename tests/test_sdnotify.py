"""systemd notify against a real AF_UNIX datagram socket, and the watchdog from the frame loop."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from assistant.audio.frames import AudioFrame
from assistant.config import AssistantConfig
from assistant.daemon import FrameLoop
from assistant.pipeline import Pipeline
from assistant.sdnotify import Notifier, WatchdogTimer


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = tmp_path / "notify.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(path))
    server.settimeout(2.0)
    yield server, str(path)
    server.close()


def test_ready_status_watchdog_stopping_arrive_as_datagrams(notify_socket: tuple[socket.socket, str]) -> None:
    server, path = notify_socket
    notifier = Notifier(environ={"NOTIFY_SOCKET": path})
    assert notifier.enabled
    assert notifier.ready(status="listening on mic:default")
    assert server.recv(4096) == b"READY=1\nSTATUS=listening on mic:default"
    assert notifier.watchdog()
    assert server.recv(4096) == b"WATCHDOG=1"
    assert notifier.status("3 sessions")
    assert server.recv(4096) == b"STATUS=3 sessions"
    assert notifier.stopping()
    assert server.recv(4096) == b"STOPPING=1"
    notifier.close()


def test_abstract_namespace_socket() -> None:
    name = f"assistant-test-{uuid.uuid4().hex}"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind("\0" + name)
    server.settimeout(2.0)
    try:
        assert Notifier(environ={"NOTIFY_SOCKET": "@" + name}).ready()
        assert server.recv(4096) == b"READY=1"
    finally:
        server.close()


def test_without_notify_socket_everything_is_a_no_op() -> None:
    notifier = Notifier(environ={})
    assert not notifier.enabled
    assert not notifier.ready() and not notifier.watchdog() and not notifier.stopping()
    assert notifier.watchdog_interval_s is None


def test_a_vanished_socket_is_reported_not_raised(tmp_path: Path) -> None:
    notifier = Notifier(environ={"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert notifier.ready() is False
    assert notifier.watchdog() is False


def test_watchdog_interval_is_half_of_watchdog_usec_for_this_process() -> None:
    assert Notifier(environ={"WATCHDOG_USEC": "30000000"}).watchdog_interval_s == 15.0
    mine = {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}
    assert Notifier(environ=mine).watchdog_interval_s == 15.0
    other = {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}
    assert Notifier(environ=other).watchdog_interval_s is None
    assert Notifier(environ={"WATCHDOG_USEC": "0"}).watchdog_interval_s is None


def test_watchdog_timer() -> None:
    timer = WatchdogTimer(interval_s=1.0)
    assert [timer.due(t) for t in (0.0, 0.5, 0.99, 1.0, 1.5, 2.2, 2.3)] == [
        True,
        False,
        False,
        True,
        False,
        True,
        False,
    ]
    assert not WatchdogTimer(None).due(0.0)


class Frames:
    def __init__(self, count: int) -> None:
        self.name = "frames"
        self.count = count

    def __iter__(self) -> Iterator[AudioFrame]:
        return (AudioFrame(i, np.zeros(160, np.int16)) for i in range(self.count))

    def close(self) -> None:
        pass


def test_frame_loop_pings_the_watchdog_at_half_the_interval(notify_socket: tuple[socket.socket, str]) -> None:
    server, path = notify_socket
    notifier = Notifier(environ={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"})  # ping every 0.1 s
    ticks = iter(np.arange(0.0, 10.0, 0.01))  # the fake monotonic clock advances 10 ms per frame
    loop = FrameLoop([], notifier=notifier, monotonic=lambda: float(next(ticks)))
    pipeline = Pipeline.from_config(AssistantConfig(), stream_id="s", wall_clock=lambda: 0.0)
    loop.run(Frames(50), pipeline)  # 0.5 s of audio → pings at 0.0, 0.1, 0.2, 0.3, 0.4
    server.settimeout(0.2)
    received = []
    try:
        while True:
            received.append(server.recv(4096))
    except TimeoutError:
        pass
    assert received == [b"WATCHDOG=1"] * 5
