"""GPU telemetry during measurement: an NVML (nvidia-ml-py) sampler thread, summarised per case.

While a case's timed loop runs, a background thread reads every ``interval_ms`` (default 50 ms, plus one reading
at the start and one at the end): SM and memory clocks (MHz), GPU and memory-controller utilisation (%), memory used
(bytes), power (W), temperature (C) and the clock-event ("throttle") reasons bit mask. :meth:`Sampler.summary`
turns the readings into the ``telemetry`` record of the case, and flags the case when

- a throttle reason was seen (software power cap, hardware slowdown, thermal slowdown, power brake), or
- the SM clock dropped during the loop: its lowest reading is more than ``CLOCK_DROP`` below its median.

A flagged case's numbers were taken on a GPU that was not running at its usual speed; the session adds a warning
and reports show it. Flags are only judged for backends that run on the GPU: a CPU backend's GPU sits idle, and an
idle GPU lowers its clocks by design.

Without NVML (no driver, no nvidia-ml-py, a CPU-only machine) the record is ``{"status": "unavailable", "reason":
...}`` and nothing fails. NVML calls that a GPU does not support (power on some boards) are left out of the record.
The sampler only reads: it never sets clocks or any other GPU state.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import Any

import numpy as np

UNAVAILABLE = "unavailable"
CLOCK_DROP = 0.05  # a fall of the SM clock by more than 5 % below its median during the loop is flagged

# NVML clock-event reason bits (nvmlClocksEventReason*, formerly nvmlClocksThrottleReason*); stable across releases.
REASONS = {
    0x1: "gpu_idle",
    0x2: "applications_clocks_setting",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
}
# Reasons that mean the GPU ran slower than it could for this work; the others are idle or configuration states.
THROTTLE_REASONS = frozenset(
    {"sw_power_cap", "hw_slowdown", "sw_thermal_slowdown", "hw_thermal_slowdown", "hw_power_brake_slowdown"}
)


def reason_names(mask: int) -> list[str]:
    """Names of the clock-event reasons set in an NVML bit mask."""
    return [name for bit, name in REASONS.items() if mask & bit]


def _nvml() -> Any:
    import pynvml  # nvidia-ml-py

    return pynvml


def nvml_device() -> int | str:
    """The GPU that CUDA calls device 0: the first entry of ``CUDA_VISIBLE_DEVICES`` (an NVML index, or a UUID such
    as ``GPU-8f3e...``, which workers may be pinned by), else index 0."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    if not visible:
        return 0
    return int(visible) if visible.isdigit() else visible


def availability() -> dict[str, Any]:
    """Whether GPU telemetry can be sampled on this machine: ``{"status": "ok", "gpus": N}`` or
    ``{"status": "unavailable", "reason": ...}``. Recorded in the environment fingerprint of every run."""
    try:
        nv = _nvml()
    except ImportError:
        return {"status": UNAVAILABLE, "reason": "nvidia-ml-py is not installed (pip install nvidia-ml-py)"}
    try:
        nv.nvmlInit()
    except Exception as exc:
        return {"status": UNAVAILABLE, "reason": f"NVML could not start: {_text(exc)} (no NVIDIA driver here?)"}
    try:
        return {"status": "ok", "gpus": int(nv.nvmlDeviceGetCount())}
    except Exception as exc:
        return {"status": UNAVAILABLE, "reason": f"NVML sees no GPU: {_text(exc)}"}
    finally:
        with contextlib.suppress(Exception):
            nv.nvmlShutdown()


class Sampler:
    """Context manager: samples one GPU through NVML on a background thread between ``__enter__`` and ``__exit__``.

    ``Sampler(device_index=None)`` samples the GPU CUDA calls device 0. When NVML cannot be used, the sampler does
    nothing and :meth:`summary` says why.
    """

    def __init__(self, device_index: int | None = None, interval_ms: float = 50.0) -> None:
        self.device: int | str = nvml_device() if device_index is None else device_index
        self.interval_ms = interval_ms
        self.samples: list[dict[str, float]] = []
        self.reason: str | None = None  # why telemetry is unavailable, once known
        self.static: dict[str, Any] = {}
        self._nv: Any = None
        self._handle: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started_ns = 0

    # -- life cycle ------------------------------------------------------------------------------------------
    def start(self) -> Sampler:
        try:
            nv = _nvml()
        except ImportError:
            self.reason = "nvidia-ml-py is not installed (pip install nvidia-ml-py)"
            return self
        try:
            nv.nvmlInit()
        except Exception as exc:
            self.reason = f"NVML could not start: {_text(exc)} (no NVIDIA driver here?)"
            return self
        self._nv = nv
        try:
            if isinstance(self.device, str):
                self._handle = nv.nvmlDeviceGetHandleByUUID(self.device)
            else:
                self._handle = nv.nvmlDeviceGetHandleByIndex(self.device)
        except Exception as exc:
            which = f"with UUID {self.device}" if isinstance(self.device, str) else f"at index {self.device}"
            self.reason = f"NVML has no GPU {which}: {_text(exc)}"
            self._shutdown()
            return self
        self.static = self._static_facts()
        self._started_ns = time.perf_counter_ns()
        self._take()
        self._thread = threading.Thread(target=self._run, name="harness-nvml-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            self._take()
        self._shutdown()

    def __enter__(self) -> Sampler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _shutdown(self) -> None:
        if self._nv is not None:
            with contextlib.suppress(Exception):
                self._nv.nvmlShutdown()
            self._nv = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval_ms / 1e3):
            self._take()

    # -- reading ---------------------------------------------------------------------------------------------
    def _static_facts(self) -> dict[str, Any]:
        nv, h = self._nv, self._handle
        facts: dict[str, Any] = {}
        with contextlib.suppress(Exception):
            facts["max_sm_clock_mhz"] = float(nv.nvmlDeviceGetMaxClockInfo(h, nv.NVML_CLOCK_SM))
        with contextlib.suppress(Exception):
            facts["max_mem_clock_mhz"] = float(nv.nvmlDeviceGetMaxClockInfo(h, nv.NVML_CLOCK_MEM))
        with contextlib.suppress(Exception):
            facts["power_limit_w"] = nv.nvmlDeviceGetEnforcedPowerLimit(h) / 1e3
        return facts

    def _take(self) -> None:
        """One reading; each quantity is optional because boards differ in what NVML reports."""
        nv, h = self._nv, self._handle
        if nv is None:
            return
        sample: dict[str, float] = {"t_ms": (time.perf_counter_ns() - self._started_ns) / 1e6}
        readers = {
            "sm_clock_mhz": lambda: nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM),
            "mem_clock_mhz": lambda: nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_MEM),
            "gpu_util_pct": lambda: nv.nvmlDeviceGetUtilizationRates(h).gpu,
            "mem_util_pct": lambda: nv.nvmlDeviceGetUtilizationRates(h).memory,
            "memory_used_bytes": lambda: nv.nvmlDeviceGetMemoryInfo(h).used,
            "power_w": lambda: nv.nvmlDeviceGetPowerUsage(h) / 1e3,
            "temperature_c": lambda: nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU),
            "clock_event_reasons": lambda: _clock_event_reasons(nv, h),
        }
        for name, read in readers.items():
            try:
                sample[name] = float(read())
            except Exception:
                continue
        self.samples.append(sample)

    # -- the record --------------------------------------------------------------------------------------------
    def summary(self, uses_gpu: bool = True) -> dict[str, Any]:
        """The case's telemetry record (see the module docstring); ``uses_gpu=False`` records without flagging."""
        if self.reason is not None or not self.samples:
            return {"status": UNAVAILABLE, "reason": self.reason or "telemetry was not started"}
        return summarize(self.samples, self.static, self.device, self.interval_ms, judge=uses_gpu)


def _clock_event_reasons(nv: Any, handle: Any) -> int:
    getter = getattr(nv, "nvmlDeviceGetCurrentClocksEventReasons", None) or nv.nvmlDeviceGetCurrentClocksThrottleReasons
    return int(getter(handle))


def summarize(
    samples: list[dict[str, float]],
    static: dict[str, Any] | None = None,
    device_index: int | str = 0,  # NVML index, or the UUID the GPU was chosen by
    interval_ms: float = 50.0,
    judge: bool = True,
) -> dict[str, Any]:
    """Reduce readings to min / median / max per quantity, the union of clock-event reasons, and the flags."""
    record: dict[str, Any] = {
        "status": "ok",
        "device_index": device_index,
        "interval_ms": interval_ms,
        "samples": len(samples),
        **(static or {}),
    }
    for name in ("sm_clock_mhz", "mem_clock_mhz", "gpu_util_pct", "mem_util_pct", "power_w", "temperature_c"):
        values = [s[name] for s in samples if name in s]
        if values:
            record[name] = {
                "min": float(np.min(values)),
                "median": float(np.median(values)),
                "max": float(np.max(values)),
            }
    used = [s["memory_used_bytes"] for s in samples if "memory_used_bytes" in s]
    if used:
        record["memory_used_bytes"] = {"min": float(min(used)), "max": float(max(used))}
    mask = 0
    for s in samples:
        mask |= int(s.get("clock_event_reasons", 0))
    record["clock_event_reasons"] = reason_names(mask)
    throttles = sorted(THROTTLE_REASONS.intersection(record["clock_event_reasons"]))
    flags: list[str] = []
    if judge:
        if throttles:
            flags.append(f"clock throttling seen by NVML: {', '.join(throttles)}")
        sm = record.get("sm_clock_mhz")
        if sm and sm["median"] > 0 and sm["min"] < (1 - CLOCK_DROP) * sm["median"]:
            flags.append(
                f"SM clock dropped during measurement: min {sm['min']:.0f} MHz vs median {sm['median']:.0f} MHz "
                f"(more than {CLOCK_DROP:.0%} below)"
            )
    record["throttled"] = bool(judge and throttles)
    record["flagged"] = bool(flags)
    record["flags"] = flags
    record["judged"] = judge
    return record


def _text(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def combine(records: list[dict[str, Any]]) -> dict[str, Any]:
    """One case's record from the records of its trials: the extremes across trials, the union of reasons and
    flags, and the per-trial records under ``trials``. ``unavailable`` when no trial had telemetry."""
    usable = [r for r in records if r.get("status") == "ok"]
    if not usable:
        reasons = [r.get("reason") for r in records if r.get("reason")]
        return {"status": UNAVAILABLE, "reason": reasons[0] if reasons else "telemetry was not sampled"}
    if len(records) == 1:
        return dict(usable[0])
    out: dict[str, Any] = {k: v for k, v in usable[0].items() if not isinstance(v, (dict, list))}
    out["samples"] = sum(int(r.get("samples", 0)) for r in usable)
    for name in ("sm_clock_mhz", "mem_clock_mhz", "gpu_util_pct", "mem_util_pct", "power_w", "temperature_c"):
        parts = [r[name] for r in usable if name in r]
        if parts:
            out[name] = {
                "min": min(p["min"] for p in parts),
                "median": float(np.median([p["median"] for p in parts])),
                "max": max(p["max"] for p in parts),
            }
    used = [r["memory_used_bytes"] for r in usable if "memory_used_bytes" in r]
    if used:
        out["memory_used_bytes"] = {"min": min(u["min"] for u in used), "max": max(u["max"] for u in used)}
    out["clock_event_reasons"] = sorted({name for r in usable for name in r.get("clock_event_reasons", [])})
    out["flags"] = list(dict.fromkeys(f for r in usable for f in r.get("flags", [])))
    out["flagged"] = any(r.get("flagged") for r in usable)
    out["throttled"] = any(r.get("throttled") for r in usable)
    out["trials"] = records
    return out
