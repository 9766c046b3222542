"""fp16 and bf16 recipes: weights and compute in 16-bit floats, graph inputs/outputs kept fp32 by default.

The conversion is onnxruntime's maintained converter (``onnxruntime.transformers.float16``): it retypes tensors and
initializers, inserts the Casts around blocked ops and, with ``keep_io_types``, at the graph boundary. Ops that lose
accuracy in 16 bits (softmax, normalizations, reductions, exp/log/pow) stay fp32 through the block list. bf16 is the
same graph with the 16-bit type switched to bfloat16: the converter makes the placement decisions, and the weights
are rounded from their fp32 values (not from the fp16 ones) with ml_dtypes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

# Numerically sensitive ops kept in fp32 by default, on top of onnxruntime's own block list.
SENSITIVE_OPS = (
    "Softmax",
    "LogSoftmax",
    "LayerNormalization",
    "InstanceNormalization",
    "GroupNormalization",
    "ReduceMean",
    "ReduceSum",
    "ReduceSumSquare",
    "ReduceL2",
    "ReduceLogSumExp",
    "Exp",
    "Log",
    "Pow",
    "Sqrt",
    "Reciprocal",
    "Erf",
    "Softplus",
)


def to_float16(model: onnx.ModelProto, options: dict[str, Any]) -> onnx.ModelProto:
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    block_ops = sorted(set(DEFAULT_OP_BLOCK_LIST) | set(options.get("block_ops", SENSITIVE_OPS)))
    converted = convert_float_to_float16(
        model,
        keep_io_types=bool(options.get("keep_io_types", True)),
        op_block_list=block_ops,
        node_block_list=list(options.get("block_nodes", [])),
        disable_shape_infer=False,
    )
    return topologically_sorted(without_repeated_casts(converted))


def without_repeated_casts(model: onnx.ModelProto) -> onnx.ModelProto:
    """One Cast where the converter inserted several alike. Before onnxruntime 1.32 (onnxruntime-gpu 1.31 is the newest
    GPU build) the converter adds a Cast in front of every blocked node a 16-bit tensor feeds, each with the same node
    and output names, so a tensor read by two blocked nodes (a BERT layer's residual into LayerNorm and Add) gives an
    invalid model ("two nodes with same node name"). Alike means same input, same target type, same output: one of
    them computes what all of them would."""
    graph = model.graph
    kept: list[onnx.NodeProto] = []
    casts: set[tuple[str, str, int]] = set()
    for node in graph.node:
        if node.op_type == "Cast" and len(node.input) == 1 and len(node.output) == 1:
            to = next((a.i for a in node.attribute if a.name == "to"), -1)
            key = (node.input[0], node.output[0], to)
            if key in casts:
                continue
            casts.add(key)
        kept.append(node)
    if len(kept) < len(graph.node):
        del graph.node[:]
        graph.node.extend(kept)
    return model


def topologically_sorted(model: onnx.ModelProto) -> onnx.ModelProto:
    """The converter appends the Casts it inserts at the end of the node list; ONNX (and TensorRT's parser) want
    every node after the nodes that feed it. Stable: nodes keep their order where the data flow allows."""
    graph = model.graph
    available = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending = list(graph.node)
    ordered: list[onnx.NodeProto] = []
    while pending:
        ready = [n for n in pending if all(x in available for x in n.input)]
        if not ready:  # a cycle or a dangling input: leave the rest as it was, the checker will say what is wrong
            ordered.extend(pending)
            break
        for node in ready:
            ordered.append(node)
            available.update(node.output)
        ready_ids = {id(n) for n in ready}
        pending = [n for n in pending if id(n) not in ready_ids]
    del graph.node[:]
    graph.node.extend(ordered)
    return model


def to_bfloat16(model: onnx.ModelProto, options: dict[str, Any]) -> onnx.ModelProto:
    """The fp16 graph with every float16 type, Cast and initializer switched to bfloat16."""
    import ml_dtypes

    graph = model.graph
    fp32_weights = {i.name: numpy_helper.to_array(i) for i in graph.initializer if i.data_type == TensorProto.FLOAT}
    converted = to_float16(model, options)
    for graph in _graphs(converted.graph):
        for init in graph.initializer:
            if init.data_type == TensorProto.FLOAT16:
                source = fp32_weights.get(init.name)
                values = source if source is not None else numpy_helper.to_array(init).astype(np.float32)
                init.CopyFrom(_bf16_tensor(values.astype(ml_dtypes.bfloat16), init.name))
        for node in graph.node:
            for attr in node.attribute:
                if node.op_type == "Cast" and attr.name == "to" and attr.i == TensorProto.FLOAT16:
                    attr.i = TensorProto.BFLOAT16
                if attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == TensorProto.FLOAT16:
                    values = numpy_helper.to_array(attr.t).astype(np.float32).astype(ml_dtypes.bfloat16)
                    attr.t.CopyFrom(_bf16_tensor(values, attr.t.name))
        for value_info in [*graph.input, *graph.output, *graph.value_info]:
            if value_info.type.tensor_type.elem_type == TensorProto.FLOAT16:
                value_info.type.tensor_type.elem_type = TensorProto.BFLOAT16
    return converted


def _bf16_tensor(values: np.ndarray, name: str) -> onnx.TensorProto:
    tensor = onnx.TensorProto(name=name, data_type=TensorProto.BFLOAT16, dims=list(values.shape))
    tensor.raw_data = np.ascontiguousarray(values).view(np.uint16).tobytes()
    return tensor


def _graphs(graph: onnx.GraphProto) -> list[onnx.GraphProto]:
    """The graph and every subgraph (If / Loop / Scan bodies)."""
    out = [graph]
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                out.extend(_graphs(attr.g))
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for sub in attr.graphs:
                    out.extend(_graphs(sub))
    return out
