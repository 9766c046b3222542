"""A case's inputs: the concrete shape of each input at the case's batch size and shape set, and the values fed.

Inputs are generated from what the graph says about them (:func:`plan_inputs`, harness.models.graph and
harness.models.values): indices stay inside the table they index, masks are 0/1, and the batch axis is always the
case's batch size.
"""

from __future__ import annotations

import math
import re
import zlib

import numpy as np

from harness.core.errors import HarnessError
from harness.core.messages import condensed
from harness.models.batch import BATCH_DIM
from harness.models.graph import InputHint, TensorInfo, inputs_feeding
from harness.models.sources import PreparedModel, load_onnx
from harness.models.values import InputPlan, graph_rule
from harness.suite.schema import Case, InputSpec

# The batch axis of an input is its leading dimension when that is dynamic, whatever its name (batch, N, batch_size,
# unk__0, or none); a name that leads any input is the batch wherever it appears. A case's batch size always sizes
# it: a shape set may not, so cases -b1 and -b4 never feed the same batch.


def batch_names(inputs: tuple[TensorInfo, ...]) -> frozenset[str]:
    """The names of the batch axis: the named dynamic dims that lead an input, and ``batch``."""
    return frozenset({BATCH_DIM} | {i.shape[0] for i in inputs if i.shape and isinstance(i.shape[0], str)})


def check_batch(model: PreparedModel, case: Case) -> None:
    """A model pinned to one batch runs only at that batch: other batch sizes are the suite's mistake."""
    if model.fixed_batch is not None and case.batch_size != model.fixed_batch:
        raise HarnessError(
            f"{case.id}: model '{case.model.name}' runs only at batch {model.fixed_batch} ({model.batch_note}); "
            f"set batch_sizes: [{model.fixed_batch}] for {model_key(case)}, or export it with a dynamic batch axis"
        )


def model_key(case: Case) -> str:
    """``models[i]``: where the case's model sits in its suite file (the key path error messages name)."""
    names = [m.name for m in case.suite.models]
    return f"models[{names.index(case.model.name)}]" if case.model.name in names else f"model '{case.model.name}'"


def input_shape(
    info: TensorInfo, override: InputSpec | None, case: Case, batch_axis: frozenset[str] = frozenset({BATCH_DIM})
) -> tuple[int, ...]:
    """Concrete shape for one input in one case: the batch axis from the case, named dims from its shape set.

    Without an override, the input's leading dynamic dim and every dim named in ``batch_axis`` take the case's batch
    size. An ``inputs.NAME.shape`` override is taken as written: ``batch`` there is the batch axis, names come from
    the shape set, numbers stay. A shape set that sizes the batch axis, or an override that leaves a batched input
    without ``batch``, is refused: the case's batch size would no longer be the batch fed.
    """
    dims = case.dims
    where = f"{model_key(case)}.inputs.{info.name}.shape"
    if override and override.shape:
        template: tuple[int | str | None, ...] = override.shape
        batch_at = {i for i, d in enumerate(template) if d == BATCH_DIM}
        if not batch_at and info.shape and not isinstance(info.shape[0], int) and len(case.model.batch_sizes) > 1:
            raise HarnessError(
                f"{case.id}: {where} has no 'batch' entry, so every batch size would feed the same shape; "
                "write 'batch' where the batch axis is"
            )
    else:
        template = info.shape
        batch_at = {i for i, d in enumerate(template) if (i == 0 and not isinstance(d, int)) or d in batch_axis}
    out: list[int] = []
    for i, dim in enumerate(template):
        if isinstance(dim, int):
            out.append(dim)
        elif i in batch_at:
            if isinstance(dim, str) and dim in dims:
                raise HarnessError(
                    f"{case.id}: shape set '{case.shape_label}' sets '{dim}', the batch axis of model "
                    f"'{case.model.name}' (input '{info.name}' leads with it); remove '{dim}' from "
                    f"shapes.{case.shape_label} and choose the batch with batch_sizes"
                )
            out.append(case.batch_size)
        elif isinstance(dim, str) and dim in dims:
            out.append(dims[dim])
        else:
            shown = dim if dim is not None else f"#{i}"
            raise HarnessError(
                f"{case.id}: input '{info.name}' has dynamic dimension '{shown}'; give its size in the suite with "
                f"shapes: {{LABEL: {{{shown}: SIZE}}}} or inputs: {{{info.name}: {{shape: [...]}}}}"
            )
    return tuple(out)


# -- input values ----------------------------------------------------------------------------------------------------
def plan_inputs(model: PreparedModel, case: Case) -> dict[str, InputPlan]:
    """How every input of ``case`` is generated, decided from the graph before the user has to say anything.

    Per input, the first rule that applies:

    1. ``models[i].inputs.NAME.range: [low, high]`` from the suite, **inclusive** for integers (``[0, 1]`` gives 0s
       and 1s), uniform in ``[low, high)`` for floats;
    2. a mask (bool, named like ``*mask*``, or used as a condition by the graph): 0/1, each row a run of ones
       (at least half of it, like real padding) then zeros;
    3. an integer input that indexes a Gather (directly or through Cast/Reshape/Unsqueeze/... that keep its values):
       ``0 .. rows - 1`` of the smallest table it indexes (the Gather's axis sets which dimension counts);
    4. otherwise integers ``0..99``, floats uniform in ``[0, 1)``.
    """
    check_batch(model, case)
    unknown = set(case.model.inputs) - {i.name for i in model.inputs}
    if unknown:
        raise HarnessError(
            f"{case.id}: the suite sets inputs {sorted(unknown)} but the model's inputs are "
            f"{[i.name for i in model.inputs]}; fix the names under 'inputs'"
        )
    axis = batch_names(model.inputs)
    plans: dict[str, InputPlan] = {}
    for info in model.inputs:
        override = case.model.inputs.get(info.name)
        shape = input_shape(info, override, case, axis)
        dtype = (override.dtype if override and override.dtype else None) or info.dtype
        seed = zlib.crc32(f"{case.model.name}:{info.name}:{shape}".encode())
        low, high, rule, mask = _value_rule(info.name, dtype, override, model.hints.get(info.name), case)
        plans[info.name] = InputPlan(info.name, shape, dtype, low, high, rule, mask, seed)
    return plans


def generate_inputs(
    model: PreparedModel, case: Case, plans: dict[str, InputPlan] | None = None
) -> dict[str, np.ndarray]:
    """Deterministic inputs (see :func:`plan_inputs`): the same case always gets the same values."""
    plans = plans if plans is not None else plan_inputs(model, case)
    return {name: plan.values() for name, plan in plans.items()}


def _value_rule(
    name: str, dtype: str, override: InputSpec | None, hint: InputHint | None, case: Case
) -> tuple[float, float, str, bool]:
    """(low, high, rule, is_mask) for one input; see :func:`plan_inputs` for the order of the rules."""
    integer = dtype == "bool" or (dtype != "bfloat16" and np.issubdtype(np.dtype(dtype), np.integer))
    if override and override.range:
        low, high = override.range
        key = f"{model_key(case)}.inputs.{name}.range"
        if integer:
            low, high = math.ceil(low), math.floor(high)
            if low > high:
                raise HarnessError(f"{case.id}: {key} {list(override.range)} holds no integer; widen it")
        return low, high, f"suite range ({key}, inclusive)" if integer else f"suite range ({key})", False
    return graph_rule(name, dtype, hint)


def rejected_inputs(model: PreparedModel, case: Case, backend: str, exc: BaseException) -> str:
    """One line for a backend that failed while running the generated inputs: the cause, the inputs that feed the
    failing node (every input when the message names none), the values fed, and the suite key that changes them."""
    cause = condensed(exc)
    try:
        plans = plan_inputs(model, case)
    except HarnessError:
        return f"{case.id}: {backend} failed while running: {cause}"
    found = re.search(r"node\. Name:'([^']*)'", str(exc))
    suspects = list(plans)
    if found:
        feeding = inputs_feeding(load_onnx(model.path), found.group(1))
        suspects = [n for n in suspects if n in feeding] or suspects
    integer = [n for n in suspects if plans[n].dtype != "bool" and "int" in plans[n].dtype]
    suspects = integer or suspects
    fed = "; ".join(plans[n].describe() for n in suspects)
    keys = " or ".join(f"{model_key(case)}.inputs.{n}.range" for n in suspects[:3])
    return (
        f"{case.id}: {backend} rejected the generated inputs: {cause}; fed {fed}; if the values are out of what the "
        f"model accepts, set {keys}: [low, high] (inclusive) in the suite"
    )
