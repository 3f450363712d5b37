"""Logs: JSON lines under systemd or in a pipe, pretty on a terminal, always on stderr, never stdout."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest

from assistant.logging import choose_format, configure_logging, get_logger


@pytest.fixture(autouse=True)
def default_logging() -> Iterator[None]:
    """These tests point logging at their own streams; put it back on stderr afterwards."""
    yield
    configure_logging()


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("requested", "environ", "tty", "expected"),
    [
        ("auto", {}, True, "console"),
        ("auto", {}, False, "json"),
        ("auto", {"JOURNAL_STREAM": "8:1234"}, True, "json"),
        ("auto", {"INVOCATION_ID": "abc"}, True, "json"),
        ("json", {}, True, "json"),
        ("console", {"INVOCATION_ID": "abc"}, False, "console"),
    ],
)
def test_format_choice(requested: str, environ: dict[str, str], tty: bool, expected: str) -> None:
    assert choose_format(requested, environ, tty) == expected


def test_json_lines_with_level_filter_on_the_given_stream(capsys: pytest.CaptureFixture[str]) -> None:
    stream = io.StringIO()
    log = get_logger("assistant.test")  # made before configuration, like a module-level logger
    assert configure_logging("warning", "auto", stream=stream, environ={}) == "json"
    log.info("hidden")
    log.warning("shown", frames=3)
    (line,) = stream.getvalue().splitlines()
    record = json.loads(line)
    assert (record["event"], record["level"], record["frames"], record["module"]) == (
        "shown",
        "warning",
        3,
        "assistant.test",
    )
    assert capsys.readouterr().out == ""  # stdout is for events only


def test_console_format_on_a_terminal() -> None:
    stream = Terminal()
    assert configure_logging("debug", "auto", stream=stream, environ={}) == "console"
    get_logger("assistant.test").debug("pretty", site="den")
    text = stream.getvalue()
    assert "pretty" in text and "site" in text and not text.lstrip().startswith("{")


def test_library_logs_through_the_stdlib_go_to_the_same_stream() -> None:
    import logging

    stream = io.StringIO()
    configure_logging("info", "json", stream=stream, environ={})
    configure_logging("info", "json", stream=stream, environ={})  # reconfiguring does not duplicate handlers
    logging.getLogger("paho.mqtt").warning("broker gone")
    assert stream.getvalue().count("broker gone") == 1
