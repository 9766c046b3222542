"""The record of one measured trial: every iteration's host latency, the backend's own per-iteration timings, and
what the machine was doing meanwhile; with trtexec's warnings derived from them.

It lives in core because both sides use it: the timed loop (harness.measure.loop) fills it, and a backend whose tool
times its own loop (trtexec) returns one directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.core.stats import summarize

CV_WARN = 0.025  # trtexec warns when the coefficient of variation exceeds 2.5 %
ENQUEUE_BOUND = 0.8  # trtexec: enqueue-bound when the median enqueue time exceeds 80 % of the median GPU compute


@dataclass
class Measurement:
    batch_size: int
    latency_ms: list[float]  # host latency of every measured iteration
    wall_ms: float  # wall time of the measured loop
    warmup_iterations: int
    warmup_ms: float
    extra_ms: dict[str, list[float]] = field(default_factory=dict)  # backend timings per iteration
    telemetry: dict[str, Any] = field(default_factory=dict)  # harness.machine.telemetry record of the measured loop
    stopped_early: bool = False  # max_duration_ms hit before min_duration_ms
    # Process CPU time (all threads) of the measured loop, ms. On a CPU backend, cpu_ms / wall_ms below its usual
    # value means the OS gave the CPU to someone else and the latencies include that wait (harness.judge.gate).
    cpu_ms: float | None = None
    # Busy CPU time of the whole host (all processes, all cores) during the measured loop, ms, from /proc/stat
    # (Linux; None elsewhere): minus cpu_ms, what neighbours used, which slows us through shared caches and memory.
    host_busy_ms: float | None = None
    # harness.measure.probe reading taken around the trial on CPU backends, ms: how fast the runner itself was just
    # then.
    probe_ms: float | None = None

    @property
    def cpu_share(self) -> float | None:
        """Process CPU time / wall time of the measured loop (None when not recorded)."""
        return self.cpu_ms / self.wall_ms if self.cpu_ms is not None and self.wall_ms > 0 else None

    @property
    def iterations(self) -> int:
        return len(self.latency_ms)

    @property
    def throughput_sps(self) -> float:
        """Samples per second over the measured loop."""
        return self.batch_size * self.iterations / (self.wall_ms / 1e3)

    def warnings(self) -> list[str]:
        out = []
        cv = summarize(self.latency_ms)["cv"]
        if cv > CV_WARN:
            out.append(
                f"latency CV {cv:.1%} exceeds {CV_WARN:.1%}: the machine is noisy or the case too short; "
                "results may be unstable"
            )
        out.extend(self.telemetry.get("flags", []))  # throttling or a clock drop seen by NVML
        out.extend(self._bound_warnings())
        if self.stopped_early:
            out.append("stopped at max_duration_ms before min_duration_ms: too few samples for stable statistics")
        return out

    def _bound_warnings(self) -> list[str]:
        """trtexec's hints, from the backend's own timings: enqueue-bound (median enqueue time above 80% of the
        median GPU compute time) and transfer-bound (median H2D or D2H copy at least as long as the compute)."""
        compute = self.extra_ms.get("gpu_compute_ms")
        if not compute:
            return []
        gpu = summarize(compute)["median"]
        out = []
        enqueue = self.extra_ms.get("enqueue_ms")
        if enqueue and summarize(enqueue)["median"] > ENQUEUE_BOUND * gpu:
            out.append(
                f"enqueue-bound: the median enqueue time is over {ENQUEUE_BOUND:.0%} of the median GPU compute "
                "time; the GPU may be under-used (CUDA graphs usually help)"
            )
        for name, what in (("h2d_ms", "host-to-device"), ("d2h_ms", "device-to-host")):
            copies = self.extra_ms.get(name)
            if copies and summarize(copies)["median"] >= gpu:
                out.append(
                    f"transfer-bound: the median {what} copy takes at least the median GPU compute time; "
                    "measure without transfers to see the engine alone"
                )
        return out
