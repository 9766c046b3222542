"""int8 and fp8 recipes: explicit quantization (Q/DQ nodes) with calibration, made by onnxruntime's quantize_static.

What TensorRT (strongly typed: 11.x, TensorRT-RTX) builds from, and what ONNX Runtime runs with int8 kernels:
QDQ format, symmetric activations and weights (zero point 0), weights per output channel, and biases left in float
(``QuantizeBias: False``: TensorRT rejects the int32 bias DequantizeLinear onnxruntime makes by default).
Numerically sensitive ops (softmax, normalizations, reductions) are excluded, so their inputs and outputs stay float.
fp8 is the same recipe with E4M3 (``QuantType.QFLOAT8E4M3FN``); onnxruntime computes float8 scales only with its
Distribution calibrator, so fp8 uses that whatever ``method`` says (the record names it).
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path
from typing import Any

import onnx

from harness.core.errors import HarnessError
from harness.models.batch import fixed_batch_of
from harness.recipes.calibration import CalibrationData
from harness.recipes.floats import SENSITIVE_OPS as FLOAT_SENSITIVE_OPS
from harness.suite.recipe_keys import CALIBRATION_METHODS

# Kept in float: what the float recipes keep in fp32 (harness.recipes.floats), plus the bounded activations, whose
# steep regions int8 resolves poorly.
SENSITIVE_OPS = (*FLOAT_SENSITIVE_OPS, "Sigmoid", "Tanh")


def quantize(
    model: onnx.ModelProto, precision: str, options: dict[str, Any], method: str, calibration: CalibrationData
) -> onnx.ModelProto:
    """Q/DQ model from a float model; ``precision`` is int8 or fp8, ``method`` one of minmax / entropy / percentile."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    if method not in CALIBRATION_METHODS:
        raise HarnessError(
            f"calibration.method: unknown method '{method}'; use one of {', '.join(CALIBRATION_METHODS)}"
        )
    if calibration.count == 0:
        raise HarnessError("calibration: no samples to calibrate with; give calibration.samples >= 1")

    # A model pinned to one batch size (its graph could not be made dynamic) accepts only batches of that size.
    batch = fixed_batch_of(model) or 1

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._feeds = iter(calibration.batches(batch))

        def get_next(self) -> dict[str, Any] | None:
            return next(self._feeds, None)

    qtype = {"int8": QuantType.QInt8, "fp8": QuantType.QFLOAT8E4M3FN}[precision]
    excluded_ops = set(options.get("exclude_ops", SENSITIVE_OPS))
    exclude = [n.name for n in model.graph.node if n.op_type in excluded_ops]
    exclude += list(options.get("exclude_nodes", []))
    extra: dict[str, Any] = {
        "ActivationSymmetric": bool(options.get("symmetric_activations", True)),
        "WeightSymmetric": True,
        "QuantizeBias": False,
    }
    if method == "percentile":
        extra["CalibPercentile"] = float(options.get("percentile", 99.999))
    calibrate = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[method]
    if precision == "fp8":  # onnxruntime derives float8 scales only from its Distribution calibrator
        calibrate = CalibrationMethod.Distribution
    # The calibrators print progress on stdout, and their ONNX Runtime sessions log warnings about the model (unused
    # initializers, ...) to stderr: keep the terminal to the harness's own lines; a failure still raises.
    import onnxruntime

    onnxruntime.set_default_logger_severity(3)
    with tempfile.TemporaryDirectory(prefix="harness-quant-") as tmp, contextlib.redirect_stdout(io.StringIO()):
        source = Path(tmp) / "float.onnx"
        target = Path(tmp) / "qdq.onnx"
        onnx.save(model, str(source))
        quantize_static(
            str(source),
            str(target),
            Reader(),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(options["op_types"]) if "op_types" in options else None,
            per_channel=bool(options.get("per_channel", True)),
            activation_type=qtype,
            weight_type=qtype,
            nodes_to_exclude=exclude,
            calibrate_method=calibrate,
            extra_options=extra,
        )
        quantized = onnx.load(str(target))
    return _float_inputs_for(quantized, {n.name for n in model.graph.node if n.op_type in excluded_ops})


def _float_inputs_for(model: onnx.ModelProto, excluded: set[str]) -> onnx.ModelProto:
    """Feed excluded (sensitive) nodes the float tensor, not its Q/DQ'd copy.

    quantize_static keeps an excluded node's own output float, but the output of the quantized op in front of it
    still gets a Q/DQ pair, so e.g. a softmax would see int8-rounded logits. Bypass such pairs; drop them when
    nothing else reads them.
    """
    graph = model.graph
    producers = {out: node for node in graph.node for out in node.output}
    for node in graph.node:
        if node.name not in excluded:
            continue
        for i, name in enumerate(node.input):
            dq = producers.get(name)
            q = producers.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
            if q is not None and q.op_type == "QuantizeLinear":
                node.input[i] = q.input[0]
    used = {x for n in graph.node for x in n.input} | {o.name for o in graph.output}
    changed = True
    while changed:  # remove Q/DQ nodes whose outputs nobody reads any more
        dead = [n for n in graph.node if n.op_type in _QDQ and not any(o in used for o in n.output)]
        changed = bool(dead)
        for n in dead:
            graph.node.remove(n)
        used = {x for n in graph.node for x in n.input} | {o.name for o in graph.output}
    live = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(live)
    return model


_QDQ = ("QuantizeLinear", "DequantizeLinear")
