"""``make eval-dispatch``: lattice dispatch on a real broker, healthy and under faults.

What it runs: a private mosquitto; the cloud stub (full NLU) in this process on its own MQTT
connection; the edge processor's service when ``firmware_sim`` provides one (``--edge``); the
daemon's :class:`~assistant.dispatch.Dispatcher` over its MQTT transport with the default
``[dispatch]`` settings; and an :class:`~assistant.mqtt.MqttEventPublisher` that publishes each
committed result as the daemon would, while a separate subscriber counts the intent events per
session on the broker (after de-duplicating on ``event_id``, as integrators must).

Input: the corpus text generator's dev sentences, with the evaluation-only names
(:func:`models.corpus.names.eval_names`). No recognizer output is used: each utterance's N-best
is its reference text alone (score 0), so this measures dispatch, not recognition.

Measured, per scenario:

* intent agreement with the in-process NLU on the same N-best (and, for information, with the
  generator's reference intent), and between the routes: edge vs cloud vs in-process, on the
  utterances each of them answered;
* end-to-end dispatch latency per answering route (``DispatchResult.dispatch_ms``: from the
  dispatcher's call to the committed answer, median / p90 / max);
* under 0 %, 20 % and 100 % cloud drop and 500 ms added latency: every utterance yields exactly one
  committed result and exactly one intent event on the broker; and with a dead cloud, the latency
  added once the breaker is open, per utterance against the same utterance without any cloud;
* the edge processor's counters from its replies (``docs/dispatch.md``): DRAM bytes of its image,
  compressed vs dense, and per request; the skipped MAC fraction next to the weights' measured
  sparsity; cycles per request.

Writes ``<out>/dispatch.json`` and ``<out>/dispatch.md``. Runs in about a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from assistant.cloud_stub import CloudStub, FaultSettings
from assistant.config import DispatchConfig, MqttConfig, NluConfig
from assistant.dispatch import (
    Dispatcher,
    DispatchResult,
    MqttDispatchTransport,
    RoutingPolicy,
    Understanding,
    result_event,
    understand_with_nlu,
)
from assistant.dispatch_protocol import Hypothesis, Vocabulary
from assistant.mqtt import MqttEventPublisher
from models.corpus.names import eval_names
from models.corpus.text import Sentence, generate_sentences
from models.results import write_results

SITE = "eval"
DEV_SEED = 20251124  # the dev sentences: fixed, so every run reads the same utterances
FAULT_SEED = 7
WAIT_S = 15.0
REPO = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- inputs


def dev_utterances(count: int) -> tuple[list[Sentence], Vocabulary]:
    """Dev sentences with eval-only names, and the user vocabulary that names them.

    The contacts are the people the sentences call or message (a user's address book holds the
    people they talk to); devices and areas are the evaluation-only lists.
    """
    names = eval_names()
    sentences = generate_sentences(seed=DEV_SEED, count=count, names=names)
    contacts = sorted({str(s.slots["contact"]) for s in sentences if "contact" in s.slots})
    vocabulary = Vocabulary(devices=list(names.devices), areas=list(names.areas), contacts=contacts)
    return sentences, vocabulary


def meaning(intent: str | None, slots: Sequence[Any]) -> tuple[str | None, tuple[tuple[str, str], ...]]:
    return intent, tuple(sorted((slot.name, str(slot.value)) for slot in slots))


# --------------------------------------------------------------------------- the broker side


@contextmanager
def private_broker(workdir: Path, tcp_nodelay: bool) -> Iterator[tuple[str, int]]:
    """A mosquitto on a free port, configured as the tests' fixture does (``set_tcp_nodelay true``;
    ``tcp_nodelay=False`` shows what mosquitto's default costs)."""
    sys.path.insert(0, str(REPO))
    from tests.conftest import MosquittoBroker, find_mosquitto

    binary = find_mosquitto()
    if binary is None:
        raise SystemExit("eval-dispatch: mosquitto not found (apt-get install mosquitto)")
    broker = MosquittoBroker(binary, workdir)
    if not tcp_nodelay:
        lines = broker.config_path.read_text().splitlines()
        broker.config_path.write_text(
            "\n".join(line for line in lines if "set_tcp_nodelay" not in line) + "\n"
        )
    broker.start()
    try:
        yield broker.host, broker.port
    finally:
        broker.stop()


class EventCounter:
    """Subscribes like an integrator and counts intent events per session, de-duplicated on event_id."""

    def __init__(self, config: MqttConfig) -> None:
        self.by_session: dict[str, set[str]] = {}
        self.deliveries = 0
        self._arrived: queue.SimpleQueue[None] = queue.SimpleQueue()
        subscribed = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="eval-event-counter")
        self._client.on_connect = lambda c, u, f, rc, p: c.subscribe(
            [(f"assistant/{SITE}/intent/+", 1), (f"assistant/{SITE}/intent_not_recognized", 1)]
        )
        self._client.on_subscribe = lambda c, u, mid, rcs, p: subscribed.set()
        self._client.on_message = self._on_message
        self._client.connect(config.host, config.port)
        self._client.loop_start()
        if not subscribed.wait(WAIT_S):
            raise RuntimeError("event counter could not subscribe")

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        body = json.loads(message.payload)
        self.by_session.setdefault(str(body["session_id"]), set()).add(str(body["event_id"]))
        self.deliveries += 1
        self._arrived.put(None)

    def wait_for(self, sessions: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.by_session) < sessions:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                self._arrived.get(timeout=remaining)
            except queue.Empty:
                return

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@contextmanager
def edge_service(mqtt_config: MqttConfig, wanted: str, log_path: Path) -> Iterator[str | None]:
    """``python -m firmware_sim serve`` on the private broker, once it answers the dispatch protocol;
    otherwise yields why the edge route is left out."""
    if wanted == "off":
        yield "edge service switched off (--edge off)"
        return
    try:
        import firmware_sim.service  # noqa: F401  (only asking whether it exists)
    except ImportError:
        yield "firmware_sim has no MQTT service yet: the edge route is not evaluated"
        return
    env = {"ASSISTANT_MQTT__HOST": mqtt_config.host, "ASSISTANT_MQTT__PORT": str(mqtt_config.port)}
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "firmware_sim", "serve"],
            cwd=REPO,
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        problem = wait_for_edge(mqtt_config, process, WAIT_S)
        if problem is not None:
            tail = " | ".join(log_path.read_text(errors="replace").strip().splitlines()[-2:])
            yield f"edge route not evaluated: {problem}" + (f" (service log: {tail})" if tail else "")
            return
        yield None
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for_edge(mqtt_config: MqttConfig, process: subprocess.Popen[bytes], timeout_s: float) -> str | None:
    """Ask the edge route until the service answers a dispatch request (None), or say why it did not."""
    transport = MqttDispatchTransport(mqtt_config, SITE)
    transport.start()
    probe = Dispatcher(
        RoutingPolicy("edge", {"cloud": 1.0, "edge": 0.5}, failure_threshold=1000),
        site_id=SITE,
        transport=transport,
        understand=lambda hypotheses, vocabulary: Understanding(intent=None),
    )
    problem = "no answer"
    try:
        deadline = time.monotonic() + timeout_s
        if not transport.wait_ready(timeout_s):
            return "the dispatcher could not connect to the broker"
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return f"`python -m firmware_sim serve` exited with {process.returncode}"
            result = probe.dispatch([Hypothesis(text="turn on the light")])
            if result.source == "edge":
                return None
            first = result.attempts[0]
            problem = first.error or first.outcome
            if first.outcome == "error":
                return f"the service does not answer the dispatch protocol ({problem})"
        return f"no answer within {timeout_s:.0f} s ({problem})"
    finally:
        probe.close()


# --------------------------------------------------------------------------- one scenario


@dataclass
class Scenario:
    name: str
    mode: str  # dispatch mode, or "local" for no transport at all
    faults: FaultSettings = field(default_factory=FaultSettings)
    count: int = 100
    what: str = ""


@dataclass
class Outcome:
    scenario: Scenario
    results: list[DispatchResult]
    agreement: float
    reference_accuracy: float
    events_per_session: Counter[int]
    duplicate_deliveries: int
    ignored_replies: int
    breaker_openings: dict[str, int]
    stub: dict[str, Any]
    wall_s: float


def run_scenario(
    scenario: Scenario,
    sentences: Sequence[Sentence],
    vocabulary: Vocabulary,
    reference: Sequence[Understanding],
    mqtt_config: MqttConfig,
    workdir: Path,
) -> Outcome:
    with ExitStack() as stack:
        stub: CloudStub | None = None
        transport: MqttDispatchTransport | None = None
        if scenario.mode != "local":
            stub = CloudStub(mqtt_config, scenario.faults)
            stub.start()
            stack.callback(stub.close)
            transport = MqttDispatchTransport(mqtt_config, SITE)
            transport.start()
            if not (stub.wait_ready(WAIT_S) and transport.wait_ready(WAIT_S)):
                raise RuntimeError("cloud stub or dispatcher could not connect to the broker")
        config = DispatchConfig(mode="cloud" if scenario.mode == "local" else scenario.mode)  # type: ignore[arg-type]
        numbers = itertools.count(1)
        dispatcher = Dispatcher(
            RoutingPolicy.from_config(config),
            site_id=SITE,
            transport=transport,
            vocabulary=vocabulary,
            # Fixed ids: the seeded faults depend on them, so every run suffers the same faults.
            request_id=lambda: f"{scenario.name}-{next(numbers)}",
        )
        stack.callback(dispatcher.close)
        counter = EventCounter(mqtt_config)
        stack.callback(counter.close)
        publisher = MqttEventPublisher(
            mqtt_config.model_copy(
                update={"outbox_path": workdir / f"outbox-{scenario.name}.sqlite3", "hermes_mirror": False}
            ),
            SITE,
        )
        publisher.start()
        stack.callback(publisher.close)

        started = time.monotonic()
        results = []
        min_confidence = NluConfig().min_confidence
        for index, sentence in enumerate(sentences[: scenario.count]):
            session = f"{scenario.name}-{index}"
            result = dispatcher.dispatch([Hypothesis(text=sentence.text, score=0.0)], session_id=session)
            results.append(result)
            publisher.publish(
                result_event(
                    result,
                    site_id=SITE,
                    session_id=session,
                    audio_time_s=float(index),
                    min_confidence=min_confidence,
                )
            )
        wall_s = time.monotonic() - started
        publisher.wait_delivered(WAIT_S)
        counter.wait_for(len(results), WAIT_S)

        agree = sum(
            meaning(r.intent, r.slots) == meaning(ref.intent, ref.slots)
            for r, ref in zip(results, reference, strict=False)
        )
        correct = sum(r.intent == s.intent for r, s in zip(results, sentences, strict=False))
        sessions = [f"{scenario.name}-{i}" for i in range(len(results))]
        per_session = Counter(len(counter.by_session.get(s, ())) for s in sessions)
        unique_events = sum(len(ids) for ids in counter.by_session.values())
        return Outcome(
            scenario=scenario,
            results=results,
            agreement=agree / len(results),
            reference_accuracy=correct / len(results),
            events_per_session=per_session,
            duplicate_deliveries=counter.deliveries - unique_events,
            ignored_replies=dispatcher.stats.ignored_replies,
            breaker_openings={t: b.times_opened for t, b in dispatcher.policy.breakers.items()},
            stub={} if stub is None else dict(vars(stub.stats)),
            wall_s=wall_s,
        )


# --------------------------------------------------------------------------- figures


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def latency_stats(values: Sequence[float]) -> dict[str, float | int]:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "median_ms": round(statistics.median(values), 2),
        "p90_ms": round(percentile(values, 0.9), 2),
        "max_ms": round(max(values), 2),
    }


def summarise(outcome: Outcome) -> dict[str, Any]:
    results = outcome.results
    by_source: dict[str, list[float]] = {}
    for result in results:
        by_source.setdefault(result.source, []).append(result.dispatch_ms)
    attempts = Counter(f"{a.route}:{a.outcome}" for r in results for a in r.attempts)
    return {
        "scenario": outcome.scenario.name,
        "what": outcome.scenario.what,
        "mode": outcome.scenario.mode,
        "faults": vars(outcome.scenario.faults),
        "utterances": len(results),
        "committed_results": len(results),
        "unique_request_ids": len({r.request_id for r in results}),
        "intent_events_per_session": {str(k): v for k, v in sorted(outcome.events_per_session.items())},
        "exactly_one_event_each": outcome.events_per_session == Counter({1: len(results)}),
        "duplicate_deliveries_deduplicated": outcome.duplicate_deliveries,
        "answered_by": dict(Counter(r.source for r in results)),
        "agreement_with_in_process_nlu": round(outcome.agreement, 4),
        "intent_accuracy_vs_reference": round(outcome.reference_accuracy, 4),
        "latency_all": latency_stats([r.dispatch_ms for r in results]),
        "latency_by_source": {source: latency_stats(values) for source, values in sorted(by_source.items())},
        "attempts": dict(sorted(attempts.items())),
        "edge_counters_per_request": counter_means([r.counters for r in results if r.counters]),
        "ignored_replies": outcome.ignored_replies,
        "breaker_openings": outcome.breaker_openings,
        "cloud_stub": outcome.stub,
        "wall_s": round(outcome.wall_s, 2),
    }


def counter_means(counters: Sequence[Any]) -> dict[str, float]:
    """Mean of each hardware counter the edge processor reported, over the requests it answered."""
    keys = sorted({key for counter in counters for key in counter})
    return {key: round(statistics.fmean(float(c[key]) for c in counters if key in c), 3) for key in keys}


def dead_cloud_added_latency(dead: Outcome, baseline: Outcome) -> dict[str, Any]:
    """Per utterance with the cloud breaker open: its latency minus the same utterance's latency
    in the run without any cloud (same fallback route, same N-best)."""
    added = []
    absolute = []
    for index, result in enumerate(dead.results):
        if result.attempts and result.attempts[0].outcome == "breaker_open":
            absolute.append(result.dispatch_ms)
            added.append(result.dispatch_ms - baseline.results[index].dispatch_ms)
    waited = [r.dispatch_ms for r in dead.results if r.attempts and r.attempts[0].outcome == "timeout"]
    return {
        "utterances_with_breaker_open": len(added),
        "utterances_that_waited_for_the_cloud": len(waited),
        "waited_ms": latency_stats(waited),
        "breaker_open_latency": latency_stats(absolute),
        "added_vs_no_cloud_median_ms": round(statistics.median(added), 2) if added else None,
        "added_vs_no_cloud_p90_ms": round(percentile(added, 0.9), 2) if added else None,
        "added_vs_no_cloud_max_ms": round(max(added), 2) if added else None,
        "target_ms": 50,
        "meets_target": bool(added) and percentile(added, 0.9) < 50,
    }


def route_agreement(answered: dict[str, list[DispatchResult]]) -> list[dict[str, Any]]:
    """Pairwise agreement between routes on the same utterances (same index = same N-best), each
    counted only where both results came from the route named (a fallback answer is not the
    route's own): intent, and meaning (intent and every slot value)."""
    local_name = {"in-process": "local"}
    rows = []
    names = list(answered)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            pairs = [
                (a, b)
                for a, b in zip(answered[first], answered[second], strict=False)
                if a.source == local_name.get(first, first) and b.source == local_name.get(second, second)
            ]
            intents = sum(a.intent == b.intent for a, b in pairs)
            meanings = sum(meaning(a.intent, a.slots) == meaning(b.intent, b.slots) for a, b in pairs)
            rows.append(
                {
                    "routes": f"{first} vs {second}",
                    "utterances": len(pairs),
                    "intent_agreement": round(intents / len(pairs), 4) if pairs else None,
                    "meaning_agreement": round(meanings / len(pairs), 4) if pairs else None,
                }
            )
    return rows


def edge_hardware(results: Sequence[DispatchResult]) -> dict[str, Any] | None:
    """The edge processor's own figures, from the counters in its replies."""
    counters = [r.counters for r in results if r.source == "edge" and r.counters]
    if not counters:
        return None

    def values(key: str) -> list[float]:
        return [float(c[key]) for c in counters if key in c]

    issued, skipped = sum(values("macs_issued")), sum(values("macs_skipped"))
    cycles = values("cycles")
    clock_mhz = counters[0].get("clock_mhz", 0.0)
    return {
        "requests": len(counters),
        "image_dram_bytes_compressed": counters[0].get("load_dram_bytes_read"),
        "image_dram_bytes_dense": counters[0].get("load_dram_bytes_read_dense"),
        "request_dram_bytes_read_mean": round(statistics.fmean(values("dram_bytes_read")), 1),
        "request_dram_bytes_read_dense_mean": round(statistics.fmean(values("dram_bytes_read_dense")), 1),
        "request_dram_bytes_written_mean": round(statistics.fmean(values("dram_bytes_written")), 1),
        "weight_sparsity": counters[0].get("weight_sparsity"),
        "skipped_mac_fraction": round(skipped / (issued + skipped), 4) if issued + skipped else None,
        "macs_per_request_mean": round((issued + skipped) / len(counters), 1),
        "cycles_per_request": {
            "median": statistics.median(cycles),
            "p90": round(percentile(cycles, 0.9), 1),
            "max": max(cycles),
            "mean": round(statistics.fmean(cycles), 1),
        },
        "simulated_us_per_request_median": (
            round(statistics.median(cycles) / float(clock_mhz), 2) if clock_mhz else None
        ),
        "clock_mhz": clock_mhz,
        "energy_nj_per_request_mean": round(statistics.fmean(values("energy_pj")) / 1000, 2),
        "hypotheses_run_mean": round(statistics.fmean(values("hypotheses_run")), 2),
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Lattice dispatch on a real broker",
        "",
        f"Command: `{report['command']}` · {report['date']} · {report['machine']}",
        "",
        f"Input: {report['input']}",
        "",
        f"Settings: {report['settings']}",
        "",
        "Edge processor: " + (report["edge"] or "running"),
        "",
        "Agreement compares intent and slot values with the in-process NLU on the same N-best; the cloud"
        " stub runs that same parser, so for the cloud it checks that nothing is lost or altered on the"
        f" wire. For reference, the NLU's intent accuracy on these sentences is"
        f" {report['scenarios'][0]['intent_accuracy_vs_reference']:.1%}.",
        "",
        "| scenario | routes | utterances | committed / unique ids | intent events per session"
        " | answered by | agreement with in-process NLU | latency median / p90 / max (ms) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in report["scenarios"]:
        latency = row["latency_all"]
        lines.append(
            f"| {row['scenario']} | {row['mode']} | {row['utterances']} | "
            f"{row['committed_results']} / {row['unique_request_ids']} | "
            f"{_events(row['intent_events_per_session'])} | {_counts(row['answered_by'])} | "
            f"{row['agreement_with_in_process_nlu']:.1%} | "
            f"{latency['median_ms']} / {latency['p90_ms']} / {latency['max_ms']} |"
        )
    lines += ["", "Latency per answering route (ms, median / p90 / max):", ""]
    lines += ["| scenario | route | n | median | p90 | max |", "|---|---|---|---|---|---|"]
    for row in report["scenarios"]:
        for source, stats in row["latency_by_source"].items():
            lines.append(
                f"| {row['scenario']} | {source} | {stats['n']} | {stats['median_ms']} | "
                f"{stats['p90_ms']} | {stats['max_ms']} |"
            )
    dead = report["dead_cloud"]
    lines += [
        "",
        "Dead cloud (100 % drop), once the breaker is open, against the same utterances without a cloud:",
        "",
        f"- {dead['utterances_that_waited_for_the_cloud']} utterances waited for the cloud's timeout "
        f"before the breaker opened ({_stats(dead['waited_ms'])});",
        f"- {dead['utterances_with_breaker_open']} utterances with the breaker open: "
        f"{_stats(dead['breaker_open_latency'])};",
        f"- added latency per utterance: median {dead['added_vs_no_cloud_median_ms']} ms, "
        f"p90 {dead['added_vs_no_cloud_p90_ms']} ms, max {dead['added_vs_no_cloud_max_ms']} ms "
        f"(target < {dead['target_ms']} ms: {'met' if dead['meets_target'] else 'NOT met'}).",
        "",
        "Attempts per scenario (route:outcome):",
        "",
    ]
    for row in report["scenarios"]:
        lines.append(
            f"- {row['scenario']}: {_counts(row['attempts'])}; ignored replies {row['ignored_replies']}"
        )
    agreement = report.get("route_agreement") or []
    if agreement:
        lines += ["", "Agreement between the routes, on the utterances both answered themselves:", ""]
        lines += ["| routes | utterances | intent | intent and slot values |", "|---|---|---|---|"]
        for row in agreement:
            lines.append(
                f"| {row['routes']} | {row['utterances']} | {_share(row['intent_agreement'])} | "
                f"{_share(row['meaning_agreement'])} |"
            )
    hardware = report.get("edge_hardware")
    if hardware:
        cycles = hardware["cycles_per_request"]
        lines += [
            "",
            f"Edge processor (its reply counters over the {hardware['requests']} requests it answered in the"
            " `edge` scenario):",
            "",
            "| figure | value |",
            "|---|---|",
            f"| DRAM bytes of the image (read once at load), compressed / dense | "
            f"{hardware['image_dram_bytes_compressed']} / {hardware['image_dram_bytes_dense']} |",
            f"| DRAM bytes per request read (dense) / written | {hardware['request_dram_bytes_read_mean']} "
            f"({hardware['request_dram_bytes_read_dense_mean']}) / "
            f"{hardware['request_dram_bytes_written_mean']} |",
            "| skipped MAC fraction vs measured weight sparsity | "
            f"{_share(hardware['skipped_mac_fraction'])} vs {_share(hardware['weight_sparsity'])} |",
            f"| MACs per request (issued + skipped) | {hardware['macs_per_request_mean']} |",
            f"| cycles per request, median / p90 / max (mean) | {cycles['median']} / {cycles['p90']} / "
            f"{cycles['max']} ({cycles['mean']}) |",
            f"| simulated time per request at {hardware['clock_mhz']} MHz, median | "
            f"{hardware['simulated_us_per_request_median']} µs |",
            f"| energy per request, mean | {hardware['energy_nj_per_request_mean']} nJ |",
            f"| network runs per request (hypotheses read) | {hardware['hypotheses_run_mean']} |",
        ]
    edge_rows = [row for row in report["scenarios"] if row["edge_counters_per_request"]]
    if edge_rows:
        lines += ["", "Edge processor counters, mean per request it answered:", ""]
        for row in edge_rows:
            lines.append(f"- {row['scenario']}: {_counts(row['edge_counters_per_request'])}")
    lines.append("")
    return "\n".join(lines)


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _counts(counts: dict[str, Any]) -> str:
    return ", ".join(f"{key} {value}" for key, value in counts.items()) or "-"


def _events(per_session: dict[str, int]) -> str:
    return ", ".join(f"{count} sessions × {events}" for events, count in per_session.items())


def _stats(stats: dict[str, Any]) -> str:
    if not stats.get("n"):
        return "none"
    return f"median {stats['median_ms']} ms, p90 {stats['p90_ms']} ms, max {stats['max_ms']} ms"


# --------------------------------------------------------------------------- main


def scenarios(count: int, fault_count: int, slow_count: int, remote: str) -> list[Scenario]:
    """``remote``: the routing mode under faults: ``auto`` with an edge service, else ``cloud``. The
    no-cloud baseline (local, or edge) covers every utterance of the dead-cloud run."""
    return [
        Scenario(
            "local", "local", count=max(count, fault_count), what="in-process NLU only (no broker path)"
        ),
        Scenario("cloud", "cloud", count=count, what="healthy cloud stub"),
        *(
            [Scenario("edge", "edge", count=max(count, fault_count), what="edge processor")]
            if remote == "auto"
            else []
        ),
        Scenario("drop-0", remote, FaultSettings(seed=FAULT_SEED), fault_count, "0 % cloud drop"),
        Scenario(
            "drop-20", remote, FaultSettings(drop_rate=0.2, seed=FAULT_SEED), fault_count, "20 % cloud drop"
        ),
        Scenario(
            "drop-100", remote, FaultSettings(drop_rate=1.0, seed=FAULT_SEED), fault_count, "dead cloud"
        ),
        Scenario(
            "latency-500",
            remote,
            FaultSettings(latency_ms=500, seed=FAULT_SEED),
            slow_count,
            "+500 ms cloud latency",
        ),
    ]


def run(args: argparse.Namespace) -> dict[str, Any]:
    sentences, vocabulary = dev_utterances(max(args.count, args.fault_count, args.slow_count))
    reference = [understand_with_nlu([Hypothesis(text=s.text, score=0.0)], vocabulary) for s in sentences]
    defaults = DispatchConfig()
    outcomes: dict[str, Outcome] = {}
    with tempfile.TemporaryDirectory(prefix="eval-dispatch-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        (workdir / "broker").mkdir()
        host, port = stack.enter_context(private_broker(workdir / "broker", args.broker_nodelay == "on"))
        mqtt_config = MqttConfig(
            enabled=True, host=host, port=port, reconnect_min_s=0.05, reconnect_max_s=0.5, keepalive_s=10
        )
        edge_note = stack.enter_context(edge_service(mqtt_config, args.edge, workdir / "edge.log"))
        remote = "cloud" if edge_note else "auto"
        for scenario in scenarios(args.count, args.fault_count, args.slow_count, remote):
            print(
                f"eval-dispatch: {scenario.name} ({scenario.count} utterances)", file=sys.stderr, flush=True
            )
            outcomes[scenario.name] = run_scenario(
                scenario, sentences, vocabulary, reference, mqtt_config, workdir
            )
    baseline = outcomes["edge" if remote == "auto" else "local"]
    answered = {
        "in-process": outcomes["local"].results,
        "cloud": outcomes["cloud"].results,
        **({"edge": outcomes["edge"].results} if "edge" in outcomes else {}),
    }
    return {
        "command": "make eval-dispatch",
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": f"{platform.machine()}, {platform.python_implementation()} {platform.python_version()}",
        "input": (
            f"{len(sentences)} dev sentences from models/corpus/text.py generate_sentences(seed={DEV_SEED}) "
            f"with the evaluation-only names; no recognizer output: each N-best is the reference text alone "
            f"(score 0). Vocabulary: {len(vocabulary.devices)} devices, {len(vocabulary.areas)} areas, "
            f"{len(vocabulary.contacts)} contacts."
        ),
        "settings": (
            f"[dispatch] defaults: cloud_timeout_ms={defaults.cloud_timeout_ms}, "
            f"edge_timeout_ms={defaults.edge_timeout_ms}, breaker_failures={defaults.breaker_failures}, "
            f"breaker_cooldown_ms={defaults.breaker_cooldown_ms}; fault seed {FAULT_SEED}; "
            f"mosquitto set_tcp_nodelay {args.broker_nodelay}; "
            f"routes under faults: {remote} ({' → '.join(_chain(remote))})"
        ),
        "edge": edge_note,
        "scenarios": [summarise(outcome) for outcome in outcomes.values()],
        "route_agreement": route_agreement(answered),
        "edge_hardware": edge_hardware(outcomes["edge"].results) if "edge" in outcomes else None,
        "dead_cloud": dead_cloud_added_latency(outcomes["drop-100"], baseline),
    }


def _chain(mode: str) -> list[str]:
    from assistant.dispatch import ROUTES

    return list(ROUTES["auto" if mode == "auto" else "cloud"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "results")
    parser.add_argument(
        "--count", type=int, default=300, help="dev sentences for agreement and route latency"
    )
    parser.add_argument("--fault-count", type=int, default=100, help="utterances per drop-rate scenario")
    parser.add_argument("--slow-count", type=int, default=40, help="utterances with +500 ms cloud latency")
    parser.add_argument(
        "--edge", choices=("auto", "off"), default="auto", help="run the edge service if present"
    )
    parser.add_argument(
        "--broker-nodelay",
        choices=("on", "off"),
        default="on",
        help="mosquitto's set_tcp_nodelay (default off)",
    )
    args = parser.parse_args(argv)
    from assistant.logging import configure_logging

    configure_logging("warning")
    report = run(args)
    write_results(args.out, "dispatch", report, markdown(report))
    failed = [row["scenario"] for row in report["scenarios"] if not row["exactly_one_event_each"]]
    if failed or not report["dead_cloud"]["meets_target"]:
        print(f"eval-dispatch: FAILED checks: {failed or 'dead-cloud latency'}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
