"""ONNX Runtime's execution providers as a suite names them, and what running on a CUDA-based one takes: the device
where inputs and outputs live, the case's shapes pinned, the CUDA graph the provider captures, and the device buffers
every runner of a session shares (a captured graph replays on the addresses it was captured with). The reasons are in
:mod:`harness.backends.onnxruntime`, which is the only user of this module."""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.core.errors import HarnessError
from harness.models.inputs import plan_inputs
from harness.models.sources import PreparedModel
from harness.suite.schema import Case

# Providers whose kernels run on an NVIDIA GPU, reading and writing CUDA device memory.
CUDA_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider", "NvTensorRTRTXExecutionProvider")


def provider_entries(providers: list[Any] | None) -> list[tuple[str, dict[str, str]]]:
    """The suite's ``providers`` as (name, options) pairs: an entry is a provider's name or a one-key mapping of its
    name to its options (values given to ORT as text, as its C API takes them)."""
    entries: list[tuple[str, dict[str, str]]] = []
    for entry in providers or ["CPUExecutionProvider"]:
        if isinstance(entry, str):
            entries.append((entry, {}))
        elif isinstance(entry, dict) and len(entry) == 1:
            ((name, options),) = entry.items()
            if not isinstance(options, dict):
                raise HarnessError(
                    f"backend 'onnxruntime': the options of provider {name!r} must be a mapping, e.g. "
                    "{CUDAExecutionProvider: {device_id: 0}}"
                )
            entries.append((str(name), {str(k): _option_text(v) for k, v in options.items()}))
        else:
            raise HarnessError(
                f"backend 'onnxruntime': providers entry {entry!r} must be a provider's name or one mapping of a name "
                "to its options, e.g. [{CUDAExecutionProvider: {device_id: 0}}, CPUExecutionProvider]"
            )
    return entries


def _option_text(value: Any) -> str:
    return ("1" if value else "0") if isinstance(value, bool) else str(value)


def device_of(provider: tuple[str, dict[str, str]]) -> tuple[str, int]:
    """Where a CUDA-based provider keeps its tensors: ("cuda", its device_id option, 0 by default)."""
    name, options = provider
    try:
        return "cuda", int(options.get("device_id", 0))
    except ValueError:
        raise HarnessError(f"backend 'onnxruntime': {name} device_id must be a GPU's number, e.g. 0") from None


def case_dims(model: PreparedModel, case: Case) -> dict[str, int]:
    """The size the case feeds for each named dynamic dimension of the model's inputs (ORT pins dims by name)."""
    plans = plan_inputs(model, case)
    dims: dict[str, int] = {}
    for info in model.inputs:
        for dim, size in zip(info.shape, plans[info.name].shape, strict=False):
            if isinstance(dim, str):
                dims.setdefault(dim, size)
    return dims


def graph_requested_by_default(
    providers: list[tuple[str, dict[str, str]]], asked: list[tuple[str, dict[str, str]]]
) -> bool:
    """Whether the session asks for a CUDA graph that the suite did not ask for itself (the backend's default)."""
    chosen = dict(providers).get("CUDAExecutionProvider", {}).get("enable_cuda_graph") == "1"
    return chosen and "enable_cuda_graph" not in dict(asked).get("CUDAExecutionProvider", {})


def with_cuda_options(
    providers: list[tuple[str, dict[str, str]]],
    defaults: dict[str, str] | None = None,
    forced: dict[str, str] | None = None,
) -> list[tuple[str, dict[str, str]]]:
    """``providers`` with the CUDA provider's options completed by ``defaults`` (where the suite set none) and
    overridden by ``forced``; the other providers as they are."""
    return [
        (name, {**(defaults or {}), **options, **(forced or {})} if name == "CUDAExecutionProvider" else options)
        for name, options in providers
    ]


def without_cuda_graph(providers: list[tuple[str, dict[str, str]]]) -> list[tuple[str, dict[str, str]]]:
    return with_cuda_options(providers, forced={"enable_cuda_graph": "0"})


class DeviceIO:
    """One session's inputs and outputs in device memory at fixed addresses, shared by every runner of the session:
    a captured CUDA graph replays on the addresses it was captured with, so a new runner copies its inputs into the
    buffers the first one allocated instead of binding new ones."""

    def __init__(self, session: Any, device: tuple[str, int]) -> None:
        self.session = session
        self.device = device
        self.binding: Any = None
        self.inputs: dict[str, Any] = {}  # name -> OrtValue the binding points at, kept alive with the session

    def bind(self, feeds: dict[str, np.ndarray]) -> Any:
        import onnxruntime as ort

        if self.binding is None:
            self.binding = self.session.io_binding()
            for name, value in feeds.items():
                self.inputs[name] = ort.OrtValue.ortvalue_from_numpy(value, *self.device)
                self.binding.bind_ortvalue_input(name, self.inputs[name])
            for output in self.session.get_outputs():
                self.binding.bind_output(output.name, *self.device)
            return self.binding
        for name, value in feeds.items():
            held = self.inputs.get(name)
            if held is None or tuple(held.shape()) != value.shape:
                raise HarnessError(
                    f"onnxruntime: input '{name}' {value.shape} differs from the shape this session was bound to "
                    f"({None if held is None else tuple(held.shape())}); a GPU session runs one shape per case"
                )
            held.update_inplace(value)
        return self.binding
