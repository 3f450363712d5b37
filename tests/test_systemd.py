"""The unit files keep their contract: notify + watchdog, restart, hardening, the outbox in the state dir."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parent.parent / "systemd"
REPO = UNITS.parent


def directives(name: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in (UNITS / name).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, value = line.split("=", 1)
            found.setdefault(key, []).append(value)
    return found


HARDENING = {
    "ProtectSystem": "strict",
    "ProtectHome": "true",
    "PrivateTmp": "true",
    "NoNewPrivileges": "true",
    "DevicePolicy": "closed",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    "Restart": "on-failure",
}


@pytest.mark.parametrize(
    "name", ["assistant.service", "assistant-cloud-stub.service", "firmware-sim.service"]
)
def test_every_unit_is_hardened(name: str) -> None:
    unit = directives(name)
    for key, value in HARDENING.items():
        assert unit.get(key) == [value], (name, key)
    assert unit["ExecStart"][0].startswith("/opt/assistant/.venv/bin/")


def test_daemon_unit_notifies_has_a_watchdog_and_reaches_only_the_sound_card() -> None:
    unit = directives("assistant.service")
    assert unit["Type"] == ["notify"] and unit["WatchdogSec"] == ["30"]
    assert unit["ExecStart"] == ["/opt/assistant/.venv/bin/assistant run"]
    assert unit["DeviceAllow"] == ["char-alsa rw"] and unit["SupplementaryGroups"] == ["audio"]
    assert unit["StateDirectory"] == ["assistant"]
    assert "ASSISTANT_MQTT__OUTBOX_PATH=/var/lib/assistant/outbox.sqlite3" in unit["Environment"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    # Point ExecStart at this checkout so verify can find the executables.
    for unit in UNITS.glob("*.service"):
        (tmp_path / unit.name).write_text(unit.read_text().replace("/opt/assistant", str(REPO)))
    result = subprocess.run(
        ["systemd-analyze", "verify", *sorted(str(p) for p in tmp_path.glob("*.service"))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
