"""What a suite file holds, once read: a :class:`Suite` of :class:`ModelSpec` entries, and the matrix of
:class:`Case` objects it expands to (precision x batch size x named shape set x workspace).

The keys each level of the file accepts are named here; reading and checking the YAML is harness.suite.load.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.core.units import format_size
from harness.suite.problems import is_number
from harness.suite.recipe_keys import CalibrationSpec

PRECISIONS = ("fp32", "tf32", "fp16", "bf16", "int8", "fp8")
INPUT_DTYPES = ("float32", "float16", "bfloat16", "int64", "int32", "int8", "uint8", "bool")
SUITE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
SHAPE_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.]*$")  # labels go in case ids
# A model's ``torch:`` source, "package.module:factory"; harness.models.sources finds and calls it.
TORCH_FACTORY = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")

SUITE_KEYS = (
    "suite",
    "description",
    "models",
    "precisions",
    "batch_sizes",
    "shapes",
    "tolerance",
    "measure",
    "backends",
    "workspaces",
    "calibration",
    "recipes",
    "accuracy",
    "reference_backend",
)
MODEL_KEYS = (
    "name",
    "path",
    "onnx_zoo",
    "torch",
    "inputs",
    "precisions",
    "batch_sizes",
    "shapes",
    "tolerance",
    "workspaces",
    "weights",
    "calibration",
    "recipes",
    "accuracy",
)
MODEL_SOURCES = ("path", "onnx_zoo", "torch")
INPUT_KEYS = ("shape", "dtype", "range")
MEASURE_KEYS = ("warmup_ms", "min_duration_ms", "min_iterations", "max_duration_ms", "trials")


@dataclass(frozen=True)
class MeasureSpec:
    """How long to measure, trtexec style: warm up by time, then run until both minimums are met."""

    warmup_ms: float = 200.0
    min_duration_ms: float = 1000.0
    min_iterations: int = 20
    max_duration_ms: float = 60_000.0  # a hard stop for very slow cases, checked after min_iterations
    # Independent trials (fresh runner and warm-up each) that share the durations and iteration counts above;
    # the gate compares per-trial values (harness.measure.trials, harness.judge.gate).
    trials: int = 5


@dataclass(frozen=True)
class InputSpec:
    """User overrides for one model input; ``None`` fields are derived from the ONNX signature."""

    shape: tuple[int | str, ...] | None = None  # ints, "batch", or a dim name resolved from the shape set
    dtype: str | None = None
    range: tuple[float, float] | None = None  # [low, high] of generated values, both ends included


@dataclass(frozen=True)
class ModelSpec:
    name: str
    source: str  # one of MODEL_SOURCES
    location: str  # absolute file path for "path", zoo model name for "onnx_zoo", "module:factory" for "torch"
    inputs: dict[str, InputSpec]
    precisions: tuple[str, ...]
    batch_sizes: tuple[int, ...]
    shapes: dict[str, dict[str, int]]  # label -> {dim name: size}; empty means the model's own static shape
    tolerance: dict[str, float]  # metric name (or "default") -> allowed relative change, 0.10 == 10%
    # Memory-pool (workspace) limits in bytes to sweep, an axis like batch size; empty: the backend's setting.
    workspaces: tuple[int, ...] = ()
    # Precision recipes (harness.suite.recipe_keys): "random:SEED" replaces constant placeholder weights;
    # calibration for int8/fp8; recipe options and accuracy tolerance overrides per precision.
    weights: str | None = None
    calibration: CalibrationSpec | None = None
    recipes: dict[str, dict[str, Any]] = field(default_factory=dict)
    accuracy: dict[str, dict[str, float]] = field(default_factory=dict)
    # Where the model was written: the suite file as it was named to load_suite, and the line of its source key.
    # Checks that need a later stage (is the zoo model there? can the torch factory's module be found?) run after
    # loading (harness.models.sources.check_sources) and name the place with these; a torch factory's module is
    # looked for in the folders above the suite file too.
    suite_file: Path | None = field(default=None, compare=False)
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Suite:
    name: str
    path: Path
    description: str
    models: tuple[ModelSpec, ...]
    measure: MeasureSpec
    backends: dict[str, dict[str, Any]]  # backend name -> options for that backend
    reference_backend: str | None = None  # where the fp32 accuracy reference runs; None: the case's backend

    def cases(self) -> list[Case]:
        """Expand the matrix in a stable order: model, precision, batch size, shape set, workspace."""
        out: list[Case] = []
        for model in self.models:
            labels: list[str | None] = list(model.shapes) or [None]
            workspaces: list[int | None] = list(model.workspaces) or [None]
            for precision in model.precisions:
                for batch in model.batch_sizes:
                    for label in labels:
                        for workspace in workspaces:
                            out.append(
                                Case(
                                    suite=self,
                                    model=model,
                                    precision=precision,
                                    batch_size=batch,
                                    shape_label=label,
                                    workspace_bytes=workspace,
                                )
                            )
        return out


@dataclass(frozen=True)
class Case:
    """One cell of the matrix: one pytest item, one result record, one baseline entry."""

    suite: Suite = field(repr=False)
    model: ModelSpec
    precision: str
    batch_size: int
    shape_label: str | None = None
    workspace_bytes: int | None = None  # memory-pool limit from the suite's workspaces axis

    @property
    def id(self) -> str:
        parts = [self.model.name, self.precision, f"b{self.batch_size}"]
        if self.shape_label:
            parts.append(self.shape_label)
        if self.workspace_bytes is not None:
            parts.append(f"ws{format_size(self.workspace_bytes)}")
        return "-".join(parts)

    @property
    def dims(self) -> dict[str, int]:
        """Sizes for the model's named dynamic dimensions in this case."""
        return dict(self.model.shapes.get(self.shape_label or "", {}))

    def params(self) -> dict[str, Any]:
        return {
            "suite": self.suite.name,
            "model": self.model.name,
            "precision": self.precision,
            "batch_size": self.batch_size,
            "shape": self.shape_label,
            "dims": self.dims,
            **({"workspace_bytes": self.workspace_bytes} if self.workspace_bytes is not None else {}),
        }


MEASURE_COUNTS = ("min_iterations", "trials")


def measure_value_problem(name: str, value: Any) -> str | None:
    """What is wrong with ``value`` for the measure setting ``name`` (None when nothing): durations are finite
    milliseconds (``max_duration_ms`` above zero), counts whole numbers of at least 1. Shared by the suite's
    ``measure:`` section and the command-line overrides, so both refuse ``nan``, ``.inf`` and ``-5`` alike."""
    if not is_number(value) or not math.isfinite(value):
        return f"expected a finite number, got {value!r}"
    if name in MEASURE_COUNTS:
        if value != int(value) or value < 1:
            extra = " (5 or more lets the gate tell noise apart)" if name == "trials" else ""
            return f"expected a whole number of at least 1{extra}, got {value!r}"
    elif name == "max_duration_ms" and value <= 0:
        return f"expected a duration above 0 ms, got {value!r}"
    elif value < 0:
        return f"expected a duration of 0 ms or more, got {value!r}"
    return None
