"""The ``assistant`` command (DESIGN.md §4).

Exit codes: 0 ok, 2 usage or config error, 3 unreadable input. User mistakes are one line
on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from assistant import __version__
from assistant.audio.sources import AudioInputError
from assistant.config import AssistantConfig, ConfigError, default_toml, load_config
from assistant.logging import configure_logging

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_INPUT = 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="assistant",
        description="On-device voice assistant: wake word, streaming RNN-T, intents over MQTT.",
    )
    parser.add_argument("--version", action="version", version=f"assistant {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def with_config(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument("--config", type=Path, metavar="FILE", help="TOML config (default: search path)")
        return sub

    run = with_config(commands.add_parser("run", help="the daemon on the microphone"))
    run.add_argument("--device", metavar="NAME|INDEX", help="input device (see `assistant devices`)")

    commands.add_parser("devices", help="list audio input devices")

    replay = with_config(commands.add_parser("replay", help="run WAV files through the daemon's pipeline"))
    replay.add_argument(
        "files", nargs="+", metavar="FILE", help="WAV files ('-' = raw s16le 16 kHz on stdin)"
    )
    replay.add_argument("--realtime", action="store_true", help="pace the audio like a microphone")
    replay.add_argument("--no-wake", action="store_true", help="every speech onset opens a session")
    replay.add_argument("--json", action="store_true", help="events as JSON lines (the wire format)")

    transcribe = with_config(commands.add_parser("transcribe", help="recognizer only: text for each file"))
    transcribe.add_argument("files", nargs="+", metavar="FILE")
    transcribe.add_argument("--contacts", type=Path, metavar="FILE", help="extra contact names, one per line")
    transcribe.add_argument("--devices", type=Path, metavar="FILE", help="extra device names, one per line")
    transcribe.add_argument("--no-bias", action="store_true", help="disable context biasing")
    transcribe.add_argument("--nbest", type=int, metavar="N", help="hypotheses to report")
    transcribe.add_argument("--json", action="store_true", help="one JSON object per file")

    stub = with_config(commands.add_parser("cloud-stub", help="the cloud lattice consumer (local stand-in)"))
    faults = stub.add_argument_group("fault injection (override the config's [dispatch] fault_* settings)")
    faults.add_argument("--latency-ms", type=float, metavar="MS", help="delay added to every reply")
    faults.add_argument("--jitter-ms", type=float, metavar="MS", help="extra random delay, uniform 0..MS")
    faults.add_argument("--drop-rate", type=float, metavar="P", help="fraction of requests never answered")
    faults.add_argument("--malformed-rate", type=float, metavar="P", help="fraction answered with bad JSON")
    faults.add_argument("--disconnect-every", type=int, metavar="N", help="leave the broker every N requests")
    faults.add_argument("--disconnect-ms", type=float, metavar="MS", help="how long each disconnect lasts")
    faults.add_argument("--seed", type=int, help="same seed, same faults for the same requests")

    config = with_config(commands.add_parser("config", help="show or check the configuration"))
    action = config.add_mutually_exclusive_group(required=True)
    action.add_argument("--print-defaults", action="store_true", help="a documented default config (TOML)")
    action.add_argument("--check", action="store_true", help="validate the config and say where it came from")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except ConfigError as error:
        _fail(str(error))
        return EXIT_USAGE
    except AudioInputError as error:
        _fail(str(error))
        return EXIT_INPUT
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `assistant replay ... | head`: the reader left; nothing to report.
        _silence_stdout()
        return EXIT_OK


def _dispatch(args: argparse.Namespace) -> int:
    command: str = args.command
    if command == "config" and args.print_defaults:
        sys.stdout.write(default_toml())
        return EXIT_OK
    if command == "devices":
        configure_logging()
        return _devices()
    if command in ("transcribe", "cloud-stub"):
        configure_logging()
    if command == "transcribe":
        return _delegate("assistant.asr.transcribe", args, "no recognizer model installed (models/asr)")
    if command == "cloud-stub":
        return _delegate("assistant.cloud_stub", args, "the cloud stub is not installed")

    config = _load(args)
    configure_logging(config.logging.level, config.logging.format)
    if command == "config":
        sys.stdout.write(f"config ok ({args.config or 'search path / defaults'})\n")
        return EXIT_OK

    from assistant import daemon  # after logging is configured: its module logger binds then

    if command == "replay":
        realtime = bool(args.realtime or config.audio.realtime_replay)
        return daemon.replay(config, args.files, realtime=realtime, no_wake=args.no_wake, as_json=args.json)
    if command == "run":
        device: str | int | None = args.device
        return daemon.run(config, device)
    raise AssertionError(f"unhandled command {command}")  # argparse only allows the ones above


def _load(args: argparse.Namespace) -> AssistantConfig:
    return load_config(getattr(args, "config", None))


def _devices() -> int:
    from assistant.audio.mic import list_input_devices

    devices = list_input_devices()
    if not devices:
        sys.stdout.write("no audio input devices found\n")
    for device in devices:
        marker = "*" if device.is_default else " "
        sys.stdout.write(
            f"{marker} {device.index:3d}  {device.name}  "
            f"({device.channels} ch, {device.default_sample_rate:.0f} Hz)\n"
        )
    return EXIT_OK


def _delegate(module_name: str, args: argparse.Namespace, missing: str) -> int:
    """Subcommands implemented elsewhere, imported only when used (they may pull in onnxruntime)."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name is not None and module_name.startswith(error.name):
            _fail(f"assistant {args.command}: {missing}")
            return EXIT_USAGE
        raise
    entry: Callable[[argparse.Namespace], int | None] = module.main
    return entry(args) or EXIT_OK


def _fail(message: str) -> None:
    sys.stderr.write(message.rstrip("\n") + "\n")
    sys.stderr.flush()


def _silence_stdout() -> None:
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
