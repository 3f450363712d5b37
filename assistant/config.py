"""The daemon's configuration: one pydantic model tree, loaded from TOML plus env overrides.

The same names appear in the TOML file, the environment and the docs: section ``mqtt``, field
``host`` is ``[mqtt] host = ...`` in the file and ``ASSISTANT_MQTT__HOST`` in the environment.
Every field has a working default, so an empty file (or none at all) gives a usable daemon.

>>> config = load_config(path=None, environ={"ASSISTANT_MQTT__PORT": "8883"}, search=())
>>> config.mqtt.port, config.audio.sample_rate
(8883, 16000)
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.fields import FieldInfo

from assistant.asr.lm import DEFAULT_LM_INSERTION_BONUS, DEFAULT_LM_WEIGHT
from assistant.asr.name_resolver import DEFAULT_THRESHOLD as DEFAULT_NAME_THRESHOLD

ENV_PREFIX = "ASSISTANT_"
ENV_SEPARATOR = "__"


def _package_models_dir() -> Path:
    """``models/`` next to the ``assistant`` package (repo checkout or editable install)."""
    return Path(__file__).resolve().parent.parent / "models"


def default_search_path() -> tuple[Path, ...]:
    """Where ``load_config`` looks when no ``--config`` is given; the first file found wins."""
    return (
        Path("assistant.toml"),
        Path("~/.config/assistant/assistant.toml").expanduser(),
        Path("/etc/assistant/assistant.toml"),
    )


class ConfigError(Exception):
    """A config problem, as one line that names the field and the file."""


class _Section(BaseModel):
    # Unknown keys are typos in the user's file: refuse them instead of silently ignoring.
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class AudioConfig(_Section):
    device: str | None = Field(
        default=None,
        description="Input device for `assistant run`: a name substring or an index; unset = system default.",
    )
    sample_rate: int = Field(
        default=16000, ge=8000, le=48000, description="Rate the pipeline runs at; inputs are resampled to it."
    )
    block_ms: int = Field(default=10, ge=10, le=100, description="Microphone callback block length in ms.")
    realtime_replay: bool = Field(
        default=False, description="Pace `assistant replay` with the wall clock instead of running flat out."
    )

    @field_validator("sample_rate")
    @classmethod
    def _only_16k(cls, value: int) -> int:
        # The features, VAD and models are all trained at 16 kHz; other rates are resampled at the source.
        if value != 16000:
            raise ValueError("only 16000 is supported (inputs at other rates are resampled)")
        return value


class VadConfig(_Section):
    aggressiveness: int = Field(
        default=2, ge=0, le=3, description="webrtcvad aggressiveness: 0 keeps most audio as speech, 3 least."
    )
    hangover_ms: int = Field(
        default=80, ge=0, le=2000, description="Non-speech kept as speech after the last voiced frame (ms)."
    )


class WakeConfig(_Section):
    enabled: bool = Field(
        default=True,
        description="Require the wake phrase; with no wake model, every speech onset opens a session.",
    )
    model_path: Path | None = Field(
        default=None, description="Wake model file; unset = the bundled models/wake model when present."
    )
    phrase: str = Field(default="hey jarvis", description="The wake phrase, as spoken.")
    wakeword_id: str = Field(
        default="hey_jarvis",
        description="Id in events and Hermes topics (hermes/hotword/<id>/detected).",
    )
    sensitivity: float = Field(
        default=0.5, ge=0.0, le=1.0, description="0..1; higher fires more easily (more false accepts)."
    )
    refractory_ms: int = Field(
        default=2000, ge=0, description="After a detection, ignore further detections for this long (ms)."
    )
    hop_ms: int = Field(
        default=40,
        ge=20,
        le=80,
        multiple_of=20,
        description="How often the wake network runs (ms of audio per call: 20, 40, 60 or 80).",
    )
    vad_gating: bool = Field(
        default=True,
        description="Run the wake network only around speech (it replays what it skipped: never late).",
    )
    second_stage: bool = Field(
        default=False,
        description="Confirm a wake only if the recognizer's text of the same audio contains the phrase.",
    )


class AsrConfig(_Section):
    model_dir: Path = Field(
        default_factory=lambda: _package_models_dir() / "asr",
        description="Directory with the exported recognizer (config.json, *.onnx, tokenizer.model).",
    )
    use_int8: bool = Field(default=True, description="Load the int8 ONNX files when they are present.")
    beam: int = Field(default=4, ge=1, le=64, description="Beam of the modified beam search (1 = greedy).")
    nbest: int = Field(default=4, ge=1, le=64, description="Hypotheses kept in the N-best and the lattice.")
    lm_weight: float = Field(
        default=DEFAULT_LM_WEIGHT,
        ge=0.0,
        le=5.0,
        description="Weight of the command-domain language model (model_dir/lm.npz, `make lm`) in the "
        "beam search; 0 turns it off. Without the file there is no LM whatever this says.",
    )
    lm_insertion_bonus: float = Field(
        default=DEFAULT_LM_INSERTION_BONUS,
        ge=-5.0,
        le=5.0,
        description="Log-score added per emitted token while the LM is on, offsetting its preference "
        "for short outputs.",
    )


class BiasingConfig(_Section):
    enabled: bool = Field(default=True, description="Boost contact and device names during the search.")
    contacts: list[str] = Field(default_factory=list, description="Contact names for calls and messages.")
    devices: list[str] = Field(
        default_factory=list, description="Device/appliance names, e.g. 'kitchen light'."
    )
    areas: list[str] = Field(default_factory=list, description="Area/room names, e.g. 'living room'.")
    boost_per_token: float = Field(
        default=1.5, ge=0.0, le=20.0, description="Log-score bonus per matched token of a name."
    )
    max_boost_per_word: float = Field(
        default=4.5,
        ge=0.0,
        le=60.0,
        description="Most bonus one word of a name can earn (a rare name cut into many pieces would "
        "otherwise outweigh the acoustics).",
    )
    phrases: list[str] = Field(
        default_factory=list, description="Other phrases to boost (playlists, rooms nicknames …)."
    )
    boosts: dict[str, float] = Field(
        default_factory=dict, description="Per-name bonus per token, overriding boost_per_token."
    )
    aliases: dict[str, list[str]] = Field(
        default_factory=dict, description="Other spellings per name; they come out as the name."
    )
    sound_alikes: bool = Field(
        default=True,
        description="Also boost spellings derived from each name's pronunciation (needs espeak-ng "
        "once per new name; results cached), written out as the name.",
    )
    tokenizations: int = Field(default=4, ge=1, le=16, description="Token segmentations added per spelling.")
    name_threshold: float | None = Field(
        default=DEFAULT_NAME_THRESHOLD,
        ge=0.5,
        le=1.0,
        description="After decoding, a run of heard words that sounds at least this much like a "
        "name (0.5-1: sound similarity) is written as the name ('bredio' -> 'bravia'); "
        "null turns the second pass off. Measured by make eval-biasing.",
    )
    activation_prefixes: list[str] = Field(
        default_factory=list,
        description="If set, names earn their bonus only right after one of these phrases "
        "(e.g. 'call', 'text', 'turn on the'); empty = anywhere.",
    )
    pronunciation_cache: Path = Field(
        default=Path("~/.local/state/assistant/pronunciations.json"),
        description="Where espeak-ng pronunciations of names are cached ('~' expanded).",
    )


class EndpointConfig(_Section):
    speculative_trailing_ms: int = Field(
        default=250,
        ge=0,
        description="Trailing silence after which the speculative end-point fires (ms); 0: no speculation.",
    )
    complete_intent_trailing_ms: int = Field(
        default=100,
        ge=10,
        description="Trailing silence enough for the speculative end-point when the words so far already"
        " parse as a complete intent (ms; capped at speculative_trailing_ms).",
    )
    final_trailing_ms: int = Field(
        default=850, ge=10, description="Trailing silence after which the utterance is final (ms)."
    )
    speech_margin_db: float = Field(
        default=12.0,
        ge=0.0,
        lt=60.0,
        description="For the end-pointers a frame is speech only this far above the noise floor (dB) and"
        " when the VAD says so, so steady noise the VAD calls speech still ends a command; 0 turns it off.",
    )
    max_utterance_s: float = Field(
        default=10.0, gt=0.0, description="Force a final end-point after this much audio in a session."
    )
    no_speech_timeout_s: float = Field(
        default=4.0, gt=0.0, description="Close a session opened by the wake word if no speech follows."
    )


class NluConfig(_Section):
    enabled: bool = Field(default=True, description="Parse intents from the recognized text.")
    min_confidence: float = Field(
        default=0.3,
        ge=0.0,
        le=1.0,
        description="Below this the result is sent as intent_not_recognized instead of an intent.",
    )


class DispatchConfig(_Section):
    mode: Literal["edge", "cloud", "auto"] = Field(
        default="edge",
        description="Who reads the lattice: edge processor, cloud (stub), or auto (cloud, edge on timeout);"
        " the in-process NLU answers when none of them does.",
    )
    cloud_timeout_ms: int = Field(
        default=800, ge=1, description="Give up on the cloud after this long and fall back (ms)."
    )
    edge_timeout_ms: int = Field(
        default=400, ge=1, description="Give up on the edge processor after this long and fall back (ms)."
    )
    breaker_failures: int = Field(
        default=3,
        ge=1,
        description="Consecutive failures (timeouts, errors) after which a route is skipped without waiting.",
    )
    breaker_cooldown_ms: int = Field(
        default=10000, ge=0, description="After this long a skipped route gets one probe request again (ms)."
    )
    fault_latency_ms: int = Field(
        default=0, ge=0, description="Cloud stub fault injection: delay added to every reply (ms)."
    )
    fault_jitter_ms: int = Field(
        default=0, ge=0, description="Cloud stub fault injection: extra random delay, uniform 0..this (ms)."
    )
    fault_drop_rate: float = Field(
        default=0.0, ge=0.0, le=1.0, description="Cloud stub fault injection: fraction of requests ignored."
    )
    fault_malformed_rate: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Cloud stub fault injection: fraction of replies sent as invalid JSON.",
    )
    fault_disconnect_every: int = Field(
        default=0,
        ge=0,
        description="Cloud stub fault injection: reconnect to the broker every N requests (0 = never).",
    )
    fault_disconnect_ms: int = Field(
        default=1000, ge=0, description="Cloud stub fault injection: how long each disconnect lasts (ms)."
    )
    fault_seed: int | None = Field(
        default=None, description="Seed of the fault injection; set = the same faults for the same requests."
    )


class MqttConfig(BaseModel):
    """MQTT publishing of events (off by default so the daemon runs without a broker)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, validate_default=True)

    enabled: bool = Field(default=False, description="Publish events to an MQTT broker.")
    host: str = Field(default="127.0.0.1", description="Broker host name or address.")
    port: int = Field(default=1883, ge=1, le=65535, description="Broker port (8883 is usual with TLS).")
    username: str | None = Field(default=None, description="Broker user name; unset = anonymous.")
    password: str | None = Field(
        default=None, description="Broker password; prefer the env var ASSISTANT_MQTT__PASSWORD."
    )
    tls: bool = Field(default=False, description="Connect with TLS.")
    ca_file: Path | None = Field(default=None, description="CA bundle for TLS; unset = system store.")
    cert_file: Path | None = Field(default=None, description="Client certificate for TLS client auth.")
    key_file: Path | None = Field(default=None, description="Client private key for TLS client auth.")
    tls_insecure: bool = Field(default=False, description="Skip the broker host name check (testing only).")
    client_id: str | None = Field(default=None, description="MQTT client id; unset = assistant-<site_id>.")
    keepalive_s: int = Field(default=30, ge=1, description="MQTT keepalive interval in seconds.")
    qos: int = Field(default=1, ge=0, le=2, description="QoS of published events (1 = at least once).")
    outbox_path: Path = Field(
        default=Path("~/.local/state/assistant/outbox.sqlite3"),
        description="SQLite outbox holding events until the broker acknowledges them.",
    )
    reconnect_min_s: float = Field(default=0.5, gt=0.0, description="First reconnect delay in seconds.")
    reconnect_max_s: float = Field(
        default=30.0, gt=0.0, description="Longest reconnect delay (exponential back-off) in seconds."
    )
    hermes_mirror: bool = Field(
        default=True, description="Also publish Hermes topics (hermes/...) for Rhasspy/Snips apps."
    )
    topic_prefix: str = Field(default="assistant", description="First level of topics: <prefix>/<site>/...")

    @field_validator("outbox_path", "ca_file", "cert_file", "key_file")
    @classmethod
    def _expand_user(cls, value: Path | None) -> Path | None:
        return None if value is None else value.expanduser()


class LoggingConfig(_Section):
    level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Lowest level written to stderr."
    )
    format: Literal["auto", "json", "console"] = Field(
        default="auto",
        description="auto = JSON lines under systemd or when stderr is not a terminal, else pretty console.",
    )

    @field_validator("level", mode="before")
    @classmethod
    def _lowercase(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value


class AssistantConfig(_Section):
    """Everything the daemon can be told. Sections map to TOML tables and env var prefixes."""

    site_id: str = Field(
        default="default",
        pattern=r"^[A-Za-z0-9_-]+$",
        description="This room's id, used in topics and events (letters, digits, _ and -).",
    )
    audio: AudioConfig = Field(default_factory=AudioConfig, description="Audio input.")
    vad: VadConfig = Field(default_factory=VadConfig, description="Voice activity detection.")
    wake: WakeConfig = Field(default_factory=WakeConfig, description="Wake word.")
    asr: AsrConfig = Field(default_factory=AsrConfig, description="Speech recognizer.")
    biasing: BiasingConfig = Field(
        default_factory=BiasingConfig, description="Context biasing towards names."
    )
    endpoint: EndpointConfig = Field(default_factory=EndpointConfig, description="End-pointers.")
    nlu: NluConfig = Field(default_factory=NluConfig, description="Intent parsing.")
    dispatch: DispatchConfig = Field(default_factory=DispatchConfig, description="Lattice dispatch.")
    mqtt: MqttConfig = Field(default_factory=MqttConfig, description="MQTT publishing.")
    logging: LoggingConfig = Field(default_factory=LoggingConfig, description="Logging to stderr.")

    @property
    def mqtt_client_id(self) -> str:
        return self.mqtt.client_id or f"assistant-{self.site_id}"


# --------------------------------------------------------------------------- loading


def load_config(
    path: Path | str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    search: Iterable[Path] | None = None,
) -> AssistantConfig:
    """File (``path``, else the first of ``search`` that exists) + env overrides → validated config.

    Raises ``ConfigError`` with one line naming the field and the source on any problem.
    """
    environ = os.environ if environ is None else environ
    source: Path | None
    if path is not None:
        source = Path(path).expanduser()
    else:
        candidates = default_search_path() if search is None else tuple(search)
        source = next((candidate for candidate in candidates if candidate.is_file()), None)
    data: dict[str, Any] = _read_toml(source) if source is not None else {}
    overrides = env_overrides(environ)
    _merge(data, overrides)
    try:
        return AssistantConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_one_line(error, source, overrides)) from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config error: {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"config error: {path}: cannot read: {error}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config error: {path}: invalid TOML: {error}") from None


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """``ASSISTANT_<SECTION>__<FIELD>=value`` (or ``ASSISTANT_SITE_ID``) → nested dict.

    Values stay strings, which pydantic converts to the field's type (``"8883"`` → 8883,
    ``"true"`` → True) while a string field keeps ``"12345"`` as text. List fields take JSON
    (``'["Ann", "Bob"]'``) or commas (``Ann,Bob``).
    """
    result: dict[str, Any] = {}
    for key, raw in environ.items():
        if not key.startswith(ENV_PREFIX):
            continue
        parts = [part.lower() for part in key[len(ENV_PREFIX) :].split(ENV_SEPARATOR)]
        field = _field_info(parts)
        if field is None and len(parts) == 1:
            continue  # e.g. ASSISTANT_HOME: not ours (unknown section fields still fail validation)
        node = result
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[parts[-1]] = _parse_list(raw) if field is not None and _is_list(field.annotation) else raw
    return result


def _field_info(parts: list[str]) -> FieldInfo | None:
    """The field an env var names, or None when it names no field."""
    model: type[BaseModel] | None = AssistantConfig
    field: FieldInfo | None = None
    for part in parts:
        if model is None or part not in model.model_fields:
            return None
        field = model.model_fields[part]
        annotation = field.annotation
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    return field


def _is_list(annotation: object) -> bool:
    return get_origin(annotation) is list


def _parse_list(raw: str) -> Any:
    if raw.strip().startswith("["):
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw  # validation then names the field
    return [item.strip() for item in raw.split(",") if item.strip()]


def _merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> None:
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def _one_line(error: ValidationError, source: Path | None, overrides: Mapping[str, Any]) -> str:
    first = error.errors()[0]
    loc = [str(part) for part in first["loc"]]
    field = ".".join(loc) or "<root>"
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        message = "unknown setting (check the spelling; `assistant config --print-defaults` lists them)"
    more = error.error_count() - 1
    suffix = f" (and {more} more)" if more else ""
    return f"config error: {field}: {message}{suffix} (from {_origin(loc, source, overrides)})"


def _origin(loc: list[str], source: Path | None, overrides: Mapping[str, Any]) -> str:
    """The env var when the bad value came from the environment, else the file."""
    node: Any = overrides
    for depth, part in enumerate(loc):
        if not isinstance(node, Mapping) or part not in node:
            break
        node = node[part]
        if not isinstance(node, Mapping) or depth == len(loc) - 1:
            return ENV_PREFIX + ENV_SEPARATOR.join(p.upper() for p in loc[: depth + 1])
    return str(source) if source is not None else "defaults"


# --------------------------------------------------------------------------- documented defaults


def default_toml() -> str:
    """The default config as TOML, every field preceded by its description as a comment.

    The output loads back to the defaults (a test pins that), so it is a safe starting file.
    Unset (None) fields are written commented out, since TOML has no null.
    """
    lines = [
        "# Voice assistant configuration. Every setting below shows its default.",
        "# Environment overrides: ASSISTANT_<SECTION>__<FIELD>, e.g. ASSISTANT_MQTT__HOST=broker.local",
        "",
    ]
    sections: list[tuple[str, BaseModel]] = []
    for name, field in AssistantConfig.model_fields.items():
        value = field.get_default(call_default_factory=True)
        if isinstance(value, BaseModel):
            sections.append((name, value))
        else:
            lines.extend(_field_lines(name, field.description, value))
    for name, section in sections:
        description = AssistantConfig.model_fields[name].description
        lines.append("")
        if description:
            lines.append(f"# {description}")
        lines.append(f"[{name}]")
        for field_name, field in type(section).model_fields.items():
            # The declared default, not the validated value: "~/..." stays portable in the file.
            default = field.get_default(call_default_factory=True)
            computed = isinstance(default, Path) and field.default_factory is not None
            lines.extend(_field_lines(field_name, field.description, default, computed))
    return "\n".join(lines) + "\n"


def _field_lines(name: str, description: str | None, value: object, computed: bool = False) -> list[str]:
    lines = [f"# {description}"] if description else []
    if value is None:
        lines.append(f"# {name} =")
    elif computed:
        # Depends on where the package is installed: leave it to the runtime unless set.
        lines.append(f"# {name} = {_toml_value(value)}")
    else:
        lines.append(f"{name} = {_toml_value(value)}")
    return lines


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Path):
        return json.dumps(str(value))
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are valid TOML basic-string escapes
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, dict):  # an inline table; keys quoted (names have spaces)
        return "{" + ", ".join(f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no TOML form for {type(value).__name__}")
