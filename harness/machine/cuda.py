"""A small layer over cuda-python's runtime API: device and pinned buffers, streams, events, CUDA graphs.

Every GPU backend times and moves data through this module, so one set of rules holds everywhere:

- every CUDA call is checked; a failure raises :class:`CudaError` naming the call and CUDA's own error text;
- objects that own CUDA resources (:class:`DeviceBuffer`, :class:`PinnedBuffer`, :class:`Stream`, :class:`Event`,
  :class:`Graph`) are context managers with an idempotent ``close()``;
- handles are plain ``int`` (``.handle``, ``.ptr``), so a stream or pointer from another library (PyTorch's
  ``torch.cuda.current_stream().cuda_stream``, a TensorRT binding address) can be used directly and wrapped with
  :meth:`Stream.wrap` without taking ownership;
- times are in milliseconds (CUDA event resolution is about 0.5 us).

cuda-python is imported on first use, never by ``import harness``; :func:`available` says why the GPU path cannot run
on this machine (``None`` when it can). Typical timing loop::

    from harness.machine import cuda

    stream = cuda.Stream()
    start, end = cuda.Event(), cuda.Event()
    start.record(stream)
    ...  # enqueue work on stream.handle
    end.record(stream)
    end.synchronize()
    gpu_ms = cuda.elapsed_ms(start, end)

and the CUDA-graph version of the same work::

    with cuda.Graph() as graph:
        with graph.capture(stream):
            ...  # enqueue the work once, on stream.handle
        graph.launch(stream)  # replay: one launch for the whole captured sequence
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import numpy as np

from harness.core.errors import HarnessError

INSTALL_HINT = "pip install 'trt-perf-harness[gpu]' (cuda-python) on a machine with an NVIDIA driver"


class CudaError(HarnessError):
    """A CUDA call failed; the message names the call and CUDA's error string."""


@lru_cache(maxsize=1)
def _runtime() -> Any:
    """The cuda-python runtime module (``cuda.bindings.runtime``, or ``cuda.cudart`` in older releases)."""
    try:
        from cuda.bindings import runtime
    except ImportError:
        try:
            from cuda import cudart as runtime  # cuda-python < 12.6
        except ImportError:
            raise CudaError(f"cuda-python is not installed: {INSTALL_HINT}") from None
    return runtime


def runtime() -> Any:
    """The cuda-python runtime module, for calls this layer does not wrap."""
    return _runtime()


def check(result: Any, call: str = "CUDA call") -> Any:
    """Unpack a cuda-python result tuple ``(error, *values)``: raise :class:`CudaError` on error, else return the
    single value, a tuple of values, or None."""
    rt = _runtime()
    if isinstance(result, tuple):
        err, values = result[0], result[1:]
    else:
        err, values = result, ()
    if err != rt.cudaError_t.cudaSuccess:
        name = getattr(err, "name", str(err))
        try:
            text = rt.cudaGetErrorString(err)[1]
            text = text.decode() if isinstance(text, bytes) else str(text)
        except Exception:
            text = ""
        raise CudaError(f"{call} failed: {name}{': ' + text if text else ''}")
    if not values:
        return None
    return values[0] if len(values) == 1 else values


@lru_cache(maxsize=1)
def _unavailable_reason() -> str | None:
    try:
        rt = _runtime()
    except CudaError as exc:
        return str(exc)
    try:
        count = check(rt.cudaGetDeviceCount(), "cudaGetDeviceCount")
    except CudaError as exc:
        return f"no CUDA GPU: {exc}"
    if not count:
        return "no CUDA GPU: the CUDA runtime sees 0 devices"
    return None


def available() -> str | None:
    """``None`` when a CUDA GPU can be used through cuda-python here, else the reason it cannot (one line)."""
    return _unavailable_reason()


def require() -> None:
    """Raise :class:`CudaError` with the reason when no CUDA GPU is usable."""
    reason = available()
    if reason:
        raise CudaError(reason)


def device_count() -> int:
    return int(check(_runtime().cudaGetDeviceCount(), "cudaGetDeviceCount"))


def set_device(index: int) -> None:
    check(_runtime().cudaSetDevice(index), f"cudaSetDevice({index})")


def synchronize() -> None:
    """Wait for all work on the current device."""
    check(_runtime().cudaDeviceSynchronize(), "cudaDeviceSynchronize")


def device_info(index: int = 0) -> dict[str, Any]:
    """Facts CUDA reports about one device: name, compute capability, SM count, memory (bytes), L2 (bytes),
    runtime and driver versions ("13.0")."""
    rt = _runtime()
    prop = check(rt.cudaGetDeviceProperties(index), "cudaGetDeviceProperties")
    name = prop.name.split(b"\0", 1)[0].decode() if isinstance(prop.name, bytes) else str(prop.name)
    runtime_version = check(rt.cudaRuntimeGetVersion(), "cudaRuntimeGetVersion")
    driver_version = check(rt.cudaDriverGetVersion(), "cudaDriverGetVersion")
    return {
        "index": index,
        "name": name,
        "compute_capability": f"{prop.major}.{prop.minor}",
        "sm_count": int(prop.multiProcessorCount),
        "memory_bytes": int(prop.totalGlobalMem),
        "l2_bytes": int(prop.l2CacheSize),
        "cuda_runtime": _version(runtime_version),
        "cuda_driver": _version(driver_version),
    }


def _version(value: int) -> str:
    return f"{value // 1000}.{value % 1000 // 10}"


class Stream:
    """A CUDA stream. ``Stream()`` creates a non-blocking one (it does not wait on the legacy default stream);
    ``Stream.wrap(handle)`` wraps a stream owned elsewhere (0 is the default stream) and never destroys it."""

    def __init__(self, non_blocking: bool = True) -> None:
        rt = _runtime()
        flags = rt.cudaStreamNonBlocking if non_blocking else rt.cudaStreamDefault
        self._stream = check(rt.cudaStreamCreateWithFlags(flags), "cudaStreamCreateWithFlags")
        self.handle = int(self._stream)
        self._owned = True

    @classmethod
    def wrap(cls, handle: int) -> Stream:
        stream = cls.__new__(cls)
        stream._stream = None
        stream.handle = int(handle)
        stream._owned = False
        return stream

    def synchronize(self) -> None:
        check(_runtime().cudaStreamSynchronize(self.handle), "cudaStreamSynchronize")

    def close(self) -> None:
        if self._owned and self._stream is not None:
            check(_runtime().cudaStreamDestroy(self._stream), "cudaStreamDestroy")
        self._stream = None
        self._owned = False

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _stream_handle(stream: Stream | int | None) -> int:
    if stream is None:
        return 0
    return stream.handle if isinstance(stream, Stream) else int(stream)


class Event:
    """A CUDA event for timing. ``blocking=True`` makes :meth:`synchronize` yield the CPU instead of spin-waiting
    (lower CPU use, some microseconds of extra wake-up latency); timing loops keep the default spin-wait."""

    def __init__(self, blocking: bool = False, timing: bool = True) -> None:
        rt = _runtime()
        flags = rt.cudaEventDefault
        if blocking:
            flags |= rt.cudaEventBlockingSync
        if not timing:
            flags |= rt.cudaEventDisableTiming
        self._event = check(rt.cudaEventCreateWithFlags(flags), "cudaEventCreateWithFlags")

    @property
    def handle(self) -> int:
        return int(self._event)

    def record(self, stream: Stream | int | None = None) -> None:
        check(_runtime().cudaEventRecord(self._event, _stream_handle(stream)), "cudaEventRecord")

    def synchronize(self) -> None:
        check(_runtime().cudaEventSynchronize(self._event), "cudaEventSynchronize")

    def query(self) -> bool:
        """True when the work before the recorded event has finished (non-blocking)."""
        rt = _runtime()
        err = rt.cudaEventQuery(self._event)[0]
        if err == rt.cudaError_t.cudaErrorNotReady:
            return False
        check((err,), "cudaEventQuery")
        return True

    def close(self) -> None:
        if self._event is not None:
            check(_runtime().cudaEventDestroy(self._event), "cudaEventDestroy")
            self._event = None

    def __enter__(self) -> Event:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def elapsed_ms(start: Event, end: Event) -> float:
    """GPU time between two recorded, completed events, in milliseconds."""
    return float(check(_runtime().cudaEventElapsedTime(start._event, end._event), "cudaEventElapsedTime"))


class DeviceBuffer:
    """``nbytes`` of device memory (cudaMalloc). ``ptr`` is the device address as an int."""

    def __init__(self, nbytes: int) -> None:
        if nbytes < 0:
            raise CudaError(f"DeviceBuffer: size must be >= 0 bytes, got {nbytes}")
        self.nbytes = int(nbytes)
        self.ptr = int(check(_runtime().cudaMalloc(max(self.nbytes, 1)), f"cudaMalloc({self.nbytes})"))

    @classmethod
    def like(cls, array: np.ndarray) -> DeviceBuffer:
        """A device buffer the size of ``array`` (not filled)."""
        return cls(array.nbytes)

    def copy_from_host(self, src: np.ndarray | PinnedBuffer, stream: Stream | int | None = None) -> None:
        """Host -> device, asynchronous on ``stream`` (truly so only from pinned memory)."""
        host, nbytes = _host_view(src)
        self._fits(nbytes)
        rt = _runtime()
        kind = rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        check(rt.cudaMemcpyAsync(self.ptr, host, nbytes, kind, _stream_handle(stream)), "cudaMemcpyAsync(H2D)")

    def copy_to_host(self, dst: np.ndarray | PinnedBuffer, stream: Stream | int | None = None) -> None:
        """Device -> host, asynchronous on ``stream``: synchronize the stream before reading ``dst``."""
        host, nbytes = _host_view(dst)
        self._fits(nbytes)
        rt = _runtime()
        kind = rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        check(rt.cudaMemcpyAsync(host, self.ptr, nbytes, kind, _stream_handle(stream)), "cudaMemcpyAsync(D2H)")

    def copy_from_device(self, src: DeviceBuffer, stream: Stream | int | None = None) -> None:
        """Device -> device copy of ``src.nbytes`` bytes."""
        self._fits(src.nbytes)
        rt = _runtime()
        kind = rt.cudaMemcpyKind.cudaMemcpyDeviceToDevice
        check(rt.cudaMemcpyAsync(self.ptr, src.ptr, src.nbytes, kind, _stream_handle(stream)), "cudaMemcpyAsync(D2D)")

    def fill_bytes(self, value: int, stream: Stream | int | None = None) -> None:
        """Set every byte to ``value`` (cudaMemsetAsync)."""
        check(_runtime().cudaMemsetAsync(self.ptr, value, self.nbytes, _stream_handle(stream)), "cudaMemsetAsync")

    def _fits(self, nbytes: int) -> None:
        if nbytes > self.nbytes:
            raise CudaError(f"copy of {nbytes} bytes does not fit a device buffer of {self.nbytes} bytes")

    def close(self) -> None:
        if self.ptr:
            check(_runtime().cudaFree(self.ptr), "cudaFree")
            self.ptr = 0

    def __enter__(self) -> DeviceBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PinnedBuffer:
    """Page-locked host memory (cudaMallocHost) seen as a numpy array (``.array``) of ``shape`` and ``dtype``:
    copies from and to it are truly asynchronous and run at full PCIe/NVLink speed."""

    def __init__(self, shape: tuple[int, ...] | int, dtype: Any = np.uint8) -> None:
        self.dtype = np.dtype(dtype)
        self.shape = (shape,) if isinstance(shape, int) else tuple(shape)
        self.nbytes = int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize
        self.ptr = int(check(_runtime().cudaMallocHost(max(self.nbytes, 1)), f"cudaMallocHost({self.nbytes})"))
        raw = (ctypes.c_byte * max(self.nbytes, 1)).from_address(self.ptr)
        self.array = np.frombuffer(raw, dtype=np.uint8, count=self.nbytes).view(self.dtype).reshape(self.shape)

    @classmethod
    def like(cls, array: np.ndarray) -> PinnedBuffer:
        """A pinned copy of ``array``."""
        pinned = cls(array.shape, array.dtype)
        pinned.array[...] = array
        return pinned

    def close(self) -> None:
        if self.ptr:
            self.array = np.empty(0, dtype=self.dtype)  # drop the view before the memory goes away
            check(_runtime().cudaFreeHost(self.ptr), "cudaFreeHost")
            self.ptr = 0

    def __enter__(self) -> PinnedBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _host_view(buffer: np.ndarray | PinnedBuffer) -> tuple[int, int]:
    if isinstance(buffer, PinnedBuffer):
        return buffer.ptr, buffer.nbytes
    if not buffer.flags["C_CONTIGUOUS"]:
        raise CudaError("host arrays must be C-contiguous for a copy; pass np.ascontiguousarray(array)")
    return int(buffer.ctypes.data), int(buffer.nbytes)


class Graph:
    """A CUDA graph: capture the work enqueued on a stream once, then replay it with one launch per inference.

    Capture records, it does not run: after :meth:`capture` returns nothing has executed yet. Host code inside
    the capture runs once; only the GPU work is replayed.
    """

    def __init__(self) -> None:
        self._graph: Any = None
        self._exec: Any = None
        self._owned = True
        self._streams: dict[int, Any] = {}  # stream handle -> cudaStream_t, converted once: launch is a hot path

    @classmethod
    def wrap(cls, exec_handle: int) -> Graph:
        """Launch an executable graph (``cudaGraphExec_t`` as an int) instantiated elsewhere, e.g. PyTorch's
        ``torch.cuda.CUDAGraph.raw_cuda_graph_exec()``; it is never destroyed here."""
        graph = cls()
        graph._exec = _runtime().cudaGraphExec_t(int(exec_handle))
        graph._owned = False
        return graph

    @contextmanager
    def capture(self, stream: Stream) -> Iterator[Graph]:
        """Capture the work enqueued on ``stream`` (which must not be the legacy default stream)."""
        if self._exec is not None:
            raise CudaError("this Graph already holds a captured graph; create a new Graph to capture again")
        rt = _runtime()
        mode = rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        check(rt.cudaStreamBeginCapture(stream.handle, mode), "cudaStreamBeginCapture")
        try:
            yield self
        except BaseException:
            # End the capture so the stream is usable again, then drop the half-captured graph.
            result = rt.cudaStreamEndCapture(stream.handle)
            if result[0] == rt.cudaError_t.cudaSuccess and result[1] is not None:
                rt.cudaGraphDestroy(result[1])
            raise
        self._graph = check(rt.cudaStreamEndCapture(stream.handle), "cudaStreamEndCapture")
        self._exec = check(rt.cudaGraphInstantiate(self._graph, 0), "cudaGraphInstantiate")

    def launch(self, stream: Stream | int | None = None) -> None:
        if self._exec is None:
            raise CudaError("Graph.launch before a capture; enqueue the work inside `with graph.capture(stream):`")
        handle = _stream_handle(stream)
        rt = _runtime()
        native = self._streams.get(handle)
        if native is None:
            native = self._streams[handle] = rt.cudaStream_t(handle)
        result = rt.cudaGraphLaunch(self._exec, native)
        if result[0] != rt.cudaError_t.cudaSuccess:
            check(result, "cudaGraphLaunch")

    def close(self) -> None:
        if not self._owned:
            self._exec = self._graph = None
            return
        rt = _runtime() if (self._exec is not None or self._graph is not None) else None
        if rt is not None and self._exec is not None:
            check(rt.cudaGraphExecDestroy(self._exec), "cudaGraphExecDestroy")
        if rt is not None and self._graph is not None:
            check(rt.cudaGraphDestroy(self._graph), "cudaGraphDestroy")
        self._exec = self._graph = None

    def __enter__(self) -> Graph:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Timer:
    """Per-iteration GPU time on one stream: ``timer.start(); enqueue...; timer.stop(); ms = timer.elapsed_ms()``.

    ``elapsed_ms`` waits for the end event (spin-wait), so it also serves as the iteration's synchronization.
    """

    def __init__(self, stream: Stream | int | None = None) -> None:
        rt = _runtime()
        self.stream = _stream_handle(stream)
        self._start = Event()
        self._end = Event()
        # Bound once: these run twice per timed inference, and every microsecond here is host overhead.
        self._native_stream = rt.cudaStream_t(self.stream)
        self._record = rt.cudaEventRecord
        self._synchronize = rt.cudaEventSynchronize
        self._elapsed = rt.cudaEventElapsedTime
        self._ok = rt.cudaError_t.cudaSuccess

    def start(self) -> None:
        result = self._record(self._start._event, self._native_stream)
        if result[0] != self._ok:
            check(result, "cudaEventRecord")

    def stop(self) -> None:
        result = self._record(self._end._event, self._native_stream)
        if result[0] != self._ok:
            check(result, "cudaEventRecord")

    def elapsed_ms(self) -> float:
        result = self._synchronize(self._end._event)
        if result[0] != self._ok:
            check(result, "cudaEventSynchronize")
        result = self._elapsed(self._start._event, self._end._event)
        if result[0] != self._ok:
            check(result, "cudaEventElapsedTime")
        return float(result[1])

    def close(self) -> None:
        self._start.close()
        self._end.close()

    def __enter__(self) -> Timer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
