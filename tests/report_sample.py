"""Synthetic result records of every kind (regressed, improved, unchanged, new, failed, skipped), for the report's
tests, its speed benchmark and for previewing a report without running a suite.

The numbers follow a simple latency model (fixed cost + per-sample cost, faster at lower precision) with seeded
log-normal noise, so the plots look like real runs. Nothing here measures anything.
"""

from __future__ import annotations

from typing import Any

from harness.core.results import CaseResult, RunResults
from harness.core.stats import compact_quantiles, summarize
from harness.judge.gate import judge

PRECISION_SPEED = {"fp32": 1.0, "fp16": 0.55, "bf16": 0.58, "int8": 0.36, "fp8": 0.33}


def sample_environment() -> dict[str, Any]:
    return {
        "backend": {"name": "tensorrt", "version": "10.13.0", "settings": {"cuda_graphs": True}},
        "cpu": {"model": "AMD EPYC 9454", "count": 16, "arch": "x86_64"},
        "gpus": [
            {
                "index": 0,
                "name": "NVIDIA H100 80GB HBM3",
                "driver": "580.65.06",
                "cuda_driver": "13.0",
                "compute_capability": "9.0",
                "memory_bytes": 85520809984,
            }
        ],
        "uses_gpu": True,
        "os": "Linux-6.8.0-x86_64-with-glibc2.39",
        "python": "3.12.3",
        "harness_version": "0.1.0",
        "commit": {"id": "0123456789abcdef0123456789abcdef01234567", "branch": "main", "dirty": False},
        "hostname": "gpu-runner-1",
        "date": "2026-01-01T00:00:00+00:00",
        "key": "gpu-h100-80gb-hbm3__tensorrt-10.13.0",
    }


def sample_results(
    n_cases: int = 24,
    models: list[str] | None = None,
    samples_per_case: int = 400,
    seed: int = 0,
    batches: list[int] | None = None,
) -> RunResults:
    """``n_cases`` records over ``models`` x precisions x batch sizes, with a mix of every verdict."""
    import numpy as np

    rng = np.random.default_rng(seed)
    models = models or ["resnet50", "squeezenet", "<script>alert(1)</script>"]
    batches = batches or [1, 8, 32]
    # Round robin over the models, so a few cases already give every model a curve per precision.
    per_model = [[(m, p, b) for p in PRECISION_SPEED for b in batches] for m in models]
    combos = [combo for i in range(len(per_model[0])) for combo in (group[i] for group in per_model)]
    # Eleven kinds: a period coprime with the model, precision and batch counts, so every verdict meets every
    # model, precision and batch size.
    kinds = (
        "regressed",
        "unchanged",
        "improved",
        "unchanged",
        "new",
        "ambiguous",
        "unchanged",
        "error",
        "unchanged",
        "skipped",
        "unchanged",
    )
    results = RunResults(environment=sample_environment(), suites={"synthetic": "benchmarks/suites/synthetic.yaml"})
    for index in range(n_cases):
        model, precision, batch = combos[index % len(combos)]
        round_ = index // len(combos)
        case_id = f"{model}-{precision}-b{batch}" + (f"-r{round_}" if round_ else "")
        params = {
            "suite": "synthetic",
            "model": model,
            "precision": precision,
            "batch_size": batch,
            "shape": None,
            "dims": {"batch": batch},
            "backend": {"name": "tensorrt", "settings": {"cuda_graphs": True}},
        }
        case = CaseResult(id=case_id, params=params)
        kind = kinds[index % len(kinds)]
        if kind == "skipped":
            case.status, case.message = "skipped", f"{case_id}: the model pins batch 1; batch {batch} cannot run"
            results.add(case)
            continue
        if kind == "error":
            case.status = "error"
            case.message = f"{case_id}: RuntimeError: engine build failed: <Myelin> tactic & 'fusion' | failed"
            results.add(case)
            continue
        size = 1 + models.index(model)
        base_ms = (0.4 + 0.11 * batch) * size * PRECISION_SPEED[precision]
        latency = base_ms * rng.lognormal(0.0, 0.05, samples_per_case)
        baseline_latency = base_ms * rng.lognormal(0.0, 0.05, samples_per_case)
        if kind == "regressed":
            latency = latency * 1.25
        elif kind == "improved":
            latency = latency * 0.78
        elif kind == "ambiguous":
            latency = latency * 1.15
        stats = summarize(latency)
        throughput = batch * 1e3 / float(np.mean(latency))
        case.samples["latency_ms"] = [round(float(v), 6) for v in latency]
        case.stats["latency_ms"] = stats
        case.metrics = {
            "latency_median_ms": stats["median"],
            "latency_mean_ms": stats["mean"],
            "latency_p90_ms": stats["p90"],
            "latency_p95_ms": stats["p95"],
            "latency_p99_ms": stats["p99"],
            "throughput_sps": throughput,
            "build_time_ms": 2500.0 * size,
            "engine_bytes": float(25_000_000 * size * PRECISION_SPEED[precision]),
        }
        case.build = {"build_time_ms": 2500.0 * size, "engine_bytes": int(25e6 * size), "cache_hit": index % 3 == 0}
        case.measure = {"iterations": samples_per_case, "wall_ms": float(np.sum(latency))}
        if precision != "fp32":
            case.accuracy = {
                "passed": precision != "fp8" or batch < 64,
                "outputs": {
                    "logits": {
                        "max_abs_error": 0.002 * (1 / PRECISION_SPEED[precision]),
                        "max_rel_error": 0.01,
                        "cosine": 0.9999 if precision != "fp8" else 0.991,
                        "top1_agreement": 1.0 if precision != "fp8" else 0.97,
                    }
                },
            }
        if kind != "new":
            base_stats = summarize(baseline_latency)
            base_metrics = {
                "latency_median_ms": base_stats["median"],
                "throughput_sps": batch * 1e3 / float(np.mean(baseline_latency)),
            }
            case.baseline = {
                "metrics": base_metrics,
                "stats": {"latency_ms": base_stats},
                "latency_quantiles_ms": compact_quantiles(baseline_latency),
                "recorded": {"date": "2025-12-24T00:00:00+00:00", "commit": "fedcba9876543210"},
            }
            # Five trials a side (one for "ambiguous": too few to tell from noise), as harness.measure.trials records
            # them.
            n_trials = 1 if kind == "ambiguous" else 5
            trials = _trials(latency, batch, n_trials)
            base_trials = _trials(baseline_latency, batch, n_trials)
            case.trials = trials
            verdict = judge(
                case_id, case.metrics, base_metrics, {"default": 0.10}, trials=trials, baseline_trials=base_trials
            )
            case.comparisons = [c.to_dict() for c in verdict.comparisons]
            case.verdict, case.message = verdict.verdict, verdict.message
            if verdict.failed:
                case.status = "failed"
        else:
            case.verdict = "new"
            case.message = f"{case_id}: no baseline yet; run with --update-baselines to record one"
        throttled = index % 13 == 6
        case.telemetry = {
            "status": "ok",
            "samples": 40,
            "sm_clock_mhz": {"min": 1650.0 if throttled else 1965.0, "median": 1980.0, "max": 1980.0},
            "clock_event_reasons": ["hw_slowdown"] if throttled else [],
            "throttled": throttled,
            "flagged": throttled,
            "flags": ["clock throttling seen by NVML: hw_slowdown"] if throttled else [],
        }
        if throttled:
            case.warnings.append("clock throttling seen by NVML: hw_slowdown")
        if index % 11 == 0:
            case.warnings.append("latency CV 3.1% exceeds 2.5%: the machine is noisy or the case too short")
        results.add(case)
    return results


def _trials(latency_ms: Any, batch: int, n: int) -> dict[str, list[float]]:
    """Per-trial gated metrics from consecutive chunks of the samples (median latency, throughput)."""
    import numpy as np

    chunks = np.array_split(np.asarray(latency_ms, dtype=float), n)
    return {
        "latency_median_ms": [float(np.median(c)) for c in chunks],
        "throughput_sps": [batch * 1e3 / float(np.mean(c)) for c in chunks],
    }
