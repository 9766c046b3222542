"""The timed loop, trtexec style: warm up by time, then run until a minimum duration AND a minimum iteration count
are both reached, keeping every per-iteration sample.

Host latency is measured here with ``perf_counter_ns`` around :meth:`Runner.step`; a GPU backend adds its own
per-iteration timings (CUDA-event GPU compute time, enqueue time) through the dict that ``step`` returns.
Throughput is samples per second: batch size x iterations / wall time of the measured loop.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from harness.backends.base import Runner
from harness.core.stats import summarize
from harness.machine.telemetry import Sampler
from harness.suite.schema import MeasureSpec

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


def measure(runner: Runner, spec: MeasureSpec, batch_size: int, uses_gpu: bool = False) -> Measurement:
    """Warm up for ``spec.warmup_ms``, then time iterations until both minimums are met (or ``max_duration_ms``).

    GPU telemetry is sampled during the measured loop (see harness.machine.telemetry); ``uses_gpu`` says whether a clock
    drop or throttling there concerns this runner (a CPU backend leaves the GPU idle, and idle clocks drop).
    """
    clock = time.perf_counter_ns
    warm_start = clock()
    warm_end = warm_start + int(spec.warmup_ms * 1e6)
    warm_iterations = 0
    while True:
        runner.step()
        warm_iterations += 1
        if clock() >= warm_end:
            break
    warmup_ms = (clock() - warm_start) / 1e6

    latencies: list[float] = []
    extra: dict[str, list[float]] = {}
    min_ns = int(spec.min_duration_ms * 1e6)
    max_ns = int(spec.max_duration_ms * 1e6)
    stopped_early = False
    sampler = Sampler().start()
    try:
        loop_start, cpu_start, host_start = clock(), time.process_time_ns(), host_busy_ms()
        while True:
            t0 = clock()
            timings = runner.step()
            t1 = clock()
            latencies.append((t1 - t0) / 1e6)
            if timings:
                for name, value in timings.items():
                    extra.setdefault(name, []).append(value)
            elapsed = t1 - loop_start
            if len(latencies) >= spec.min_iterations and elapsed >= min_ns:
                break
            if len(latencies) >= spec.min_iterations and elapsed >= max_ns:
                stopped_early = True
                break
        wall_ms = (clock() - loop_start) / 1e6
        cpu_ms = (time.process_time_ns() - cpu_start) / 1e6
        host_end = host_busy_ms()
        host_ms = host_end - host_start if host_start is not None and host_end is not None else None
    finally:  # an exception or Ctrl-C must not leave the sampler thread running
        sampler.stop()
    return Measurement(
        batch_size=batch_size,
        latency_ms=latencies,
        wall_ms=wall_ms,
        warmup_iterations=warm_iterations,
        warmup_ms=warmup_ms,
        extra_ms=extra,
        stopped_early=stopped_early,
        telemetry=sampler.summary(uses_gpu),
        cpu_ms=cpu_ms,
        host_busy_ms=host_ms,
    )


def host_busy_ms() -> float | None:
    """Busy CPU time of all cores since boot, ms (user, nice, system, irq, softirq, steal from /proc/stat)."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            fields = handle.readline().split()
        values = [int(v) for v in fields[1:9]]
        tick = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None
    busy = sum(values) - values[3] - values[4]  # all but idle and iowait
    return busy * 1000.0 / tick
