"""Logging: structlog, configured once, always to stderr.

stdout is reserved for JSON events (``assistant replay --json``), so logs never go there.
Under systemd (``JOURNAL_STREAM``/``INVOCATION_ID`` set) or when stderr is not a terminal,
logs are JSON lines that journald and log shippers can parse; on a terminal they are pretty.

>>> choose_format("auto", environ={"INVOCATION_ID": "abc"}, stream_is_tty=True)
'json'
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any, Literal, TextIO

import structlog

LogFormat = Literal["json", "console"]

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def choose_format(requested: str, environ: Mapping[str, str], stream_is_tty: bool) -> LogFormat:
    """Resolve ``auto`` to json (systemd or no TTY) or console (an interactive terminal)."""
    if requested == "json":
        return "json"
    if requested == "console":
        return "console"
    under_systemd = bool(environ.get("JOURNAL_STREAM") or environ.get("INVOCATION_ID"))
    return "json" if under_systemd or not stream_is_tty else "console"


def configure_logging(
    level: str = "info",
    log_format: str = "auto",
    *,
    stream: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
) -> LogFormat:
    """Set up structlog (and the stdlib root logger, for libraries) for the whole process.

    Calling it again reconfigures, which is what the CLI does once the config is loaded.
    Without ``stream``, every line goes to whatever ``sys.stderr`` is at that moment (so a
    replaced or captured stderr is always honoured). Returns the chosen format.
    """
    environ = os.environ if environ is None else environ
    chosen = choose_format(log_format, environ, _isatty(stream if stream is not None else sys.stderr))
    numeric_level = _LEVELS.get(level.lower(), logging.INFO)

    def target() -> TextIO:
        return stream if stream is not None else sys.stderr

    renderer: Any = (
        structlog.processors.JSONRenderer()
        if chosen == "json"
        else structlog.dev.ConsoleRenderer(colors=_isatty(target()))
    )
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if chosen == "json":
        processors.append(structlog.processors.dict_tracebacks)
    processors.append(renderer)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=lambda *args: structlog.PrintLogger(file=target()),
        cache_logger_on_first_use=False,
    )
    # Libraries (paho, onnxruntime) log through the stdlib: same stream, same level.
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _StderrHandler):
            root.removeHandler(handler)
    handler = _StderrHandler(target)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(numeric_level)
    return chosen


class _StderrHandler(logging.StreamHandler[TextIO]):
    """A stream handler that looks its stream up on every record (see ``configure_logging``)."""

    def __init__(self, target: Callable[[], TextIO]) -> None:
        self._target = target
        super().__init__()

    @property
    def stream(self) -> TextIO:
        return self._target()

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass  # fixed by the target function


def get_logger(name: str) -> Any:
    """A lazy structlog logger with ``module=<name>`` in every line.

    Lazy on purpose: modules create loggers at import, before ``configure_logging`` runs; the
    proxy picks up the configuration in force when it logs (``.bind()`` here would freeze the
    default one, which prints to stdout).
    """
    return structlog.get_logger(module=name)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


# Before the CLI configures anything, structlog's default would print to stdout, which carries
# events; make the safe choice at import so no early log line can corrupt the event stream.
if not structlog.is_configured():
    configure_logging()
