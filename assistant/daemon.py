"""The process: source → pipeline → sinks, with signals, systemd notify and the watchdog.

Everything here is an edge: the pipeline it drives is pure. Two rules keep the daemon up:
a sink that fails on one event is logged and skipped (the next event still goes out), and
an exception from the pipeline on one frame is logged and the next frame is processed.

``replay`` and ``run`` share ``FrameLoop``, so a file goes through exactly the code the
microphone does.
"""

from __future__ import annotations

import functools
import re
import signal
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Protocol, TextIO, cast

from assistant.audio.sources import AudioInputError, AudioSource, PcmStdinSource, WavSource
from assistant.config import AssistantConfig
from assistant.events import Event, EventBase
from assistant.logging import get_logger
from assistant.pipeline import Pipeline, WakeDetector
from assistant.sdnotify import Notifier, WatchdogTimer

log = get_logger(__name__)

SINK_CLOSE_TIMEOUT_S = 5.0


class EventSink(Protocol):
    """Where events go: stdout, the log, MQTT."""

    def publish(self, event: EventBase) -> None: ...

    def close(self, timeout_s: float) -> None: ...


class JsonLinesSink:
    """One JSON object per line: exactly the event models' wire form (``replay --json``)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def publish(self, event: EventBase) -> None:
        self._stream.write(event.to_json() + "\n")
        self._stream.flush()  # a consumer reading a pipe sees each event when it happens

    def close(self, timeout_s: float) -> None:
        self._stream.flush()


_COMMON_FIELDS = {"type", "site_id", "session_id", "audio_time_s", "wall_time", "event_id"}


class ConsoleSink:
    """Human-readable lines for ``replay`` without ``--json``: time, type, session, the rest."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def publish(self, event: EventBase) -> None:
        self._stream.write(format_event(event) + "\n")
        self._stream.flush()

    def close(self, timeout_s: float) -> None:
        self._stream.flush()


def format_event(event: EventBase) -> str:
    """``  1.230s  endpoint              s-1  kind=final reason=trailing_silence``"""
    extras = " ".join(
        f"{key}={value}" for key, value in event.model_dump().items() if key not in _COMMON_FIELDS
    )
    event_type = str(getattr(event, "type", type(event).__name__))
    return f"{event.audio_time_s:8.3f}s  {event_type:<22} {event.session_id or '-'}  {extras}".rstrip()


class LogSink:
    """Events into the structured log (``assistant run``: journald keeps them)."""

    def publish(self, event: EventBase) -> None:
        fields = event.model_dump(exclude={"site_id", "wall_time", "event_id", "type"})
        log.info(str(getattr(event, "type", "event")), **fields)

    def close(self, timeout_s: float) -> None:
        return None


class MqttSink:
    """Adapts ``assistant.mqtt.MqttEventPublisher`` (outbox, reconnects, Hermes mirror) to a sink."""

    def __init__(self, config: AssistantConfig) -> None:
        from assistant.mqtt import MqttEventPublisher  # lazy: paho loads only when MQTT is enabled

        self._publisher = MqttEventPublisher(config.mqtt, config.site_id)
        self._publisher.start()

    def publish(self, event: EventBase) -> None:
        self._publisher.publish(cast(Event, event))

    def close(self, timeout_s: float) -> None:
        if not self._publisher.close(timeout_s):
            log.warning("MQTT outbox not fully flushed at shutdown; it is kept for the next start")


def build_wake_detector(config: AssistantConfig, no_wake: bool) -> WakeDetector | None:
    """The wake stage, or None: then every speech onset opens a session (DESIGN.md §4 ``--no-wake``)."""
    if no_wake or not config.wake.enabled:
        return None
    # No wake model is shipped yet; say so (once) rather than silently listening to everything.
    _note_no_wake_model(config.wake.phrase)
    return None


@functools.cache
def _note_no_wake_model(phrase: str) -> None:
    log.info("no wake model installed; every speech onset opens a session", phrase=phrase)


def build_pipeline(
    config: AssistantConfig,
    stream_id: str,
    *,
    no_wake: bool = False,
    wall_clock: Callable[[], float] = time.time,
) -> Pipeline:
    return Pipeline.from_config(
        config, stream_id=stream_id, wall_clock=wall_clock, wake=build_wake_detector(config, no_wake)
    )


@dataclass
class LoopStats:
    frames: int = 0
    events: int = 0
    pipeline_errors: int = 0
    sink_errors: int = 0
    stopped: bool = False


class FrameLoop:
    """Drives frames from a source through a pipeline into sinks; survives bad frames and sinks."""

    def __init__(
        self,
        sinks: Sequence[EventSink],
        *,
        notifier: Notifier | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sinks = list(sinks)
        self.notifier = notifier or Notifier(environ={})
        self.watchdog = WatchdogTimer(self.notifier.watchdog_interval_s)
        self._monotonic = monotonic
        self._stop_requested = False
        self._source: AudioSource | None = None

    def request_stop(self) -> None:
        """Safe from a signal handler: the loop ends after the current frame."""
        self._stop_requested = True
        if self._source is not None:
            self._source.close()

    @property
    def stop_requested(self) -> bool:
        return self._stop_requested

    def run(self, source: AudioSource, pipeline: Pipeline) -> LoopStats:
        stats = LoopStats()
        self._source = source
        try:
            for frame in source:
                if self._stop_requested:
                    break
                stats.frames += 1
                try:
                    events: Iterable[EventBase] = pipeline.process(frame)
                except Exception:
                    stats.pipeline_errors += 1
                    # Log the first few in full; a bug that fires every frame must not flood the journal.
                    if stats.pipeline_errors <= 3 or stats.pipeline_errors % 1000 == 0:
                        log.exception(
                            "pipeline failed on a frame", frame=frame.index, count=stats.pipeline_errors
                        )
                    events = ()
                self._emit(events, stats)
                if self.watchdog.due(self._monotonic()):
                    self.notifier.watchdog()
            self._emit(pipeline.finish(), stats)
        finally:
            self._source = None
            source.close()
        stats.stopped = self._stop_requested
        return stats

    def _emit(self, events: Iterable[EventBase], stats: LoopStats) -> None:
        for event in events:
            stats.events += 1
            for sink in self.sinks:
                try:
                    sink.publish(event)
                except BrokenPipeError:
                    raise  # stdout reader went away: not a sink hiccup, the run is over
                except Exception:
                    stats.sink_errors += 1
                    log.exception("event sink failed", sink=type(sink).__name__, event_type=event_type(event))

    def close_sinks(self, timeout_s: float = SINK_CLOSE_TIMEOUT_S) -> None:
        for sink in self.sinks:
            try:
                sink.close(timeout_s)
            except Exception:
                log.exception("closing event sink failed", sink=type(sink).__name__)


def event_type(event: EventBase) -> str:
    return str(getattr(event, "type", type(event).__name__))


class SignalStop:
    """SIGTERM/SIGINT → ``loop.request_stop()``; a second signal exits at once (stuck shutdown)."""

    def __init__(self, loop: FrameLoop) -> None:
        self._loop = loop
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> SignalStop:
        for signum in (signal.SIGTERM, signal.SIGINT):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._loop.stop_requested:
            raise SystemExit(128 + signum)
        log.info("stopping", signal=signal.Signals(signum).name)
        self._loop.request_stop()


# --------------------------------------------------------------------------- the two entry points


def stream_id_for(path: str) -> str:
    """Deterministic per input, so replaying a file gives the same session ids every time."""
    stem = Path(path).stem if path != "-" else "stdin"
    return re.sub(r"[^A-Za-z0-9_-]+", "_", stem) or "stream"


def _open_replay_source(path: str, realtime: bool) -> AudioSource:
    if path == "-":
        return PcmStdinSource(sys.stdin.buffer)
    return WavSource(path, realtime=realtime)


def replay(
    config: AssistantConfig,
    files: Sequence[str],
    *,
    realtime: bool = False,
    no_wake: bool = False,
    as_json: bool = True,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run each file through the pipeline; bad files get one stderr line each. Returns the exit code."""
    stdout = sys.stdout if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr
    sinks: list[EventSink] = [JsonLinesSink(stdout) if as_json else ConsoleSink(stdout)]
    if config.mqtt.enabled:
        sinks.append(MqttSink(config))
    loop = FrameLoop(sinks, notifier=Notifier())
    failed = 0
    with SignalStop(loop):
        try:
            for path in files:
                if loop.stop_requested:
                    break
                try:
                    source = _open_replay_source(path, realtime)
                except AudioInputError as error:
                    failed += 1
                    stderr.write(f"assistant replay: {error}\n")
                    stderr.flush()
                    continue
                pipeline = build_pipeline(config, stream_id_for(path), no_wake=no_wake)
                stats = loop.run(source, pipeline)
                log.debug("replayed", file=path, frames=stats.frames, events=stats.events)
        finally:
            loop.close_sinks()
    return 3 if failed else 0


def run(config: AssistantConfig, device: str | int | None = None) -> int:
    """The daemon on the microphone until SIGTERM/SIGINT. Returns the exit code."""
    from assistant.audio.mic import MicSource

    notifier = Notifier()
    source = MicSource(device if device is not None else config.audio.device, block_ms=config.audio.block_ms)
    sinks: list[EventSink] = [LogSink()]
    if config.mqtt.enabled:
        sinks.append(MqttSink(config))
    loop = FrameLoop(sinks, notifier=notifier)
    stream_id = f"{config.site_id}-{uuid.uuid4().hex[:8]}"  # unique per daemon start
    pipeline = build_pipeline(config, stream_id)
    with SignalStop(loop):
        try:
            source.start()
            notifier.ready(status=f"listening on {source.name}")
            log.info("ready", site_id=config.site_id, source=source.name, mqtt=config.mqtt.enabled)
            stats = loop.run(source, pipeline)
        finally:
            notifier.stopping()
            loop.close_sinks()
            notifier.close()
    log.info("stopped", frames=stats.frames, events=stats.events, sink_errors=stats.sink_errors)
    return 0
