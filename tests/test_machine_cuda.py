"""harness.machine.cuda: error handling everywhere; buffers, events, timers and graphs on a real GPU (marked
``gpu``)."""

from __future__ import annotations

import enum
import subprocess
import sys
import types

import numpy as np
import pytest

from harness.core.errors import HarnessError
from harness.machine import cuda

GPU_REASON = cuda.available()
gpu = pytest.mark.skipif(GPU_REASON is not None, reason=f"needs a CUDA GPU: {GPU_REASON}")


def test_import_harness_does_not_load_cuda_python():
    code = "import sys, harness, harness.machine.cuda; print(any(m.startswith('cuda.') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


class _Err(enum.IntEnum):
    cudaSuccess = 0
    cudaErrorMemoryAllocation = 2
    cudaErrorNotReady = 600


def _fake_runtime(**calls):
    error_string = lambda err: (_Err.cudaSuccess, b"out of memory")  # noqa: E731
    module = types.SimpleNamespace(cudaError_t=_Err, cudaGetErrorString=error_string)
    for name, fn in calls.items():
        setattr(module, name, fn)
    return module


@pytest.fixture
def fake_runtime(monkeypatch):
    def install(**calls):
        module = _fake_runtime(**calls)
        monkeypatch.setattr(cuda, "_runtime", lambda: module)
        cuda._unavailable_reason.cache_clear()
        return module

    yield install
    cuda._unavailable_reason.cache_clear()


def test_check_unpacks_values_and_names_the_failed_call(fake_runtime):
    fake_runtime()
    assert cuda.check((_Err.cudaSuccess, 42)) == 42
    assert cuda.check((_Err.cudaSuccess, 1, 2)) == (1, 2)
    assert cuda.check((_Err.cudaSuccess,)) is None
    with pytest.raises(cuda.CudaError, match=r"cudaMalloc\(64\) failed: cudaErrorMemoryAllocation: out of memory"):
        cuda.check((_Err.cudaErrorMemoryAllocation, None), "cudaMalloc(64)")
    assert issubclass(cuda.CudaError, HarnessError)  # reaches the user as one line


def test_available_gives_the_reason_when_no_device(fake_runtime):
    fake_runtime(cudaGetDeviceCount=lambda: (_Err.cudaSuccess, 0))
    assert cuda.available() == "no CUDA GPU: the CUDA runtime sees 0 devices"
    with pytest.raises(cuda.CudaError, match="sees 0 devices"):
        cuda.require()


def test_available_gives_the_reason_when_cuda_python_is_missing(monkeypatch):
    def missing():
        raise cuda.CudaError(f"cuda-python is not installed: {cuda.INSTALL_HINT}")

    monkeypatch.setattr(cuda, "_runtime", missing)
    cuda._unavailable_reason.cache_clear()
    try:
        assert "cuda-python is not installed" in cuda.available()
    finally:
        cuda._unavailable_reason.cache_clear()


def test_cpu_machine_reports_a_reason_not_a_crash():
    if GPU_REASON is None:
        pytest.skip("this machine has a GPU")
    assert GPU_REASON.startswith(("no CUDA GPU", "cuda-python is not installed"))


def test_graph_launch_before_capture_is_refused():
    with pytest.raises(cuda.CudaError, match="before a capture"):
        cuda.Graph().launch()


# -- on a GPU --------------------------------------------------------------------------------------------------------
@pytest.mark.gpu
@gpu
def test_device_info_names_the_gpu():
    info = cuda.device_info(0)
    assert info["name"] and info["sm_count"] > 0 and info["memory_bytes"] > 2**30
    major, _minor = (int(x) for x in info["compute_capability"].split("."))
    assert major >= 5


@pytest.mark.gpu
@gpu
def test_round_trip_through_device_and_pinned_buffers():
    data = np.random.default_rng(1).standard_normal((256, 1024)).astype(np.float32)
    with cuda.Stream() as stream, cuda.PinnedBuffer.like(data) as pinned, cuda.DeviceBuffer.like(data) as dev:
        dev.copy_from_host(pinned, stream)
        with cuda.DeviceBuffer(data.nbytes) as second:
            second.copy_from_device(dev, stream)
            back = np.full_like(data, np.nan)
            second.copy_to_host(back, stream)
            stream.synchronize()
    np.testing.assert_array_equal(back, data)


@pytest.mark.gpu
@gpu
def test_copy_that_does_not_fit_is_refused():
    with cuda.DeviceBuffer(16) as dev, pytest.raises(cuda.CudaError, match="does not fit"):
        dev.copy_from_host(np.zeros(8, dtype=np.float32))


@pytest.mark.gpu
@gpu
def test_events_time_more_work_as_longer():
    nbytes = 256 * 2**20
    with cuda.Stream() as stream, cuda.DeviceBuffer(nbytes) as a, cuda.DeviceBuffer(nbytes) as b:
        a.fill_bytes(1, stream)
        timings = []
        for repeats in (1, 8):
            with cuda.Timer(stream) as timer:
                timer.start()
                for _ in range(repeats):
                    b.copy_from_device(a, stream)
                timer.stop()
                timings.append(timer.elapsed_ms())
    assert 0 < timings[0] < timings[1]
    assert timings[1] / timings[0] == pytest.approx(8, rel=0.35)  # a copy's cost is its bytes


@pytest.mark.gpu
@gpu
def test_graph_replays_the_captured_work_only_when_launched():
    n = 1 << 20
    src = np.arange(n, dtype=np.float32)
    with cuda.Stream() as stream, cuda.DeviceBuffer(src.nbytes) as a, cuda.DeviceBuffer(src.nbytes) as b:
        a.copy_from_host(src, stream)
        b.fill_bytes(0, stream)
        stream.synchronize()
        with cuda.Graph() as graph:
            with graph.capture(stream):
                b.copy_from_device(a, stream)
            out = np.full_like(src, -1)
            b.copy_to_host(out, stream)
            stream.synchronize()
            assert not out.any()  # capture records, it does not run
            graph.launch(stream)
            b.copy_to_host(out, stream)
            stream.synchronize()
            np.testing.assert_array_equal(out, src)


@pytest.mark.gpu
@gpu
def test_wrapped_stream_is_not_destroyed():
    owned = cuda.Stream()
    wrapped = cuda.Stream.wrap(owned.handle)
    wrapped.close()
    owned.synchronize()  # still valid
    owned.close()


@pytest.mark.gpu
@gpu
def test_wrapped_graph_launches_an_executable_owned_elsewhere():
    n = 1 << 16
    src = np.arange(n, dtype=np.float32)
    with cuda.Stream() as stream, cuda.DeviceBuffer(src.nbytes) as a, cuda.DeviceBuffer(src.nbytes) as b:
        a.copy_from_host(src, stream)
        b.fill_bytes(0, stream)
        with cuda.Graph() as owner:
            with owner.capture(stream):
                b.copy_from_device(a, stream)
            borrowed = cuda.Graph.wrap(int(owner._exec))
            borrowed.launch(stream)
            borrowed.close()  # does not destroy the owner's executable
            out = np.zeros_like(src)
            b.copy_to_host(out, stream)
            stream.synchronize()
            np.testing.assert_array_equal(out, src)
            owner.launch(stream)  # still valid
            stream.synchronize()
