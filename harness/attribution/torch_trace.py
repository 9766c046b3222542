"""``torch.profiler`` events made into a :class:`~harness.attribution.record.LayerProfile`, one layer per module.

The profiling pass (``harness.backends.torch``) opens a ``record_function`` range named :func:`module_label` around
every module's forward (forward pre- and post-hooks) and one range :data:`ITERATION` around each inference, then
hands the profiler's CPU events here as plain :class:`Span` records, so this module needs no torch. A module's time
is its *self* time: on a GPU the CUDA kernel time of the operators that ran inside its range and not inside a
submodule's (the profiler's ``self_device_time_total``); on the CPU its range's duration less its submodules'.

Each module's layer names the ONNX nodes of the harness's own export that carry its path
(:func:`harness.attribution.names.module_path`: ``/layer1/layer1.0/conv/Conv`` belongs to ``layer1.0.conv``), so
a PyTorch profile and an ONNX Runtime or TensorRT profile of the same factory share node names. The exporter folds
an eval-mode BatchNorm into the convolution before it and leaves no node for the BatchNorm's module; a module with
no node of its own is therefore given the nodes of the module that ran just before it under the same parent (the
two layers then share those nodes, and the diff groups them together).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

import numpy as np

from harness.attribution.names import module_path
from harness.attribution.record import LayerProfile, LayerTime
from harness.core.errors import HarnessError
from harness.core.stats import nearest_rank

ITERATION = "harness::inference"  # the range around one inference
MODULE_PREFIX = "harness::module::"  # the range around one module's forward: prefix, path, separator, class name
_SEPARATOR = "::"
ROOT = "<model>"  # the layer name of the model's own forward (its path is the empty string)
_PRECISIONS = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16", "int8": "int8", "float64": "fp64"}


class Span(NamedTuple):
    """One CPU event of the profiler: a ``record_function`` range or an operator (``aten::conv2d``), times in us.

    ``device_us``: the self time of the GPU kernels the event launched (0 on the CPU and for ranges)."""

    name: str
    start_us: float
    end_us: float
    device_us: float = 0.0


class ModuleCall(NamedTuple):
    """What the hooks saw of a module's first call: its class, first input's shape and dtype."""

    kind: str
    shapes: str = ""
    dtype: str = ""


def module_label(path: str, kind: str) -> str:
    """The ``record_function`` name of a module's range: ``harness::module::layer1.conv::Conv2d``."""
    return f"{MODULE_PREFIX}{path}{_SEPARATOR}{kind}"


def _parse_label(name: str) -> tuple[str, str] | None:
    if not name.startswith(MODULE_PREFIX):
        return None
    path, _, kind = name.removeprefix(MODULE_PREFIX).rpartition(_SEPARATOR)
    return path, kind


def profile_from_spans(
    spans: Iterable[Span],
    onnx_nodes: Sequence[str] | None = None,
    on_device: bool = False,
    calls: Mapping[str, ModuleCall] | None = None,
) -> LayerProfile:
    """Per-module median self time per inference over the :data:`ITERATION` ranges in ``spans``.

    ``onnx_nodes``: the node names of the harness's ONNX export of the same factory (None: layers name no nodes).
    ``on_device``: times are the kernels' GPU time (a CUDA profile), else the CPU time of the ranges.
    ``calls``: module path -> :class:`ModuleCall`, for the layers' signatures and precisions.
    """
    ordered = sorted(spans, key=lambda s: (s.start_us, -s.end_us))
    iterations = [s for s in ordered if s.name == ITERATION]
    if not iterations:
        raise HarnessError(f"the PyTorch profile holds no inference (no '{ITERATION}' range); profile the case again")
    kinds: dict[str, str] = {}
    order: dict[str, int] = {}  # module path -> when it first ran: the order BatchNorm folding follows
    per_module: dict[str, np.ndarray] = {}
    e2e = []
    for index, iteration in enumerate(iterations):
        inside = [s for s in ordered if iteration.start_us <= s.start_us and s.end_us <= iteration.end_us]
        times = _self_times(inside, on_device)
        for path, (kind, ms) in times.items():
            kinds.setdefault(path, kind)
            order.setdefault(path, len(order))
            per_module.setdefault(path, np.zeros(len(iterations)))[index] += ms
        span_ms = (iteration.end_us - iteration.start_us) / 1e3
        e2e.append(sum(s.device_us for s in inside) / 1e3 if on_device else span_ms)
    nodes = _nodes_by_module(sorted(per_module, key=order.__getitem__), onnx_nodes)
    layers = [
        _layer(path, kinds[path], times, nodes.get(path, ()), calls)
        for path, times in per_module.items()
        if times.any()  # a container's range on a GPU: no kernel of its own
    ]
    notes: tuple[str, ...] = () if onnx_nodes is not None else ("no ONNX export to name nodes: layers are modules",)
    if on_device:
        notes += ("times are CUDA kernel times per module; end_to_end_ms is the kernels' sum (launch gaps excluded)",)
    return LayerProfile.of(
        "torch",
        layers,
        iterations=len(iterations),
        end_to_end_ms=nearest_rank(np.sort(e2e), 50),
        notes=notes,
    )


def _self_times(spans: Sequence[Span], on_device: bool) -> dict[str, tuple[str, float]]:
    """Module path -> (class name, self time in ms) within one inference; spans sorted by start, outer first."""
    out: dict[str, tuple[str, float]] = {}
    stack: list[tuple[str, str, float]] = []  # (path, kind, end_us) of the open module ranges

    def add(path: str, kind: str, ms: float) -> None:
        out[path] = (kind, out.get(path, (kind, 0.0))[1] + ms)

    for span in spans:
        while stack and span.start_us >= stack[-1][2]:
            stack.pop()
        label = _parse_label(span.name)
        if label is not None:
            path, kind = label
            add(path, kind, 0.0 if on_device else (span.end_us - span.start_us) / 1e3)
            if stack and not on_device:  # a submodule's time is not its parent's own
                parent, parent_kind, _ = stack[-1]
                add(parent, parent_kind, -(span.end_us - span.start_us) / 1e3)
            stack.append((path, kind, span.end_us))
        elif on_device and span.device_us and stack:
            path, kind, _ = stack[-1]
            add(path, kind, span.device_us / 1e3)
    return out


def _nodes_by_module(paths: Sequence[str], onnx_nodes: Sequence[str] | None) -> dict[str, tuple[str, ...]]:
    """Module path -> its nodes in the export; a leaf module without nodes shares those of the sibling before it
    (a container without nodes of its own, a ``Sequential``, has none to share)."""
    if onnx_nodes is None:
        return {}
    owned: dict[str, list[str]] = defaultdict(list)
    for node in onnx_nodes:
        path = module_path(node)
        if path is not None:
            owned[path].append(node)
    out: dict[str, tuple[str, ...]] = {}
    last_in_parent: dict[str, str] = {}  # parent path -> the last child that ran and has nodes
    for path in paths:
        parent = path.rpartition(".")[0] if path else None
        nodes = tuple(sorted(owned.get(path, ())))
        leaf = not any(other.startswith(f"{path}.") for other in paths) if path else False
        if not nodes and leaf and parent is not None and parent in last_in_parent:
            nodes = out[last_in_parent[parent]]  # folded into the module before it (Conv + BatchNorm)
        out[path] = nodes
        if nodes and parent is not None:
            last_in_parent[parent] = path
    return out


def _layer(
    path: str, kind: str, times: np.ndarray, nodes: tuple[str, ...], calls: Mapping[str, ModuleCall] | None
) -> LayerTime:
    ordered = np.sort(times)
    call = (calls or {}).get(path)
    return LayerTime(
        name=path or ROOT,
        nodes=nodes,
        kind=kind,
        # Rounded to the nanosecond: self times are differences of sums, and 1e-16 ms of float residue is no spread.
        time_ms=round(max(nearest_rank(ordered, 50), 0.0), 6),
        spread_ms=round(max(nearest_rank(ordered, 75) - nearest_rank(ordered, 25), 0.0) / 2, 6),
        precision=_PRECISIONS.get(call.dtype) if call else None,
        signature=f"{kind}({call.shapes})" if call and call.shapes else None,
    )
