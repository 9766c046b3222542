"""harness.machine.telemetry: 'unavailable' without NVML, summaries and flags from readings, the hook in measure()."""

from __future__ import annotations

import sys
import time
import types

import pytest

from harness.machine import telemetry
from harness.measure.loop import measure
from harness.suite.schema import MeasureSpec


class FakeNVML(types.SimpleNamespace):
    """Just enough of pynvml: clocks follow ``sm_clocks`` reading by reading; ``reasons`` is the event mask."""

    NVML_CLOCK_SM, NVML_CLOCK_MEM, NVML_TEMPERATURE_GPU = 1, 2, 0

    def __init__(self, sm_clocks=(1980,), reasons=0, fail_init=False):
        super().__init__()
        self.sm_clocks = list(sm_clocks)
        self.reasons = reasons
        self.fail_init = fail_init
        self.reads = 0
        self.shutdowns = 0

    def nvmlInit(self):
        if self.fail_init:
            raise RuntimeError("NVML Shared Library Not Found")

    def nvmlShutdown(self):
        self.shutdowns += 1

    def nvmlDeviceGetCount(self):
        return 1

    def nvmlDeviceGetHandleByIndex(self, index):
        if index != 0:
            raise RuntimeError("Invalid Argument")
        return "gpu0"

    def nvmlDeviceGetClockInfo(self, handle, kind):
        if kind == self.NVML_CLOCK_MEM:
            return 2619
        value = self.sm_clocks[min(self.reads, len(self.sm_clocks) - 1)]
        self.reads += 1
        return value

    def nvmlDeviceGetMaxClockInfo(self, handle, kind):
        return 1980 if kind == self.NVML_CLOCK_SM else 2619

    def nvmlDeviceGetEnforcedPowerLimit(self, handle):
        return 700_000  # mW

    def nvmlDeviceGetUtilizationRates(self, handle):
        return types.SimpleNamespace(gpu=97, memory=40)

    def nvmlDeviceGetMemoryInfo(self, handle):
        return types.SimpleNamespace(used=3 * 2**30, total=80 * 2**30)

    def nvmlDeviceGetPowerUsage(self, handle):
        raise RuntimeError("Not Supported")  # boards differ: a missing reading is left out, not fatal

    def nvmlDeviceGetTemperature(self, handle, kind):
        return 51

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle):
        return self.reasons


@pytest.fixture
def fake_nvml(monkeypatch):
    def install(**kwargs):
        nv = FakeNVML(**kwargs)
        monkeypatch.setitem(sys.modules, "pynvml", nv)
        return nv

    return install


def test_without_nvidia_ml_py_telemetry_is_unavailable(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails
    with telemetry.Sampler() as sampler:
        pass
    record = sampler.summary()
    assert record == {"status": "unavailable", "reason": "nvidia-ml-py is not installed (pip install nvidia-ml-py)"}


def test_without_a_driver_telemetry_is_unavailable(fake_nvml):
    fake_nvml(fail_init=True)
    with telemetry.Sampler() as sampler:
        time.sleep(0.01)
    record = sampler.summary()
    assert record["status"] == "unavailable"
    assert "NVML could not start: NVML Shared Library Not Found" in record["reason"]


def test_availability_is_in_the_environment_fingerprint(fake_nvml, monkeypatch):
    from harness.machine.environment import fingerprint

    fake_nvml()
    assert telemetry.availability() == {"status": "ok", "gpus": 1}
    fake_nvml(fail_init=True)
    env = fingerprint("onnxruntime", "1.0")
    assert env["telemetry"]["status"] == "unavailable" and "NVML could not start" in env["telemetry"]["reason"]
    monkeypatch.setitem(sys.modules, "pynvml", None)
    assert telemetry.availability()["reason"] == "nvidia-ml-py is not installed (pip install nvidia-ml-py)"


def test_missing_gpu_index_is_unavailable_and_nvml_is_shut_down(fake_nvml):
    nv = fake_nvml()
    with telemetry.Sampler(device_index=3) as sampler:
        pass
    assert "no GPU at index 3" in sampler.summary()["reason"]
    assert nv.shutdowns == 1


def test_sampler_summarises_readings_during_the_block(fake_nvml):
    nv = fake_nvml(sm_clocks=(1980, 1980, 1975), reasons=0x1)  # idle between iterations is not throttling
    with telemetry.Sampler(interval_ms=5) as sampler:
        time.sleep(0.06)
    record = sampler.summary()
    assert record["status"] == "ok"
    assert record["samples"] >= 3  # one at the start, some on the thread, one at the end
    assert record["sm_clock_mhz"]["max"] == 1980 and record["mem_clock_mhz"]["median"] == 2619
    assert record["gpu_util_pct"]["median"] == 97 and record["temperature_c"]["max"] == 51
    assert record["memory_used_bytes"]["max"] == 3 * 2**30
    assert record["max_sm_clock_mhz"] == 1980 and record["power_limit_w"] == 700
    assert "power_w" not in record  # not supported by this board
    assert record["clock_event_reasons"] == ["gpu_idle"]
    assert record["flagged"] is False and record["flags"] == []
    assert nv.shutdowns == 1


def test_power_cap_throttling_is_flagged(fake_nvml):
    fake_nvml(reasons=0x4 | 0x1)
    with telemetry.Sampler(interval_ms=5) as sampler:
        time.sleep(0.02)
    record = sampler.summary()
    assert record["throttled"] and record["flagged"]
    assert record["flags"] == ["clock throttling seen by NVML: sw_power_cap"]


def test_clock_drop_is_flagged():
    samples = [{"sm_clock_mhz": c} for c in (1980, 1980, 1980, 1980, 1600)]
    record = telemetry.summarize(samples)
    assert record["flagged"] and not record["throttled"]
    assert "SM clock dropped during measurement: min 1600 MHz vs median 1980 MHz" in record["flags"][0]
    steady = telemetry.summarize([{"sm_clock_mhz": c} for c in (1980, 1965, 1980)])
    assert not steady["flagged"]


def test_cpu_backends_are_recorded_but_not_judged():
    samples = [{"sm_clock_mhz": c, "clock_event_reasons": 0x8} for c in (1980, 345)]
    record = telemetry.summarize(samples, judge=False)
    assert record["clock_event_reasons"] == ["hw_slowdown"]
    assert not record["flagged"] and not record["throttled"] and record["judged"] is False


def test_reason_names_decode_the_mask():
    assert telemetry.reason_names(0x4 | 0x40) == ["sw_power_cap", "hw_thermal_slowdown"]
    assert telemetry.reason_names(0) == []


def test_combine_trials():
    a = telemetry.summarize([{"sm_clock_mhz": 1980.0}])
    b = telemetry.summarize([{"sm_clock_mhz": 1980.0, "clock_event_reasons": 0x20}, {"sm_clock_mhz": 1700.0}])
    record = telemetry.combine([a, b])
    assert record["samples"] == 3 and record["sm_clock_mhz"]["min"] == 1700
    assert record["flagged"] and record["throttled"] and record["clock_event_reasons"] == ["sw_thermal_slowdown"]
    assert len(record["trials"]) == 2
    unavailable = {"status": "unavailable", "reason": "no driver"}
    assert telemetry.combine([unavailable, unavailable]) == unavailable


class _Runner:
    def step(self):
        time.sleep(0.001)

    def outputs(self):
        return {}

    def close(self):
        pass


def test_measure_records_telemetry_and_warns_about_throttling(fake_nvml):
    fake_nvml(reasons=0x40)
    spec = MeasureSpec(warmup_ms=5, min_duration_ms=60, min_iterations=3)
    gpu = measure(_Runner(), spec, batch_size=1, uses_gpu=True)
    assert gpu.telemetry["status"] == "ok" and gpu.telemetry["throttled"]
    assert "clock throttling seen by NVML: hw_thermal_slowdown" in gpu.warnings()
    cpu = measure(_Runner(), spec, batch_size=1)  # a CPU backend: the GPU's state is recorded, not held against it
    assert cpu.telemetry["status"] == "ok" and not cpu.telemetry["flagged"]
    assert not any("NVML" in w for w in cpu.warnings())


def test_measure_on_a_machine_without_nvml(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)
    m = measure(_Runner(), MeasureSpec(warmup_ms=1, min_duration_ms=5, min_iterations=2), batch_size=1, uses_gpu=True)
    assert m.telemetry["status"] == "unavailable"


@pytest.mark.gpu
def test_real_nvml_reads_the_gpu():
    pynvml = pytest.importorskip("pynvml", reason="nvidia-ml-py is not installed")
    try:
        pynvml.nvmlInit()
        pynvml.nvmlShutdown()
    except Exception as exc:
        pytest.skip(f"no NVIDIA driver: {exc}")
    with telemetry.Sampler(interval_ms=10) as sampler:
        time.sleep(0.1)
    record = sampler.summary()
    assert record["status"] == "ok" and record["samples"] >= 3
    assert record["sm_clock_mhz"]["max"] > 0 and record["memory_used_bytes"]["max"] > 0
    assert record["max_sm_clock_mhz"] >= record["sm_clock_mhz"]["max"]


@pytest.mark.parametrize(
    ("visible", "expected"),
    [
        (None, [0, 1, 2]),
        ("2,0", [2, 0]),
        ("GPU-bbb", [1]),
        ("GPU-ccc222,0", [2, 0]),
        ("1,7,0", [1]),  # like CUDA: the list ends at the first entry that names no device
        ("GPU-", []),  # a prefix of every UUID names no single device
    ],
)
def test_visible_gpus_follow_cuda_visible_devices_by_index_or_uuid(monkeypatch, visible, expected):
    from harness.machine.environment import _visible_indices

    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert _visible_indices(["GPU-aaa111", "GPU-bbb111", "GPU-ccc222"]) == expected
