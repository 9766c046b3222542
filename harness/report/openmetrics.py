"""The last run as metrics for Prometheus: ``--metrics-file PATH`` for node_exporter's textfile collector.

The text is OpenMetrics 1.0 (https://prometheus.io/docs/specs/om/open_metrics_spec/) kept within what the
Prometheus text format 0.0.4 reads too, because node_exporter's textfile collector parses only that older format
(prometheus/node_exporter#1988): it refuses the ``info`` and ``stateset`` types and skips a whole file that carries
client-side timestamps. So the run's facts are one gauge of value 1, ``harness_run_info`` (the convention of
Prometheus' own ``prometheus_build_info``), the run's time is a gauge, ``harness_run_timestamp_seconds``, and each
case's verdict is a 0/1 gauge per verdict word; ``# UNIT`` and ``# EOF`` are comments to the older parser.

Conventions (https://prometheus.io/docs/practices/naming/): a ``harness_`` prefix, base units in the names (a
latency in ms becomes ``harness_latency_median_seconds``, throughput ``harness_throughput_samples_per_second``, an
engine ``harness_engine_bytes``), and per case only the labels that tell cases apart (suite, case, model,
precision, batch, backend, gpu); the commit and the versions of harness, backend, TensorRT, driver and CUDA are
labels of ``harness_run_info`` alone, joined in a query when wanted, so a new commit does not start a new series
of every metric. A metric whose value is NaN is written as ``NaN`` (valid in both formats), a metric a case did not
measure is left out.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from harness.core.errors import OutputError, output_error
from harness.core.fsio import atomic_write_text, writable_dir_problem
from harness.core.metrics import METRICS
from harness.core.results import CaseResult, RunResults
from harness.view.verdicts import BAD_LABELS, LABELS, label_of

PREFIX = "harness_"
CASE_LABELS = ("suite", "case", "model", "precision", "batch", "backend", "gpu")
TENSORRT_BACKENDS = frozenset({"tensorrt", "trtexec"})  # backends whose version is the TensorRT version

# A metric's unit (harness.core.metrics) -> the name's ending there, the base unit here and the factor to it.
BASE_UNITS: dict[str, tuple[str, str, float]] = {
    "ms": ("_ms", "seconds", 1e-3),
    "samples/s": ("_sps", "samples_per_second", 1.0),
    "bytes": ("_bytes", "bytes", 1.0),
}


@dataclass
class Family:
    """One metric family: its HELP and TYPE lines (always ``gauge``), its UNIT when it has one, and its samples."""

    name: str
    help: str
    unit: str = ""
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)

    def lines(self) -> Iterator[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} gauge"
        if self.unit:
            yield f"# UNIT {self.name} {self.unit}"
        for labels, value in self.samples:
            yield f"{self.name}{format_labels(labels)} {format_number(value)}"


def metric_name(metric: str) -> str | None:
    """The family a metric of :data:`harness.core.metrics.METRICS` is written as, in its base unit
    (``latency_median_ms`` -> ``harness_latency_median_seconds``); None for a metric of no known unit."""
    known = METRICS.get(metric)
    if known is None or known.unit not in BASE_UNITS:
        return None
    ending, unit, _ = BASE_UNITS[known.unit]
    return f"{PREFIX}{metric.removesuffix(ending)}_{unit}"


def family_names() -> list[str]:
    """Every family this module can write (what a dashboard may query), in the order of the file."""
    return [family.name for family in families(RunResults(environment={}))]


def families(results: RunResults) -> list[Family]:
    """Every family, those without a sample included: the run's facts, each metric of the cases, their verdicts."""
    env = results.environment
    return [*_run_families(results), *_measured_families(results.cases, env), *_case_families(results.cases, env)]


def render_openmetrics(results: RunResults) -> str:
    """The text of the metrics file for ``results``: the families that have samples, then ``# EOF``."""
    lines = [line for family in families(results) if family.samples for line in family.lines()]
    return "\n".join([*lines, "# EOF"]) + "\n"


def check_metrics_file(path: str | os.PathLike[str]) -> None:
    """Refuse, before anything is measured, a ``--metrics-file`` that is a folder or lies in a folder that cannot
    be written: an :class:`OutputError` of one line saying what to do."""
    target = Path(path)
    if target.is_dir():
        raise OutputError(
            f"--metrics-file {target}: is a folder; give a file name such as {target / 'harness.prom'} "
            "(node_exporter's textfile collector reads *.prom files)"
        )
    problem = writable_dir_problem(target.parent)
    if problem:
        raise OutputError(f"--metrics-file {target}: {target.parent} {problem}; give a path in a writable folder")


def write_metrics_file(results: RunResults, path: str | os.PathLike[str]) -> Path:
    """Write :func:`render_openmetrics` to ``path`` atomically (node_exporter never reads half a file); a path that
    cannot be written is an :class:`OutputError` of one line."""
    target = Path(path)
    check_metrics_file(target)
    try:
        atomic_write_text(target, render_openmetrics(results))
    except OSError as exc:
        raise output_error(exc, target, "--metrics-file") from None
    return target


# -- the families ----------------------------------------------------------------------------------------------------
def _run_families(results: RunResults) -> list[Family]:
    env = results.environment
    info = Family("harness_run_info", "Facts of the run: commit, baseline key and versions; the value is always 1.")
    info.samples.append((run_info_labels(env), 1.0))
    stamp = Family("harness_run_timestamp_seconds", "When the run started, in seconds since the Unix epoch.", "seconds")
    started = _epoch_seconds(env.get("date"))
    if started is not None:
        stamp.samples.append(({}, started))
    labels = [label_of(case) for case in results.cases]
    # failing as the reports say it (ReportView.failing): a bad verdict, or a case pytest failed or that errored
    failing = set(labels) & BAD_LABELS or any(c.status in ("failed", "error") for c in results.cases)
    verdict = Family("harness_run_failing", "1 when the run failed its gate (a regression or a failed case), else 0.")
    verdict.samples.append(({}, float(bool(failing))))
    counts = Family("harness_run_cases", "Cases of the run by verdict.")
    counts.samples += [({"verdict": label}, float(labels.count(label))) for label in LABELS]
    return [info, stamp, verdict, counts]


def run_info_labels(env: dict[str, Any]) -> dict[str, str]:
    """The labels of ``harness_run_info``: commit, branch, baseline key, the versions of harness, backend,
    TensorRT, GPU driver and CUDA (driver API), and the GPU; "" where the run did not record one."""
    backend = _mapping(env.get("backend"))
    commit = _mapping(env.get("commit"))
    gpu = _first_gpu(env)
    backend_name, backend_version = _text(backend.get("name")), _text(backend.get("version"))
    return {
        "commit": _text(commit.get("id")),
        "branch": _text(commit.get("branch")),
        "dirty": "true" if commit.get("dirty") else "false",
        "key": _text(env.get("key")),
        "harness_version": _text(env.get("harness_version")),
        "backend": backend_name,
        "backend_version": backend_version,
        "tensorrt": backend_version if backend_name in TENSORRT_BACKENDS else _text(env.get("tensorrt")),
        "driver": _text(gpu.get("driver")),
        "cuda": _text(gpu.get("cuda_driver")),
        "gpu": _text(gpu.get("name")) if env.get("uses_gpu") else "",
    }


def _measured_families(cases: list[CaseResult], env: dict[str, Any]) -> list[Family]:
    out = []
    for metric, known in METRICS.items():
        name = metric_name(metric)
        if name is None:
            continue
        _, unit, factor = BASE_UNITS[known.unit]
        family = Family(name, f"{known.label.capitalize()} of the case ({unit.replace('_', ' ')}).", unit)
        for case in cases:
            value = case.metrics.get(metric)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                family.samples.append((case_labels(case, env), float(value) * factor))
        out.append(family)
    return out


def _case_families(cases: list[CaseResult], env: dict[str, Any]) -> list[Family]:
    change = Family(
        "harness_case_change_ratio",
        "Relative change of a gated metric against its baseline (0.05 is 5 percent higher), by metric family.",
        "ratio",
    )
    regressed = Family("harness_case_regressed", "1 when the gate found the case regressed, else 0.")
    verdict = Family("harness_case_verdict", "1 for the verdict word the reports show for the case, 0 for the others.")
    duration = Family("harness_case_duration_seconds", "Wall time the case took, its build included.", "seconds")
    for case in cases:
        labels = case_labels(case, env)
        for comparison in case.comparisons:
            name = metric_name(str(comparison.get("metric"))) if isinstance(comparison, dict) else None
            value = comparison.get("change") if name else None
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                change.samples.append((labels | {"metric": str(name)}, float(value)))
        word = label_of(case)
        regressed.samples.append((labels, float(word == "regressed")))
        verdict.samples += [(labels | {"verdict": label}, float(label == word)) for label in LABELS]
        if isinstance(case.duration_s, (int, float)):
            duration.samples.append((labels, float(case.duration_s)))
    return [change, regressed, verdict, duration]


def case_labels(case: CaseResult, env: dict[str, Any]) -> dict[str, str]:
    """The labels that tell one case's series from another's (:data:`CASE_LABELS`)."""
    params = case.params
    backend = _mapping(params.get("backend")).get("name") or _mapping(env.get("backend")).get("name")
    return {
        "suite": _text(params.get("suite")),
        "case": case.id,
        "model": _text(params.get("model")),
        "precision": _text(params.get("precision")),
        "batch": _text(params.get("batch_size")),
        "backend": _text(backend),
        "gpu": _text(_first_gpu(env).get("name")) if env.get("uses_gpu") else "",
    }


# -- the text --------------------------------------------------------------------------------------------------------
def format_labels(labels: dict[str, str]) -> str:
    """``{case="a",batch="1"}`` with each value escaped as both formats require (backslash, quote, newline)."""
    if not labels:
        return ""
    return "{" + ",".join(f'{key}="{escape_label_value(value)}"' for key, value in labels.items()) + "}"


def escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def format_number(value: float) -> str:
    """``NaN``, ``+Inf``, ``-Inf``, whole numbers without a point, else Python's shortest round-trip form."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


def _epoch_seconds(date: Any) -> float | None:
    """An ISO 8601 time with its offset (``2026-01-01T00:00:00+00:00``) in seconds since the epoch; None when the
    results hold none or it names no time zone (a local time would shift by the machine's offset)."""
    try:
        moment = datetime.fromisoformat(str(date))
    except ValueError:
        return None
    return moment.timestamp() if moment.tzinfo is not None else None


def _first_gpu(env: dict[str, Any]) -> dict[str, Any]:
    gpus = env.get("gpus")
    return gpus[0] if isinstance(gpus, list) and gpus and isinstance(gpus[0], dict) else {}


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str:
    return "" if value is None else str(value)
