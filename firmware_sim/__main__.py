"""``python -m firmware_sim``: compile, inspect, run and serve weight images.

Exit codes (as the ``assistant`` CLI): 0 ok, 2 usage or configuration error (including a model the
processor cannot run), 3 unreadable input. Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from firmware_sim.cost import CostModel, Counters
from firmware_sim.image import ImageError, load_image, summarize, write_image
from firmware_sim.network import ExecutionError, NetworkError

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_INPUT = 3


class UsageError(Exception):
    pass


class InputError(Exception):
    pass


class ConfigLineError(UsageError):
    """A config problem, already one line as the daemon prints it (``config error: ...``)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m firmware_sim",
        description="The simulated neural edge processor: weight images and runs.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    compile_ = commands.add_parser("compile", help="build a weight image from an ONNX or PyTorch model")
    compile_.add_argument(
        "model", type=Path, help="MODEL.onnx, or MODEL.pt (a whole module; needs --calibration)"
    )
    compile_.add_argument(
        "-o", "--output", type=Path, required=True, metavar="IMAGE", help="the image to write"
    )
    compile_.add_argument(
        "--calibration",
        type=Path,
        metavar="FILE",
        help="example inputs: .npy (one input) or .npz (one array per input name); default: random data",
    )
    compile_.add_argument(
        "--per-tensor", action="store_true", help="one weight scale per tensor, not per row"
    )
    compile_.add_argument(
        "--prune",
        type=float,
        default=0.0,
        metavar="FRACTION",
        help="zero the smallest weights of each matrix first (experiments; trained models bring their masks)",
    )

    inspect = commands.add_parser("inspect", help="sizes, sparsity and encoding of every tensor in an image")
    inspect.add_argument("image", type=Path)
    inspect.add_argument("--json", action="store_true", help="one JSON object instead of tables")

    run = commands.add_parser("run", help="run an image on inputs and print outputs and counters")
    run.add_argument("image", type=Path)
    run.add_argument("--input", type=Path, required=True, metavar="FILE", help=".npy (one input) or .npz")
    run.add_argument("--json", action="store_true", help="one JSON object instead of text")
    run.add_argument("--per-layer", action="store_true", help="also print each layer's counters")

    serve = commands.add_parser(
        "serve",
        help="answer assistant/+/edge/request (dispatch requests) with the on-device NLU over MQTT",
        description="The broker connection is the daemon's [mqtt] section (host, port, username, password, "
        "TLS, topic_prefix; file from --config or the daemon's search path, ASSISTANT_MQTT__* variables "
        "override it); the flags below override both.",
    )
    serve.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="the daemon's TOML config (default: assistant.toml, ~/.config/assistant/assistant.toml, "
        "/etc/assistant/assistant.toml, the first found)",
    )
    serve.add_argument(
        "--image",
        type=Path,
        help="the understanding network, with its labels beside it as .json "
        "(env FIRMWARE_SIM_IMAGE, default models/nlu/edge.img)",
    )
    serve.add_argument("--host", help="MQTT broker host (default: [mqtt] host)")
    serve.add_argument("--port", type=int, help="MQTT broker port (default: [mqtt] port)")
    serve.add_argument("--prefix", help="topic prefix (default: [mqtt] topic_prefix)")
    serve.add_argument(
        "--client-id",
        help="this service's MQTT client id (env FIRMWARE_SIM_CLIENT_ID; default <[mqtt] client_id>-edge "
        "when the config sets one, else firmware-sim)",
    )

    for sub in (run, serve):
        sub.add_argument(
            "--cost",
            action="append",
            default=[],
            metavar="FIELD=VALUE",
            help="override a cost model parameter, e.g. sram_kib=512 or mac_lanes=32 (repeatable)",
        )
    return parser


def cost_model(overrides: Sequence[str]) -> CostModel:
    known = {f.name: f for f in dataclasses.fields(CostModel)}
    values: dict[str, Any] = {}
    for item in overrides:
        name, _, text = item.partition("=")
        if name not in known or not text:
            raise UsageError(f"--cost {item!r}: expected FIELD=VALUE with FIELD one of {', '.join(known)}")
        try:
            values[name] = int(text) if known[name].type in ("int", int) else float(text)
        except ValueError:
            raise UsageError(f"--cost {item!r}: {text!r} is not a number") from None
    try:
        return CostModel(**values)
    except ValueError as error:
        raise UsageError(str(error)) from None


def _load(path: Path) -> Any:
    try:
        return load_image(path)
    except OSError as error:
        raise InputError(f"{path}: {error.strerror or error}") from None
    except ImageError as error:
        raise InputError(f"{path}: {error}") from None


def _compile(args: argparse.Namespace) -> int:
    from firmware_sim.compile import CompileError, compile_model
    from firmware_sim.quantize import QuantizeError, QuantizeOptions

    if not args.model.is_file():
        raise InputError(f"{args.model}: no such file")
    if args.calibration is not None and not args.calibration.is_file():
        raise InputError(f"{args.calibration}: no such file")
    try:
        report = compile_model(
            args.model, args.calibration, QuantizeOptions(per_channel=not args.per_tensor), args.prune
        )
        size = write_image(report.network, args.output)
    except (CompileError, QuantizeError, NetworkError, ImageError) as error:
        raise UsageError(f"{args.model}: {error}") from None
    except OSError as error:
        raise InputError(f"{args.output}: {error.strerror or error}") from None
    image = load_image(args.output)
    print(
        f"wrote {args.output}: {size} bytes ({image.dense_size_bytes} dense), "
        f"{len(report.network.layers)} layers, {len(image.encoded)} constant tensors"
    )
    if report.synthetic_calibration:
        print("warning: no --calibration given; activation ranges come from random inputs", file=sys.stderr)
    print(f"calibration samples: {report.samples}")
    if report.onnx_max_abs_diff is not None:
        print(f"float import vs onnxruntime: max |diff| {report.onnx_max_abs_diff:.2e}")
    for name, relative in report.int8_relative_error.items():
        print(f"int8 vs float, output {name}: max |diff| / max |float| = {relative:.4f}")
    return EXIT_OK


def _inspect(args: argparse.Namespace) -> int:
    image = _load(args.image)
    rows = summarize(image)
    network = image.network
    if args.json:
        print(
            json.dumps(
                {
                    "name": network.name,
                    "size_bytes": image.size_bytes,
                    "dense_size_bytes": image.dense_size_bytes,
                    "checksum": f"{image.checksum:#010x}",
                    "inputs": network.input_names(),
                    "outputs": network.output_names(),
                    "layers": [
                        {
                            "op": layer.op.name,
                            "inputs": list(layer.inputs),
                            "outputs": list(layer.outputs),
                            "attrs": {
                                k: list(v) if isinstance(v, tuple) else v for k, v in layer.attrs.items()
                            },
                        }
                        for layer in network.layers
                    ],
                    "tensors": [dataclasses.asdict(row) | {"sparsity": row.sparsity} for row in rows],
                },
                indent=2,
            )
        )
        return EXIT_OK
    ratio = image.size_bytes / image.dense_size_bytes if image.dense_size_bytes else 1.0
    print(
        f"image {args.image}: network {network.name!r}, {len(network.layers)} layers, "
        f"{len(network.tensors)} tensors, checksum {image.checksum:#010x}"
    )
    print(
        f"size {image.size_bytes} bytes; with every tensor dense {image.dense_size_bytes} bytes ({ratio:.1%})"
    )
    print(f"inputs {network.input_names()}  outputs {network.output_names()}")
    print()
    for position, layer in enumerate(network.layers):
        names = [network.tensors[i].name if i >= 0 else "-" for i in layer.inputs]
        print(f"  {position:3d} {layer.op.name:<10} {', '.join(names)}")
    print()
    columns = ("tensor", "dtype", "shape", "sparsity", "encoding", "stored", "dense")
    print("  {:<36} {:<6} {:<16} {:>8} {:<8} {:>9} {:>9}".format(*columns))
    for row in rows:
        print(
            f"  {row.name[-36:]:<36} {row.dtype:<6} {'x'.join(map(str, row.shape)):<16} {row.sparsity:>8.1%} "
            f"{row.encoding:<8} {row.stored_bytes:>9} {row.dense_bytes:>9}"
        )
    stored = sum(r.stored_bytes for r in rows)
    dense = sum(r.dense_bytes for r in rows)
    print(f"  {'total':<36} {'':<6} {'':<16} {'':>8} {'':<8} {stored:>9} {dense:>9}")
    return EXIT_OK


def _read_inputs(path: Path, names: list[str]) -> dict[str, Any]:
    try:
        loaded = np.load(str(path), allow_pickle=False)
    except (OSError, ValueError) as error:
        raise InputError(f"{path}: not a readable .npy/.npz file ({error})") from None
    if isinstance(loaded, np.ndarray):
        if len(names) != 1:
            raise UsageError(f"the network has inputs {names}: give an .npz with one array per input")
        return {names[0]: loaded}
    return {key: loaded[key] for key in loaded.files}


def _run(args: argparse.Namespace) -> int:
    from firmware_sim.executor import Executor
    from firmware_sim.quantize import dequantize_outputs, quantize_inputs

    cost = cost_model(args.cost)
    image = _load(args.image)
    try:
        machine = Executor(image, cost)
        raw = _read_inputs(args.input, image.network.input_names())
        result = machine.run(quantize_inputs(image.network, raw))
    except (ExecutionError, NetworkError) as error:
        raise UsageError(str(error)) from None
    outputs = dequantize_outputs(image.network, result.outputs)
    if args.json:
        body: dict[str, Any] = {
            "outputs": {name: value.tolist() for name, value in outputs.items()},
            "counters": result.counters.to_dict(),
            "load_counters": machine.load_counters.to_dict(),
            "simulated_s": cost.seconds(result.counters),
        }
        if args.per_layer:
            body["layers"] = [
                {"op": layer.op.name} | counters.to_dict()
                for layer, counters in zip(image.network.layers, result.layer_counters, strict=True)
            ]
        print(json.dumps(body))
        return EXIT_OK
    with np.printoptions(precision=4, suppress=True, threshold=64):
        for name, value in outputs.items():
            print(f"{name} {list(value.shape)}:\n{value}")
    print()
    _print_counters("run", result.counters, cost)
    _print_counters("load (once)", machine.load_counters, cost)
    if args.per_layer:
        for position, (layer, counters) in enumerate(
            zip(image.network.layers, result.layer_counters, strict=True)
        ):
            _print_counters(f"layer {position} {layer.op.name}", counters, cost)
    return EXIT_OK


def _print_counters(title: str, counters: Counters, cost: CostModel) -> None:
    print(
        f"{title}: {counters.cycles} cycles "
        f"({cost.seconds(counters) * 1e6:.1f} µs at {cost.clock_mhz:g} MHz), "
        f"{counters.energy_pj / 1e3:.2f} nJ"
    )
    print(
        f"  MACs issued {counters.macs_issued}, skipped {counters.macs_skipped} "
        f"({counters.skipped_fraction:.1%} of {counters.macs_total}); vector ops {counters.vector_ops}"
    )
    print(
        f"  DRAM read {counters.dram_bytes_read} B (dense image: {counters.dram_bytes_read_dense} B), "
        f"written {counters.dram_bytes_written} B; SRAM read {counters.sram_bytes_read} B, "
        f"written {counters.sram_bytes_written} B"
    )


def _serve(args: argparse.Namespace) -> int:
    from assistant.config import ConfigError, load_config
    from firmware_sim.nlu import BundleError, EdgeNlu
    from firmware_sim.service import EdgeService, ServiceConfig, with_mqtt_settings

    cost = cost_model(args.cost)
    try:
        config = ServiceConfig.from_config(load_config(args.config))
        flags = {
            "host": (args.host, "--host"),
            "port": (args.port, "--port"),
            "topic_prefix": (args.prefix, "--prefix"),
        }
        mqtt = with_mqtt_settings(config.mqtt, {k: v for k, v in flags.items() if v[0] is not None})
    except ConfigError as error:
        raise ConfigLineError(str(error)) from None
    config = dataclasses.replace(
        config,
        mqtt=mqtt,
        image=args.image or config.image,
        client_id=args.client_id or config.client_id,
        cost=cost,
    )
    try:
        edge = EdgeNlu.load(config.image, config.cost)
    except BundleError as error:
        raise InputError(str(error)) from None
    except ExecutionError as error:  # e.g. the network does not fit the configured SRAM
        raise UsageError(f"{config.image}: {error}") from None
    try:
        service = EdgeService(config, edge)
    except ConfigError as error:  # e.g. a TLS file that cannot be read
        raise ConfigLineError(str(error)) from None
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    print(
        f"serving {config.image} ({edge.executor.network.name}: {len(edge.labels.intents)} intents, "
        f"{len(edge.labels.words)} words) on {config.broker}{' (TLS)' if config.mqtt.tls else ''}, "
        f"topic {config.request_topic()}",
        file=sys.stderr,
    )
    service.run(stop)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"compile": _compile, "inspect": _inspect, "run": _run, "serve": _serve}
    try:
        return handlers[args.command](args)
    except ConfigLineError as error:
        print(error, file=sys.stderr)
        return EXIT_USAGE
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_INPUT


if __name__ == "__main__":
    sys.exit(main())
