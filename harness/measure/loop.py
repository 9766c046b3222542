"""The timed loop, trtexec style: warm up by time, then run until a minimum duration AND a minimum iteration count
are both reached, keeping every per-iteration sample.

Host latency is measured here with ``perf_counter_ns`` around :meth:`Runner.step`; a GPU backend adds its own
per-iteration timings (CUDA-event GPU compute time, enqueue time) through the dict that ``step`` returns.
Throughput is samples per second: batch size x iterations / wall time of the measured loop.
"""

from __future__ import annotations

import os
import time

from harness.backends.base import Runner
from harness.core.measurement import Measurement
from harness.machine.telemetry import Sampler
from harness.suite.schema import MeasureSpec


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
