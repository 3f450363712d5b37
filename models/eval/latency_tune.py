"""``make eval-latency-tune``: the sweep behind the ``[endpoint]`` defaults, on dev streams disjoint
from the ones ``make eval-latency`` reports.

It runs :mod:`models.eval.latency` on its ``tune`` subset (the ``--per-condition`` rows of each
condition *after* the report's) in two stages, because the two end-pointers answer different
questions:

1. **final end-pointer and the energy test** (final-only mode): ``speech_margin_db`` ×
   ``final_trailing_ms``. Pick: the lowest median latency among settings whose final end-point
   cuts at most ``MAX_FINAL_EARLY`` of the commands in two (half the 2 % target: room for the
   report set) and leaves at most ``MAX_OPEN_AT_END`` of them open through 1.5 s of trailing
   background (the noise the energy test is for).
2. **speculative end-pointer** (speculative + final, at the stage-1 pick):
   ``speculative_trailing_ms`` × ``complete_intent_trailing_ms``, the speculative one at least
   ``MIN_LEAD_MS`` before the final. Pick: among settings with at most ``RETRACTION_SLACK`` more
   streams with a retraction than the fewest in the stage, the lowest median latency of the
   commands answered with an intent (what the speculative path exists for), then the fewest
   retractions.

Writes ``<out>/latency_tune.json`` and ``<out>/latency_tune.md``; the chosen values are the
defaults of ``assistant.config.EndpointConfig`` (set by hand from this report, not read from it).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from models.eval.latency import argument_parser, run
from models.results import write_results

MARGINS_DB = (6.0, 9.0, 12.0)
FINAL_MS = (650, 750, 850)
SPECULATIVE_MS = (250, 300, 400)
COMPLETE_INTENT_MS = (100, 150)
TUNE_ROWS = 20
"""Rows per condition: 80 streams a setting keep the sweep inside half an hour on a shared core."""
MIN_LEAD_MS = 200
MAX_FINAL_EARLY = 0.01
MAX_OPEN_AT_END = 0.05
RETRACTION_SLACK = 0.05


def _row(settings: dict[str, Any], mode: dict[str, Any]) -> dict[str, Any]:
    """The figures of one run that the picks and the table use."""

    def median(key: str) -> float | None:
        value = mode[key]
        return value["median_ms"] if value.get("n") else None

    def p90(key: str) -> float | None:
        value = mode[key]
        return value["p90_ms"] if value.get("n") else None

    return {
        "settings": settings,
        "latency_median_ms": median("latency"),
        "latency_p90_ms": p90("latency"),
        "latency_intent_median_ms": median("latency_recognized"),
        "early_final": mode["early_cutoff"]["final"],
        "early_speculative": mode["early_cutoff"]["speculative"],
        "open_at_end": mode["closed_by_end_of_stream"],
        "retraction_rate": mode["retraction_rate"],
        "answered_speculatively": mode["answered_speculatively"],
        "wasted_dispatches": mode["wasted_dispatches"],
        "intent_accuracy": mode["intent_accuracy"],
    }


def _big(value: float | None) -> float:
    return float("inf") if value is None else value


def pick_final(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    safe = [r for r in rows if r["early_final"] <= MAX_FINAL_EARLY and r["open_at_end"] <= MAX_OPEN_AT_END]
    if not safe:  # nothing meets both: the fewest cut-offs
        return min(rows, key=lambda r: (r["early_final"], r["open_at_end"]))
    return min(safe, key=lambda r: (_big(r["latency_median_ms"]), r["early_final"]))


def pick_speculative(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    fewest = min(r["retraction_rate"] for r in rows)
    calm = [r for r in rows if r["retraction_rate"] <= fewest + RETRACTION_SLACK]
    return min(calm, key=lambda r: (_big(r["latency_intent_median_ms"]), r["retraction_rate"]))


def sweep(args: argparse.Namespace) -> dict[str, Any]:
    """Both stages on the ``tune`` streams of ``args``."""
    started = time.perf_counter()
    final_rows = []
    for margin, final in itertools.product(MARGINS_DB, FINAL_MS):
        settings = {"speech_margin_db": margin, "final_trailing_ms": final}
        report = run(args, endpoint=settings, modes=("final_only",))
        final_rows.append(_row(settings, report["modes"]["final_only"]))
        print(json.dumps(final_rows[-1]), file=sys.stderr)
    final_pick = pick_final(final_rows)["settings"]
    speculative_rows = []
    for speculative, complete in itertools.product(SPECULATIVE_MS, COMPLETE_INTENT_MS):
        if complete > speculative or speculative > final_pick["final_trailing_ms"] - MIN_LEAD_MS:
            continue
        settings = {
            **final_pick,
            "speculative_trailing_ms": speculative,
            "complete_intent_trailing_ms": complete,
        }
        report = run(args, endpoint=settings, modes=("speculative",))
        speculative_rows.append(_row(settings, report["modes"]["speculative"]))
        print(json.dumps(speculative_rows[-1]), file=sys.stderr)
    return {
        "subset": "tune",
        "corpus": report["corpus"],
        "streams": report["streams"],
        "model": report["model"],
        "max_final_early": MAX_FINAL_EARLY,
        "max_open_at_end": MAX_OPEN_AT_END,
        "retraction_slack": RETRACTION_SLACK,
        "min_lead_ms": MIN_LEAD_MS,
        "final_stage": final_rows,
        "speculative_stage": speculative_rows,
        "chosen": pick_speculative(speculative_rows)["settings"],
        "command": " ".join(["python -m models.eval.latency_tune", *args.argv]),
        "run_s": round(time.perf_counter() - started, 1),
    }


def markdown(report: dict[str, Any]) -> str:
    def ms(value: float | None) -> str:
        return "–" if value is None else f"{value:.0f}"

    def pct(value: float) -> str:
        return f"{100 * value:.1f} %"

    s = report["streams"]
    lines = [
        "# End-pointer tuning sweep (the `tune` streams, disjoint from the reported ones)",
        "",
        f"{s['count']} streams from `{report['corpus']['manifest']}` "
        f"({', '.join(f'{k}: {v}' for k, v in report['corpus']['conditions'].items())}): the dev rows "
        "after the ones `make eval-latency` reports, built the same way (one 300–600 ms pause, "
        f"{s['trailing_s']} s of trailing background). Recognizer: {report['model']['kind']}.",
        "",
        "## Stage 1: energy test and final end-pointer (final only)",
        "",
        "| margin (dB) | final (ms) | latency median / p90 | early final | command open at the end |",
        "|---|---|---|---|---|",
    ]
    for row in report["final_stage"]:
        st = row["settings"]
        lines.append(
            f"| {st['speech_margin_db']:g} | {st['final_trailing_ms']} | {ms(row['latency_median_ms'])} / "
            f"{ms(row['latency_p90_ms'])} | {pct(row['early_final'])} | {pct(row['open_at_end'])} |"
        )
    lines += [
        "",
        f"Pick: the lowest median latency with early final ≤ {pct(report['max_final_early'])} and "
        f"commands left open ≤ {pct(report['max_open_at_end'])}.",
        "",
        "## Stage 2: speculative end-pointer (speculative + final, at the stage-1 pick)",
        "",
        "| speculative (ms) | complete intent (ms) | latency median / p90 | intent answers, median "
        "| answered speculatively | streams with a retraction | wasted dispatches | early final |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in report["speculative_stage"]:
        st = row["settings"]
        lines.append(
            f"| {st['speculative_trailing_ms']} | {st['complete_intent_trailing_ms']} | "
            f"{ms(row['latency_median_ms'])} / {ms(row['latency_p90_ms'])} | "
            f"{ms(row['latency_intent_median_ms'])} | {pct(row['answered_speculatively'])} | "
            f"{pct(row['retraction_rate'])} | {row['wasted_dispatches']} | {pct(row['early_final'])} |"
        )
    chosen = ", ".join(f"`{k} = {v:g}`" for k, v in report["chosen"].items())
    lines += [
        "",
        f"Pick: at most {pct(report['retraction_slack'])} more streams with a retraction than the fewest "
        "here, then the lowest median latency of the commands answered with an intent, then the fewest "
        "retractions.",
        "",
        f"**Chosen** (the `[endpoint]` defaults): {chosen}.",
        "",
        f"`{report['command']}` · {report['run_s']} s",
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argument_parser(__doc__.split("\n")[0] if __doc__ else None)
    args = parser.parse_args(["--per-condition", str(TUNE_ROWS), *argv, "--subset", "tune"])
    args.argv = argv
    report = sweep(args)
    write_results(args.out, "latency_tune", report, markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
