"""The process: source → pipeline → sinks, with signals, systemd notify and the watchdog.

Everything here is an edge: the pipeline it drives is pure. Two rules keep the daemon up:
a sink that fails on one event is logged and skipped (the next event still goes out), and
an exception from the pipeline on one frame is logged and the next frame is processed.

``replay`` and ``run`` share ``FrameLoop``, so a file goes through exactly the code the
microphone does, and the same stages built from the config (:func:`build_stages`): the
recognizer (``[asr] model_dir``; without an installed model the pipeline runs on the VAD alone,
as before the recognizer existed), the wake detector, the dispatcher (edge, cloud or auto over
MQTT when enabled, the in-process NLU otherwise).

Config that arrives on other threads (MQTT: contacts and device lists, Hermes injection and
hotword toggles) goes through a :class:`ControlInbox`; the frame loop applies it to the pipeline
between two frames, so the pipeline itself stays single-threaded and pure.
"""

from __future__ import annotations

import functools
import queue
import re
import signal
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Protocol, TextIO, cast

from assistant.audio.sources import AudioInputError, AudioSource, PcmStdinSource, WavSource
from assistant.config import AssistantConfig, ConfigError
from assistant.events import Event, EventBase
from assistant.logging import get_logger
from assistant.pipeline import BiasingBuilder, Dispatcher, NameKind, Names, Pipeline, Recognizer, WakeDetector
from assistant.sdnotify import Notifier, WatchdogTimer

if TYPE_CHECKING:
    from assistant.asr.search import Biasing
    from assistant.mqtt import HotwordToggle, InjectionRequest, NamesUpdate

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
    """Adapts ``assistant.mqtt.MqttEventPublisher`` (outbox, reconnects, Hermes mirror) to a sink.

    With an ``inbox``, the config topics (names, injection, hotword toggles) are handed to it;
    the handlers are registered before the connection starts, so the retained lists arrive too.
    """

    def __init__(self, config: AssistantConfig, inbox: ControlInbox | None = None) -> None:
        from assistant.mqtt import MqttEventPublisher  # lazy: paho loads only when MQTT is enabled

        self._publisher = MqttEventPublisher(config.mqtt, config.site_id)
        if inbox is not None:
            self._publisher.on_names(inbox.on_names)
            self._publisher.on_injection(inbox.on_injection)
            self._publisher.on_hotword_toggle(inbox.on_hotword_toggle)
        self._publisher.start()

    def publish(self, event: EventBase) -> None:
        self._publisher.publish(cast(Event, event))

    def close(self, timeout_s: float) -> None:
        if not self._publisher.close(timeout_s):
            log.warning("MQTT outbox not fully flushed at shutdown; it is kept for the next start")


# --------------------------------------------------------------------------- stages from the config


@dataclass
class Stages:
    """The stages a pipeline composes, built once per process and shared by its streams (a new
    ``Pipeline`` resets their stream state)."""

    recognizer: Recognizer | None = None
    wake: WakeDetector | None = None
    dispatcher: Dispatcher | None = None
    biasing_for: BiasingBuilder | None = None

    def close(self) -> None:
        close = getattr(self.dispatcher, "close", None)
        if close is not None:
            close()


def build_stages(config: AssistantConfig, *, no_wake: bool = False) -> Stages:
    """Recognizer, wake detector and dispatcher as the config asks, each left out (and said so,
    once) when its model is not installed. A model that is there but broken is a config error."""
    recognizer = build_recognizer(config)
    stages = Stages(recognizer=recognizer, wake=build_wake_detector(config, no_wake))
    if recognizer is not None:
        stages.biasing_for = biasing_builder(config, recognizer)
        if config.nlu.enabled:
            from assistant.dispatch import Dispatcher as RoutingDispatcher

            stages.dispatcher = RoutingDispatcher.from_config(config)
    return stages


def build_recognizer(config: AssistantConfig) -> Recognizer | None:
    """The streaming recognizer of ``[asr]``, or None when no model is installed (VAD-only)."""
    try:
        from assistant.asr.onnx_model import ModelFormatError, ModelNotFoundError
        from assistant.asr.recognizer import StreamingRecognizer
        from assistant.asr.tokenizer import TokenizerError
    except ModuleNotFoundError as error:  # onnxruntime or sentencepiece not installed
        _note_no_recognizer(f"the recognizer needs {error.name}")
        return None
    try:
        return StreamingRecognizer(
            config.asr.model_dir,
            use_int8=config.asr.use_int8,
            beam=config.asr.beam,
            nbest=config.asr.nbest,
            lm_weight=config.asr.lm_weight,
            lm_insertion_bonus=config.asr.lm_insertion_bonus,
            name_threshold=config.biasing.name_threshold,
        )
    except ModelNotFoundError as error:
        _note_no_recognizer(str(error))
        return None
    except (ModelFormatError, TokenizerError) as error:
        raise ConfigError(f"config error: asr.model_dir: {error}") from None


@functools.cache
def _note_no_recognizer(reason: str) -> None:
    log.info("no recognizer model installed; running on the VAD alone", reason=reason)


def biasing_builder(config: AssistantConfig, recognizer: Recognizer) -> BiasingBuilder | None:
    """Names → a context graph over the recognizer's tokens, as ``[biasing]`` says (boosts, aliases,
    sound-alikes, first names of contacts, the extra ``phrases``); None when biasing is off."""
    tokenizer = getattr(recognizer, "tokenizer", None)
    if not config.biasing.enabled or tokenizer is None:
        return None
    from assistant.asr.biasing import graph_builder

    graph_for = graph_builder(config.biasing, tokenizer)
    phrases = list(config.biasing.phrases)

    def build(names: Names) -> Biasing | None:
        return graph_for(phrases, contacts=names.contacts, devices=names.devices, areas=names.areas)

    return build


def build_wake_detector(config: AssistantConfig, no_wake: bool) -> WakeDetector | None:
    """The wake stage, or None: then every speech onset opens a session (DESIGN.md §4 ``--no-wake``)."""
    if no_wake or not config.wake.enabled:
        return None
    from assistant.wake import WakeModelError, detector_from_config

    try:
        return detector_from_config(config.wake)
    except WakeModelError as error:
        # No wake model installed: say so (once) rather than silently listening to everything.
        _note_no_wake_model(config.wake.phrase, str(error))
        return None


@functools.cache
def _note_no_wake_model(phrase: str, reason: str) -> None:
    log.info("no wake model installed; every speech onset opens a session", phrase=phrase, reason=reason)


def build_pipeline(
    config: AssistantConfig,
    stream_id: str,
    *,
    no_wake: bool = False,
    wall_clock: Callable[[], float] = time.time,
    stages: Stages | None = None,
) -> Pipeline:
    stages = stages if stages is not None else build_stages(config, no_wake=no_wake)
    return Pipeline.from_config(
        config,
        stream_id=stream_id,
        wall_clock=wall_clock,
        wake=stages.wake,
        recognizer=stages.recognizer,
        dispatcher=stages.dispatcher,
        biasing_for=stages.biasing_for,
    )


# --------------------------------------------------------------------------- config from other threads

_INJECTION_KINDS: dict[str, NameKind] = {
    "contact": "contacts",
    "contacts": "contacts",
    "device": "devices",
    "devices": "devices",
    "name": "devices",
    "appliance": "devices",
    "area": "areas",
    "areas": "areas",
    "room": "areas",
}


def injection_kind(entity: str) -> NameKind | None:
    """Hermes injection entity → which names it extends (``contacts``, ``device`` …); None: not ours."""
    return _INJECTION_KINDS.get(entity.strip().lower())


PipelineChange = Callable[[Pipeline], None]


class ControlInbox:
    """Changes from other threads, applied to the pipeline between frames (thread-safe ``put``).

    A change that fails (names the graph cannot be built from) is logged and dropped: the
    pipeline keeps what it had.
    """

    def __init__(self) -> None:
        self._changes: queue.SimpleQueue[tuple[str, PipelineChange]] = queue.SimpleQueue()

    def put(self, what: str, change: PipelineChange) -> None:
        self._changes.put((what, change))

    def apply(self, pipeline: Pipeline) -> int:
        """Apply every waiting change in arrival order; returns how many were applied."""
        applied = 0
        while True:
            try:
                what, change = self._changes.get_nowait()
            except queue.Empty:
                return applied
            try:
                change(pipeline)
            except Exception as error:
                log.warning("config change rejected; the previous one stays", change=what, error=str(error))
                continue
            applied += 1
            log.info("config change applied", change=what)

    # ---- MQTT handlers (paho's network thread: only enqueue)

    def on_names(self, update: NamesUpdate) -> None:
        kind, entries = update.kind, update.entries  # names with their aliases and boosts
        self.put(f"names:{kind}", lambda pipeline: pipeline.update_names(kind, entries))

    def on_injection(self, request: InjectionRequest) -> None:
        def inject(pipeline: Pipeline) -> None:
            names = pipeline.names
            for operation in request.operations:
                if operation.kind == "addFromVanilla":
                    names = pipeline.configured_names
                for entity, values in operation.values.items():
                    kind = injection_kind(entity)
                    if kind is None:
                        log.info("injection entity ignored", entity=entity)
                        continue
                    names = names.added(kind, values)
            pipeline.set_names(names)

        self.put(f"injection:{request.id or '-'}", inject)

    def on_hotword_toggle(self, toggle: HotwordToggle) -> None:
        muted = not toggle.enabled
        self.put("hotword:" + ("off" if muted else "on"), lambda pipeline: pipeline.set_wake_muted(muted))


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
        inbox: ControlInbox | None = None,
    ) -> None:
        self.sinks = list(sinks)
        self.inbox = inbox
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
                if self.inbox is not None:
                    self.inbox.apply(pipeline)
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
    stages: Stages | None = None
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
                if stages is None:  # loaded once, and only when there is something to replay
                    stages = build_stages(config, no_wake=no_wake)
                pipeline = build_pipeline(config, stream_id_for(path), stages=stages)
                stats = loop.run(source, pipeline)
                log.debug("replayed", file=path, frames=stats.frames, events=stats.events)
        finally:
            loop.close_sinks()
            if stages is not None:
                stages.close()
    return 3 if failed else 0


def run(config: AssistantConfig, device: str | int | None = None) -> int:
    """The daemon on the microphone until SIGTERM/SIGINT. Returns the exit code."""
    from assistant.audio.mic import MicSource

    notifier = Notifier()
    source = MicSource(device if device is not None else config.audio.device, block_ms=config.audio.block_ms)
    stages = build_stages(config)
    inbox = ControlInbox()
    sinks: list[EventSink] = [LogSink()]
    if config.mqtt.enabled:
        sinks.append(MqttSink(config, inbox))
    loop = FrameLoop(sinks, notifier=notifier, inbox=inbox)
    stream_id = f"{config.site_id}-{uuid.uuid4().hex[:8]}"  # unique per daemon start
    pipeline = build_pipeline(config, stream_id, stages=stages)
    log.info(
        "pipeline",
        recognizer=stages.recognizer is not None,
        wake=stages.wake is not None,
        dispatch=config.dispatch.mode if stages.dispatcher is not None else None,
    )
    with SignalStop(loop):
        try:
            source.start()
            notifier.ready(status=f"listening on {source.name}")
            log.info("ready", site_id=config.site_id, source=source.name, mqtt=config.mqtt.enabled)
            stats = loop.run(source, pipeline)
        finally:
            notifier.stopping()
            loop.close_sinks()
            stages.close()
            notifier.close()
    log.info("stopped", frames=stats.frames, events=stats.events, sink_errors=stats.sink_errors)
    return 0
