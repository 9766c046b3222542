"""How the values of one input are drawn: an :class:`InputPlan` (shape, dtype, inclusive range, the rule that chose
it, a seed) and the rules that read the graph's hints (:func:`graph_rule`): masks are 0/1, indices stay inside the
table they index, everything else takes a default range. harness.models.inputs plans every input of a case with
these; the batch rewrite (harness.models.batch) feeds its test runs with them too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.models.graph import InputHint, looks_like_mask

DEFAULT_INT_RANGE = (0, 99)  # inclusive; integers that neither index a table nor look like a mask
DEFAULT_FLOAT_RANGE = (0.0, 1.0)  # uniform in [low, high)


@dataclass(frozen=True)
class InputPlan:
    """How one input of one case is generated: shape, dtype, the inclusive value range and why that range."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    low: float
    high: float  # inclusive for integers and masks; floats are uniform in [low, high)
    rule: str  # why these values, e.g. "indexes Gather 'word_embeddings' of 1000 rows"
    mask: bool = False  # 0/1 values: each row ones, then zeros (at least half ones)
    seed: int = 0

    def record(self) -> dict[str, Any]:
        """The form ``CaseResult.inputs`` stores (results.json, the report)."""
        return {"shape": list(self.shape), "dtype": self.dtype, "range": [_plain(self.low), _plain(self.high)],
                "rule": self.rule}  # fmt: skip

    def describe(self) -> str:
        values = f"{_plain(self.low)}..{_plain(self.high)}"
        return f"'{self.name}' ({self.dtype}{list(self.shape)}, values {values}: {self.rule})"

    def values(self) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        numpy_dtype = "float32" if self.dtype == "bfloat16" else self.dtype
        if self.mask:
            return _mask(self.shape, rng).astype(numpy_dtype)
        if self.dtype == "bool" or np.issubdtype(np.dtype(numpy_dtype), np.integer):
            drawn = rng.integers(int(self.low), int(self.high), size=self.shape, endpoint=True)
            return drawn.astype(numpy_dtype)
        return rng.uniform(self.low, self.high, size=self.shape).astype(numpy_dtype)


def graph_rule(name: str, dtype: str, hint: InputHint | None) -> tuple[float, float, str, bool]:
    """Rules 2-4 of harness.models.inputs.plan_inputs: what the input's name, dtype and place in the graph say."""
    integer = dtype == "bool" or (dtype != "bfloat16" and np.issubdtype(np.dtype(dtype), np.integer))
    if dtype == "bool":
        return 0, 1, "mask (bool): each row ones, then zeros", True
    if looks_like_mask(name) or (hint is not None and hint.kind == "mask"):
        why = "named like a mask" if looks_like_mask(name) else hint.why if hint else ""
        return 0, 1, f"mask ({why}): each row ones, then zeros", True
    if integer and hint is not None and hint.kind == "index" and hint.rows:
        return 0, hint.rows - 1, f"indexes Gather '{hint.node}' of {hint.rows} rows", False
    if integer:
        return *DEFAULT_INT_RANGE, "default for integers (indexes no table the graph shows)", False
    return *DEFAULT_FLOAT_RANGE, "default for floats, uniform", False


def _mask(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """1 for the first ``n`` positions of each row (``n`` between half and all of it), 0 after: what an attention
    mask of a padded batch looks like, with a different length per row. The row runs along the last axis longer
    than 1 (the sequence of ``[batch, seq]``, ``[batch, seq, 1]`` and ``[batch, 1, 1, seq]`` masks alike)."""
    long_axes = [i for i, size in enumerate(shape) if size > 1 and i > 0]
    if not long_axes:
        return np.ones(shape, dtype=np.int64)
    axis = long_axes[-1]
    moved = (*shape[:axis], *shape[axis + 1 :], shape[axis])
    length = shape[axis]
    ones = rng.integers((length + 1) // 2, length, size=moved[:-1], endpoint=True)
    mask = (np.arange(length) < ones[..., None]).astype(np.int64)
    return np.moveaxis(mask, -1, axis)


def _plain(value: float) -> float | int:
    """``3.0`` -> ``3`` so ranges read as the integers they are."""
    return int(value) if float(value).is_integer() else float(value)
