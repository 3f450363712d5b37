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
from collections.abc import Mapping
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
    """Set up structlog (and the stdlib root logger, for libraries) once per process.

    Calling it again reconfigures, which is what tests and the CLI's ``--config`` want.
    Returns the chosen format.
    """
    stream = sys.stderr if stream is None else stream
    environ = os.environ if environ is None else environ
    chosen = choose_format(log_format, environ, _isatty(stream))
    numeric_level = _LEVELS.get(level.lower(), logging.INFO)
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if chosen == "json"
        else structlog.dev.ConsoleRenderer(colors=_isatty(stream))
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
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    # Libraries (paho, onnxruntime) log through the stdlib: same stream, same level.
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_assistant_handler", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler._assistant_handler = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(numeric_level)
    return chosen


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
