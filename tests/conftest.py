"""Shared fixtures. ``mosquitto_broker``: a private broker per test, on a free port, that can be
stopped and started again on the same port with its persistence (sessions, queued messages).
``make_mosquitto_broker(users=..., tls=...)``: the same, requiring a user name and password and/or
TLS (``make_test_certificates`` makes a throwaway CA and server certificate)."""

from __future__ import annotations

import getpass
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

_MOSQUITTO_CANDIDATES = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/opt/homebrew/sbin/mosquitto")


def find_mosquitto() -> str | None:
    """The broker binary; /usr/sbin is often not on a normal user's PATH."""
    found = shutil.which("mosquitto")
    if found:
        return found
    return next((path for path in _MOSQUITTO_CANDIDATES if Path(path).is_file()), None)


def find_mosquitto_passwd() -> str | None:
    found = shutil.which("mosquitto_passwd")
    if found:
        return found
    candidates = (Path(c).with_name("mosquitto_passwd") for c in _MOSQUITTO_CANDIDATES)
    return next((str(path) for path in candidates if path.is_file()), None)


@dataclass(frozen=True)
class BrokerTls:
    """A CA, and the broker's certificate (for 127.0.0.1) and key signed by it."""

    ca_file: Path
    cert_file: Path
    key_file: Path


def make_test_certificates(directory: Path, host: str = "127.0.0.1") -> BrokerTls | None:
    """A throwaway CA and a server certificate for the IP ``host`` (EC keys, valid one day), made
    with the openssl command; None when it is not installed."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, request, cert = (
        directory / name for name in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem")
    )
    extensions = directory / "server.ext"
    extensions.write_text(f"subjectAltName=IP:{host}\nbasicConstraints=CA:FALSE\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for command in (
        ["req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-subj", "/CN=test-ca", "-days", "1"],
        ["req", *ec, "-keyout", key, "-out", request, "-subj", f"/CN={host}"],
        [
            *("x509", "-req", "-in", request, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial"),
            *("-out", cert, "-days", "1", "-extfile", extensions),
        ],
    ):
        subprocess.run([openssl, *map(str, command)], check=True, capture_output=True, timeout=30)
    return BrokerTls(ca_file=ca, cert_file=cert, key_file=key)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class MosquittoBroker:
    """A mosquitto process under test control: ``stop()`` saves its state, ``start()`` reloads it.

    Unpacks as ``host, port, broker``.
    """

    def __init__(
        self,
        binary: str,
        workdir: Path,
        *,
        users: Mapping[str, str] | None = None,
        tls: BrokerTls | None = None,
    ) -> None:
        self.binary = binary
        self.workdir = workdir
        self.host = "127.0.0.1"
        self.port = free_port()
        self.log_path = workdir / "mosquitto.log"
        self.config_path = workdir / "mosquitto.conf"
        (workdir / "data").mkdir(exist_ok=True)
        security = ["allow_anonymous true"]
        if users:
            security = ["allow_anonymous false", f"password_file {self._password_file(users)}"]
        if tls is not None:
            security += [f"cafile {tls.ca_file}", f"certfile {tls.cert_file}", f"keyfile {tls.key_file}"]
        self.config_path.write_text(
            "\n".join(
                [
                    f"listener {self.port} {self.host}",
                    *security,
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

    def _password_file(self, users: Mapping[str, str]) -> Path:
        tool = find_mosquitto_passwd()
        if tool is None:
            pytest.skip("mosquitto_passwd not found (apt-get install mosquitto)")
        path = self.workdir / "passwords"
        path.touch(mode=0o600)
        for user, password in users.items():
            subprocess.run(
                [tool, "-b", str(path), user, password], check=True, capture_output=True, timeout=30
            )
        return path

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


@pytest.fixture
def make_mosquitto_broker(tmp_path: Path) -> Iterator[Callable[..., MosquittoBroker]]:
    """``make(users={"name": "password"}, tls=BrokerTls(...))`` → a started broker that requires
    them; every broker made is killed after the test."""
    binary = find_mosquitto()
    if binary is None:
        pytest.skip("mosquitto binary not found (apt-get install mosquitto)")
    brokers: list[MosquittoBroker] = []

    def make(*, users: Mapping[str, str] | None = None, tls: BrokerTls | None = None) -> MosquittoBroker:
        workdir = tmp_path / f"mosquitto-{len(brokers)}"
        workdir.mkdir()
        broker = MosquittoBroker(binary, workdir, users=users, tls=tls)
        brokers.append(broker)
        broker.start()
        return broker

    try:
        yield make
    finally:
        for broker in brokers:
            if broker.process is not None and broker.process.poll() is None:
                broker.process.kill()
                broker.process.wait()
