"""systemd's notify protocol (``sd_notify``) in a few lines, without a dependency.

Under ``Type=notify`` systemd passes a datagram socket in ``NOTIFY_SOCKET`` (a path, or
``@name`` for the abstract namespace). The daemon says ``READY=1`` once it listens,
``WATCHDOG=1`` from the audio loop (so a stuck microphone or pipeline gets the service
restarted), ``STATUS=...`` for ``systemctl status`` and ``STOPPING=1`` on shutdown. Without
``NOTIFY_SOCKET`` every call is a no-op, so the same code runs in a terminal.

>>> Notifier(environ={}).ready()
False
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

from assistant.logging import get_logger

log = get_logger(__name__)


class Notifier:
    """Sends notify messages; returns whether a message was sent (False when not under systemd)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        self.address = _socket_address(environ.get("NOTIFY_SOCKET", ""))
        self.watchdog_interval_s = _watchdog_interval_s(environ)
        self._socket: socket.socket | None = None
        self._warned = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *fields: str) -> bool:
        """Send ``KEY=value`` lines as one datagram; errors are logged once, never raised."""
        if self.address is None:
            return False
        message = "\n".join(fields).encode("utf-8")
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._socket.sendto(message, self.address)
        except OSError as error:
            # Losing a notification must not take the daemon down; systemd will notice on its own.
            if not self._warned:
                log.warning("sd_notify failed", socket=self.address, error=str(error))
                self._warned = True
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


class WatchdogTimer:
    """Says when to send the next ``WATCHDOG=1``: every half of ``WATCHDOG_USEC``, as systemd advises.

    Time comes in as an argument, so the audio loop passes its monotonic clock and tests pass numbers.

    >>> timer = WatchdogTimer(interval_s=15.0)
    >>> timer.due(0.0), timer.due(10.0), timer.due(15.0)
    (True, False, True)
    """

    def __init__(self, interval_s: float | None) -> None:
        self.interval_s = interval_s
        self._next: float | None = None

    def due(self, now: float) -> bool:
        if self.interval_s is None:
            return False
        if self._next is None or now >= self._next:
            self._next = now + self.interval_s
            return True
        return False


def _socket_address(value: str) -> str | None:
    if not value:
        return None
    if value.startswith("@"):
        return "\0" + value[1:]  # Linux abstract namespace
    return value


def _watchdog_interval_s(environ: Mapping[str, str]) -> float | None:
    """Half of ``WATCHDOG_USEC`` when the watchdog is meant for this process, else None."""
    usec = environ.get("WATCHDOG_USEC", "")
    pid = environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None
    return int(usec) / 1e6 / 2
