"""Configuration: defaults work, TOML and env override them, every mistake is one line naming the field."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from assistant.config import (
    AssistantConfig,
    ConfigError,
    MqttConfig,
    default_toml,
    env_overrides,
    load_config,
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "assistant.toml"
    path.write_text(text)
    return path


def test_defaults_work_without_any_file() -> None:
    config = load_config(None, environ={}, search=())
    assert config == AssistantConfig()
    assert (config.audio.sample_rate, config.vad.aggressiveness, config.asr.beam) == (16000, 2, 4)
    assert config.wake.wakeword_id == "hey_jarvis" and config.dispatch.mode == "edge"
    assert config.asr.model_dir == Path(__file__).resolve().parent.parent / "models" / "asr"


def test_mqtt_section_contract() -> None:
    mqtt = MqttConfig()
    assert (mqtt.enabled, mqtt.host, mqtt.port, mqtt.qos, mqtt.keepalive_s) == (
        False,
        "127.0.0.1",
        1883,
        1,
        30,
    )
    assert mqtt.outbox_path == Path.home() / ".local/state/assistant/outbox.sqlite3"  # ~ expanded
    assert (mqtt.reconnect_min_s, mqtt.reconnect_max_s, mqtt.hermes_mirror) == (0.5, 30.0, True)
    assert mqtt.topic_prefix == "assistant" and mqtt.client_id is None
    assert AssistantConfig(site_id="hall").mqtt_client_id == "assistant-hall"
    with pytest.raises(ValueError):
        MqttConfig(qos=3)


def test_every_field_is_documented() -> None:
    def walk(model: type, prefix: str) -> list[str]:
        missing = []
        for name, field in model.model_fields.items():  # type: ignore[attr-defined]
            if not field.description:
                missing.append(prefix + name)
            annotation = field.annotation
            if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
                missing += walk(annotation, f"{prefix}{name}.")
        return missing

    assert walk(AssistantConfig, "") == []


def test_toml_file_sets_fields(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'site_id = "kitchen"\n[mqtt]\nenabled = true\nhost = "broker.lan"\n'
        '[biasing]\ncontacts = ["Ann", "Bob"]\n[endpoint]\nfinal_trailing_ms = 900\n',
    )
    config = load_config(path, environ={})
    assert config.site_id == "kitchen"
    assert (config.mqtt.enabled, config.mqtt.host) == (True, "broker.lan")
    assert config.biasing.contacts == ["Ann", "Bob"]
    assert config.endpoint.final_trailing_ms == 900


def test_env_overrides_beat_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[mqtt]\nhost = "from-file"\nport = 1883\n')
    environ = {
        "ASSISTANT_MQTT__HOST": "from-env",
        "ASSISTANT_MQTT__PORT": "8883",
        "ASSISTANT_MQTT__TLS": "true",
        "ASSISTANT_SITE_ID": "office",
        "ASSISTANT_BIASING__DEVICES": '["kitchen light", "fan"]',
        "ASSISTANT_MQTT__OUTBOX_PATH": "/var/lib/assistant/outbox.sqlite3",
        "ASSISTANT_HOME": "/not/a/setting",  # unrelated variables with the prefix are ignored
        "PATH": "/usr/bin",
    }
    config = load_config(path, environ=environ)
    assert (config.mqtt.host, config.mqtt.port, config.mqtt.tls) == ("from-env", 8883, True)
    assert config.site_id == "office"
    assert config.biasing.devices == ["kitchen light", "fan"]
    assert config.mqtt.outbox_path == Path("/var/lib/assistant/outbox.sqlite3")


def test_env_values_that_look_numeric_stay_strings_where_the_field_is_a_string() -> None:
    config = load_config(None, environ={"ASSISTANT_MQTT__PASSWORD": "12345"}, search=())
    assert config.mqtt.password == "12345"


def test_env_override_parsing_leaves_conversion_to_the_model_except_for_lists() -> None:
    environ = {
        "ASSISTANT_VAD__AGGRESSIVENESS": "3",
        "ASSISTANT_WAKE__ENABLED": "False",
        "ASSISTANT_BIASING__AREAS": "kitchen, living room",
    }
    assert env_overrides(environ) == {
        "vad": {"aggressiveness": "3"},
        "wake": {"enabled": "False"},
        "biasing": {"areas": ["kitchen", "living room"]},
    }
    config = load_config(None, environ=environ, search=())
    assert (config.vad.aggressiveness, config.wake.enabled) == (3, False)


def test_env_override_for_an_unknown_field_is_an_error_naming_it() -> None:
    with pytest.raises(ConfigError, match=r"^config error: mqtt\.hots: unknown setting"):
        load_config(None, environ={"ASSISTANT_MQTT__HOTS": "x"}, search=())


def test_search_path_takes_the_first_existing_file(tmp_path: Path) -> None:
    second = tmp_path / "second.toml"
    second.write_text('site_id = "second"\n')
    third = tmp_path / "third.toml"
    third.write_text('site_id = "third"\n')
    config = load_config(None, environ={}, search=(tmp_path / "missing.toml", second, third))
    assert config.site_id == "second"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[mqtt]\nport = 70000\n", "config error: mqtt.port: Input should be less than or equal to 65535"),
        (
            "[vad]\naggressiveness = 7\n",
            "config error: vad.aggressiveness: Input should be less than or equal to 3",
        ),
        ("[mqtt]\nhots = 'x'\n", "config error: mqtt.hots: unknown setting"),
        (
            "[dispatch]\nmode = 'telepathy'\n",
            "config error: dispatch.mode: Input should be 'edge', 'cloud' or 'auto'",
        ),
        ("[wake]\nsensitivity = 'high'\n", "config error: wake.sensitivity: Input should be a valid number"),
        ("site_id = 'my room'\n", "config error: site_id: String should match pattern"),
        ("[mqtt\nport = 1\n", "invalid TOML"),
    ],
)
def test_invalid_config_is_one_line_naming_the_field_and_file(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    message = str(caught.value)
    assert expected in message
    assert str(path) in message
    assert "\n" not in message


def test_invalid_env_override_names_the_field_and_the_environment() -> None:
    with pytest.raises(ConfigError, match=r"^config error: mqtt\.qos: .* \(from ASSISTANT_MQTT__QOS\)$"):
        load_config(None, environ={"ASSISTANT_MQTT__QOS": "5"}, search=())


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "absent.toml", environ={})
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(binary, environ={})


def test_print_defaults_round_trips_through_the_loader(tmp_path: Path) -> None:
    text = default_toml()
    path = write(tmp_path, text)
    assert load_config(path, environ={}) == AssistantConfig()
    parsed = tomllib.loads(text)
    assert set(parsed) == set(AssistantConfig.model_fields)  # every section and top-level field present
    assert parsed["mqtt"]["outbox_path"] == "~/.local/state/assistant/outbox.sqlite3"  # portable, unexpanded


def test_print_defaults_documents_every_field() -> None:
    text = default_toml()
    for name, field in AssistantConfig.model_fields["mqtt"].annotation.model_fields.items():  # type: ignore[union-attr]
        assert f"# {field.description}" in text, name
    assert "# username =" in text  # unset fields are shown, commented out
