"""Shared fixtures. ``mosquitto_broker``: a private broker per test, on a free port, that can be
stopped and started again on the same port with its persistence (sessions, queued messages)."""

from __future__ import annotations

import getpass
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

_MOSQUITTO_CANDIDATES = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/opt/homebrew/sbin/mosquitto")


def find_mosquitto() -> str | None:
    """The broker binary; /usr/sbin is often not on a normal user's PATH."""
    found = shutil.which("mosquitto")
    if found:
        return found
    return next((path for path in _MOSQUITTO_CANDIDATES if Path(path).is_file()), None)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class MosquittoBroker:
    """A mosquitto process under test control: ``stop()`` saves its state, ``start()`` reloads it.

    Unpacks as ``host, port, broker``.
    """

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.host = "127.0.0.1"
        self.port = free_port()
        self.log_path = workdir / "mosquitto.log"
        self.config_path = workdir / "mosquitto.conf"
        (workdir / "data").mkdir(exist_ok=True)
        self.config_path.write_text(
            "\n".join(
                [
                    f"listener {self.port} {self.host}",
                    "allow_anonymous true",
                    "persistence true",
                    f"persistence_location {workdir / 'data'}/",
                    # Run as whoever runs the tests, so the data dir stays writable under root too.
                    f"user {getpass.getuser()}",
                    f"log_dest file {self.log_path}",
                    "log_type all",
                    "max_queued_messages 100000",
                    # Without it every hop through the broker can wait ~40 ms for a delayed ACK.
                    "set_tcp_nodelay true",
                    "",
                ]
            )
        )
        self.process: subprocess.Popen[bytes] | None = None

    def __iter__(self) -> Iterator[object]:
        return iter((self.host, self.port, self))

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout_s: float = 10.0) -> None:
        if self.running:
            return
        self.process = subprocess.Popen(
            [self.binary, "-c", str(self.config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.process.returncode}: {self.log_tail()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"mosquitto did not listen on {self.port}: {self.log_tail()}"
                    ) from None
                time.sleep(0.02)  # nothing to await: the port either accepts or it does not

    def stop(self) -> None:
        """Graceful stop (SIGTERM): mosquitto writes sessions and queued messages to disk."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, lines: int = 20) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@pytest.fixture
def mosquitto_broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    binary = find_mosquitto()
    if binary is None:
        pytest.skip("mosquitto binary not found (apt-get install mosquitto)")
    workdir = tmp_path / "mosquitto"
    workdir.mkdir()
    broker = MosquittoBroker(binary, workdir)
    broker.start()
    try:
        yield broker
    finally:
        if broker.process is not None and broker.process.poll() is None:
            broker.process.kill()
            broker.process.wait()
