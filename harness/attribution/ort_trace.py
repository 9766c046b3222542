"""ONNX Runtime's profiler trace made into a :class:`~harness.attribution.record.LayerProfile`.

``SessionOptions.enable_profiling`` makes a session write a Chrome trace-event JSON file (``end_profiling()``): one
``"cat": "Session"`` event ``model_run`` per inference, and one ``"cat": "Node"`` event ``<node>_kernel_time`` per
node executed, with ``args.op_name``, ``args.provider`` and ``args.input_type_shape``; durations in microseconds.
The node names are those of the *optimized* graph, and ORT renames what it fuses (seen with onnxruntime 1.2x-1.3x on
the CPU provider):

- Conv + BatchNormalization (basic level) keeps the Conv's name and writes the BatchNormalization's output tensor;
- Conv + activation (extended level) becomes a ``FusedConv`` named after the Conv, writing the activation's output;
- the NCHWc layout (level ``all``) names each blocked Conv after the tensor it stands for, ``<tensor>_nchwc``, and
  inserts ``ReorderInput`` / ``ReorderOutput`` nodes that implement no node of the model.

:func:`node_origins` recovers the model's nodes behind each optimized node from the two graphs (the session saves
its optimized graph with ``optimized_model_filepath``): first by the tensors an optimized node writes under their
original names, then by name (ORT's suffixes removed), and last by dataflow: a node of the model that owns none of
them was fused with a neighbour whose connecting tensor no longer exists in the optimized graph.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from harness.attribution.record import LayerProfile, LayerTime
from harness.core.errors import HarnessError
from harness.core.stats import nearest_rank

KERNEL_SUFFIX = "_kernel_time"
# Nodes ORT inserts to change a tensor's layout or device: they write the model's tensors but compute none of them.
LAYOUT_OPS = frozenset({"ReorderInput", "ReorderOutput", "MemcpyToHost", "MemcpyFromHost"})
# A QDQ node unit (ORT's QDQ selectors; TensorRT's Q/DQ fusion likewise) is the DequantizeLinear nodes on a node's
# inputs, the node, and the QuantizeLinear nodes on its outputs: a Q fuses with what it quantizes.
QUANTIZE_OPS = frozenset({"QuantizeLinear"})
# Suffixes ORT's optimizers append to the names of what they create: the NCHWc transformer, node-name deduplication,
# and the copies of a DequantizeLinear read by two node units (``EnsureUniqueDQForNodeUnit``).
_GENERATED_SUFFIX = re.compile(r"(_nchwc|_token_\d+|/duplicated(_\d+)?)+$")
_PRECISIONS = {
    "float": "fp32",
    "float16": "fp16",
    "bfloat16": "bf16",
    "int8": "int8",
    "uint8": "int8",
    "double": "fp64",
    "int32": "int32",
}


class GraphNode(NamedTuple):
    """One node of an ONNX graph, as plain strings (from ``onnx.NodeProto``: name, op_type, input, output)."""

    name: str
    op_type: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


def node_origins(original: Sequence[GraphNode], optimized: Sequence[GraphNode]) -> dict[str, tuple[str, ...]]:
    """Optimized node name -> the sorted names of the model's nodes it implements (``()`` for layout nodes)."""
    producer = {t: node.name for node in original for t in node.outputs if t}
    consumers: dict[str, list[str]] = defaultdict(list)
    for node in original:
        for t in node.inputs:
            if t:
                consumers[t].append(node.name)
    by_name = {node.name: node for node in original}
    owner: dict[str, str] = {}  # original node -> optimized node

    def claim(original_name: str | None, optimized_name: str) -> None:
        if original_name is not None and original_name not in owner:
            owner[original_name] = optimized_name

    for node in optimized:  # the tensors a fused node writes keep the names of the model's tensors
        if node.op_type not in LAYOUT_OPS:
            for t in node.outputs:
                claim(producer.get(t), node.name)
    for node in optimized:  # then the names: kept by most fusions, or "<tensor>_nchwc"
        if node.op_type in LAYOUT_OPS:
            continue
        stem = _GENERATED_SUFFIX.sub("", node.name)
        for candidate in (node.name, stem):
            claim(candidate if candidate in by_name else producer.get(candidate), node.name)
    _follow_fusions(original, owner, producer, consumers, _tensors(optimized))

    implemented: dict[str, list[str]] = {node.name: [] for node in optimized}
    for original_name, optimized_name in owner.items():
        implemented[optimized_name].append(original_name)
    for node in optimized:  # a copy ORT made of a model node computes that node too (two layers share its name)
        stem = _GENERATED_SUFFIX.sub("", node.name)
        if not implemented[node.name] and node.op_type not in LAYOUT_OPS and stem != node.name and stem in by_name:
            implemented[node.name].append(stem)
    return {name: tuple(sorted(nodes)) for name, nodes in implemented.items()}


def _tensors(nodes: Iterable[GraphNode]) -> set[str]:
    return {t for node in nodes for t in (*node.inputs, *node.outputs) if t}


def _follow_fusions(
    original: Sequence[GraphNode],
    owner: dict[str, str],
    producer: Mapping[str, str],
    consumers: Mapping[str, list[str]],
    surviving: set[str],
) -> None:
    """Give each unclaimed node the owner of a neighbour it was fused with: a tensor between them that the optimized
    graph no longer has and that only the two of them touch (a fusion removes an intermediate with one consumer; a
    tensor with more readers must exist, maybe renamed by a layout change, so it links nothing). Consumers are
    followed to the end before any producer, because ORT names a fused chain after its last node's output
    (``<tensor>_nchwc``): in Conv -> BatchNormalization -> Relu the Conv must reach the Relu's owner through the
    BatchNormalization. A residual Add fused into the convolution that feeds it (NCHWc's "Sum" input) is reached
    from the Add through that convolution's single-reader output, not through the shortcut."""

    def fused(t: str) -> bool:
        return bool(t) and t not in surviving and len(consumers.get(t, [])) == 1

    unclaimed = [node for node in original if node.name not in owner]
    while unclaimed:
        before = len(owner)
        for node in reversed(unclaimed):  # a chain's last node first, so one pass carries the owner up the chain
            if node.op_type in QUANTIZE_OPS:  # a quantization ends the node that computes it (QLinearConv's output)
                found = [producer[t] for t in node.inputs if fused(t) and producer.get(t) in owner]
            else:
                found = [consumers[t][0] for t in node.outputs if fused(t) and consumers[t][0] in owner]
            if found:
                owner[node.name] = owner[found[0]]
        unclaimed = [node for node in unclaimed if node.name not in owner]
        if len(owner) == before:
            for node in unclaimed:
                fused_with = [producer[t] for t in node.inputs if fused(t) and producer.get(t) in owner]
                if fused_with:
                    owner[node.name] = owner[fused_with[0]]
                    break  # one producer link, then consumers again
            else:
                return
            unclaimed = [node for node in unclaimed if node.name not in owner]


def read_trace(path: Path) -> list[dict[str, Any]]:
    """The events of a trace file ORT wrote; a one-line :class:`HarnessError` when it is not one."""
    try:
        events = json.loads(Path(path).read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HarnessError(f"{path}: not a readable ONNX Runtime profile ({exc}); profile the case again") from None
    if not isinstance(events, list):
        raise HarnessError(f"{path}: an ONNX Runtime profile is a JSON list of trace events; profile the case again")
    return [e for e in events if isinstance(e, dict)]


def profile_from_trace(
    events: Sequence[Mapping[str, Any]],
    origins: Mapping[str, tuple[str, ...]] | None = None,
    skip_runs: int = 0,
) -> LayerProfile:
    """Per-node median time per inference over the trace's ``model_run`` events after the first ``skip_runs``.

    ``origins`` maps optimized node names to the model's nodes (:func:`node_origins`); without it each node stands
    for the model node of its own name. A node that did not run in some inference (a branch of an ``If``) counts
    0 ms there, so medians stay per inference.
    """
    runs = sorted(
        ((int(e["ts"]), int(e["ts"]) + int(e["dur"])) for e in events if _is(e, "Session", "model_run")),
        key=lambda run: run[0],
    )[skip_runs:]
    if not runs:
        raise HarnessError("the ONNX Runtime profile holds no inference (no 'model_run' event) after the warm-up")
    starts = np.array([start for start, _ in runs])
    per_run: dict[str, np.ndarray] = {}
    facts: dict[str, Mapping[str, Any]] = {}
    for event in events:
        name = str(event.get("name", ""))
        if event.get("cat") != "Node" or not name.endswith(KERNEL_SUFFIX):
            continue
        ts = int(event["ts"])
        index = int(np.searchsorted(starts, ts, side="right")) - 1
        if index < 0 or ts > runs[index][1]:
            continue  # a warm-up inference
        node = name.removesuffix(KERNEL_SUFFIX)
        per_run.setdefault(node, np.zeros(len(runs)))[index] += float(event["dur"]) / 1e3
        facts.setdefault(node, event.get("args") or {})
    layers = [_layer(node, times, facts[node], origins) for node, times in per_run.items()]
    e2e = np.sort([(end - start) / 1e3 for start, end in runs])
    return LayerProfile.of("onnxruntime", layers, iterations=len(runs), end_to_end_ms=nearest_rank(e2e, 50))


def _is(event: Mapping[str, Any], category: str, name: str) -> bool:
    return event.get("cat") == category and event.get("name") == name


def _layer(
    node: str, times: np.ndarray, args: Mapping[str, Any], origins: Mapping[str, tuple[str, ...]] | None
) -> LayerTime:
    ordered = np.sort(times)
    shapes = [_shape(item) for item in args.get("input_type_shape") or []]
    op = str(args.get("op_name") or "")
    return LayerTime(
        name=node,
        nodes=(node,) if origins is None else origins.get(node, ()),
        kind=op,
        time_ms=nearest_rank(ordered, 50),
        spread_ms=(nearest_rank(ordered, 75) - nearest_rank(ordered, 25)) / 2,
        precision=_precision(args.get("input_type_shape") or []),
        signature=f"{op}({', '.join(s for s, _ in shapes)})" if shapes else None,
    )


def _shape(item: Any) -> tuple[str, str]:
    """``{"float": [1, 3, 224, 224]}`` -> (``"1x3x224x224"``, ``"float"``)."""
    if not isinstance(item, dict) or not item:
        return "?", ""
    dtype, dims = next(iter(item.items()))
    return "x".join(str(d) for d in dims) if dims else "scalar", str(dtype)


def _precision(inputs: Sequence[Any]) -> str | None:
    """The precision of the node's first input, the data it computes on (weights may be stored otherwise)."""
    if not inputs:
        return None
    return _PRECISIONS.get(_shape(inputs[0])[1])
