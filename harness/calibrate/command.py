"""``harness calibrate``: how often the gate cries wolf, and how often it catches a real slowdown, on this runner.

It simulates CI runs. Each run is a separate process, as CI runs are (``--runs``, default 8; ``--in-process``
measures them all in one process, which is faster; a child process is this command with ``--worker-out``) and
measures every selected case unmodified, as an identical twin and slowed down by each injected factor
(:mod:`harness.calibrate.measuring`). The saved trials are then judged as CI would judge them, against a baseline and
as interleaved A/B jobs, by the gate and by the naive rule (:mod:`harness.calibrate.evaluating`), and printed with the
targets and one verdict line per mode (:mod:`harness.calibrate.rendering`). ``--json`` saves the figures and every
trial, and after each run of one process the trials so far, so a calibration cut off keeps them; ``--from-json``
judges saved trials again (e.g. at another ``--tolerance``, or those of a calibration cut off) without measuring.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness.calibrate.evaluating import CONFIRM_IN, evaluate_measured
from harness.calibrate.measuring import Plan, measure_runs
from harness.calibrate.rendering import render
from harness.core.errors import HarnessError
from harness.core.fsio import write_json
from harness.judge.gate import ALPHA
from harness.pytest_plugin.options import parse_option
from harness.run.config import RunConfig
from harness.run.fresh import baseline_processes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("suites", nargs="*", help="suite YAML files (none with --from-json)")
    parser.add_argument("--cases", action="append", default=[], metavar="GLOB", help="case ids to use (repeatable)")
    parser.add_argument(
        "--runs",
        type=int,
        default=8,
        help="simulated CI runs, each a separate process measuring every condition (default 8)",
    )
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="measure every run in this process (faster; blind to what differs between processes)",
    )
    parser.add_argument(
        "--factors", default="1.05,1.10", help="injected slowdowns, comma-separated (default 1.05,1.10)"
    )
    parser.add_argument(
        "--tolerance",
        default="3%",
        help="the gate's tolerance in this calibration (default 3%%; the suites' own tolerances are not used, since "
        "a 10%% tolerance cannot catch +5%%)",
    )
    parser.add_argument("--alpha", type=float, default=ALPHA, help=f"the gate's test level (default {ALPHA})")
    parser.add_argument("--trials", type=int, default=None, help="trials per gate run (default: the suite's)")
    parser.add_argument("--no-confirm", action="store_true", help="calibrate the gate without confirmation")
    parser.add_argument(
        "--confirm-in",
        choices=CONFIRM_IN,
        default=CONFIRM_IN[0],
        help="where a case that looks regressed is measured again: auto (default: as the gate does it, a new "
        "process on GPU backends, the same process otherwise), same-process (right after its trials) or "
        "fresh-process (the next simulated run's confirmation, as the gate's new process sees it)",
    )
    parser.add_argument(
        "--baseline-processes",
        type=int,
        default=None,
        metavar="N",
        help="runs a simulated baseline pools, as pytest --update-baselines --baseline-processes N records it "
        "(default: as the gate does, 3 on GPU backends, 1 otherwise)",
    )
    parser.add_argument(
        "--interleave",
        action="store_true",
        default=None,
        help="lay the trials out round by round across every case and condition, as pytest does on CPU backends "
        "(the default there) and with --interleave",
    )
    parser.add_argument(
        "--no-interleave",
        action="store_false",
        dest="interleave",
        help="lay a case's trials out back to back, as pytest does on GPU backends (the default there) and with "
        "--no-interleave",
    )
    parser.add_argument("--warmup-ms", type=float, default=None)
    parser.add_argument("--min-duration-ms", type=float, default=None)
    parser.add_argument("--min-iterations", type=int, default=None)
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--backend-option", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--cache-dir", default=".harness-cache", help="prepared models and engines")
    parser.add_argument("--json", metavar="PATH", help="also write the figures and every trial's samples as JSON")
    parser.add_argument(
        "--from-json",
        metavar="PATH",
        help="measure nothing: re-evaluate the trials saved by an earlier --json (e.g. with another --tolerance)",
    )
    parser.add_argument("--worker-out", metavar="PATH", help=argparse.SUPPRESS)  # one run, in a child process


def _percent(text: str) -> float:
    value = text.strip()
    try:
        return float(value[:-1]) / 100 if value.endswith("%") else float(value)
    except ValueError:
        raise HarnessError(f"--tolerance {text}: expected a percentage such as 3%") from None


def run(args: argparse.Namespace) -> int:
    factors = _factors(args.factors)
    tolerance = _percent(args.tolerance)
    if args.baseline_processes is not None and args.baseline_processes < 1:
        raise HarnessError(f"--baseline-processes {args.baseline_processes}: give 1 or more")
    if args.from_json:
        return _reevaluate(args, tolerance)
    if not args.suites:
        raise HarnessError("give the suite files to measure, e.g. benchmarks/suites/zoo-cpu.yaml")
    if not 0 < args.alpha < 0.5:
        raise HarnessError(f"--alpha {args.alpha}: give a level between 0 and 0.5, e.g. 0.05")
    if args.worker_out:
        measured = measure_runs(_plan(args), factors, runs=1)
        write_json(args.worker_out, measured)
        return 0
    if args.runs < 3:
        raise HarnessError(f"--runs {args.runs}: give at least 3 runs (12 or more for useful rates)")
    started = time.perf_counter()
    if args.in_process:
        measured = measure_runs(_plan(args), factors, runs=args.runs, progress=True)
    else:
        measured = _measure_in_processes(args)
    elapsed = time.perf_counter() - started
    report = evaluate_measured(
        measured, factors, tolerance, args.alpha, not args.no_confirm, args.trials, args.confirm_in,
        _baseline_processes(args, measured),
    )  # fmt: skip
    report["elapsed_s"] = elapsed
    report["settings"]["runs_in"] = "one process" if args.in_process else "one process per run"
    for line in render(report, factors):
        print(line)
    if args.json:
        write_json(args.json, {**report, "trials": measured["trials"], "ab": measured.get("ab", {})})
    return 0


def _plan(args: argparse.Namespace) -> Plan:
    overrides = {
        k: v
        for k, v in (
            ("warmup_ms", args.warmup_ms),
            ("min_duration_ms", args.min_duration_ms),
            ("min_iterations", args.min_iterations),
            ("trials", args.trials),
        )
        if v is not None
    }
    return Plan(
        suites=tuple(args.suites),
        cases=tuple(args.cases),
        backend=args.backend,
        backend_options=dict(parse_option(o) for o in args.backend_option),
        cache_dir=Path(args.cache_dir),
        measure_overrides=overrides,
        interleave=args.interleave,
    )


def _measure_in_processes(args: argparse.Namespace) -> dict[str, Any]:
    """One child process per run (``harness calibrate --worker-out``), as CI runs are: whatever differs from one
    process to the next (allocations, placement in memory) differs between the simulated runs too."""
    forwarded = [*args.suites, "--factors", args.factors, "--backend", args.backend, "--cache-dir", args.cache_dir]
    for name in ("cases", "backend_option"):
        for value in getattr(args, name):
            forwarded += [f"--{name.replace('_', '-')}", value]
    for name in ("trials", "warmup_ms", "min_duration_ms", "min_iterations"):
        if getattr(args, name) is not None:
            forwarded += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    if args.interleave is not None:
        forwarded.append("--interleave" if args.interleave else "--no-interleave")
    merged: dict[str, Any] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="harness-calibrate-") as tmp:
        for i in range(args.runs):
            out = Path(tmp) / f"run{i}.json"
            command = [sys.executable, "-m", "harness.cli", "calibrate", *forwarded, "--worker-out", str(out)]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).strip().splitlines()
                runs = "the 1 run measured is" if i == 1 else f"the {i} runs measured are"
                kept = f"; {runs} in {args.json} (--from-json evaluates them)" if i and args.json else ""
                raise HarnessError(f"calibration run {i + 1} failed: {tail[-1] if tail else done.returncode}{kept}")
            data = json.loads(out.read_text(encoding="utf-8"))
            if not merged:
                merged = data
            else:
                for key, value in data["trials"].items():
                    merged["trials"][key]["trials"] += value["trials"]
                for key, value in data["ab"].items():
                    for side in ("reference", "candidate"):
                        merged["ab"][key][side] += value[side]
            elapsed = time.perf_counter() - started
            if args.json:  # a calibration cut off (a CI job's time limit, Ctrl-C, a failed run) keeps what it measured
                write_json(
                    args.json, {**merged, "partial": {"runs_done": i + 1, "runs": args.runs}, "elapsed_s": elapsed}
                )
            print(f"  run {i + 1}/{args.runs} ({elapsed:.0f} s)", flush=True)
    return merged


def _reevaluate(args: argparse.Namespace, tolerance: float) -> int:
    try:
        saved = json.loads(Path(args.from_json).read_text(encoding="utf-8"))
        labels = {key.rsplit("@", 1)[1] for key in saved["trials"]}
        factors = tuple(sorted(float(label) for label in labels if label not in ("1.0", "twin")))
        report = evaluate_measured(
            saved, factors, tolerance, args.alpha, not args.no_confirm, args.trials, args.confirm_in,
            _baseline_processes(args, saved),
        )  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise HarnessError(f"--from-json {args.from_json}: not a calibration file written by --json ({exc})") from None
    report["elapsed_s"] = saved.get("elapsed_s", 0.0)
    partial = saved.get("partial")
    if isinstance(partial, dict):
        print(f"from {partial.get('runs_done')} of {partial.get('runs')} runs: the calibration stopped before the rest")
    for line in render(report, factors):
        print(line)
    return 0


def _baseline_processes(args: argparse.Namespace, measured: dict[str, Any]) -> int:
    """How many runs a simulated baseline pools: --baseline-processes, else as the gate records baselines for the
    calibrated backend (harness.run.fresh.baseline_processes)."""
    config = RunConfig(baseline_processes=args.baseline_processes)
    return baseline_processes(config, bool(measured.get("settings", {}).get("uses_gpu")))


def _factors(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise HarnessError(f"--factors {text}: expected comma-separated factors such as 1.05,1.10") from None
    if not values or any(v <= 1.0 for v in values):
        raise HarnessError(f"--factors {text}: every factor must be above 1.0, e.g. 1.05 for +5%")
    return values
