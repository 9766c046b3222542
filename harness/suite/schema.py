"""Suite files: YAML -> validated :class:`Suite` -> the matrix of :class:`Case` objects.

A suite names models and the axes to sweep (precision x batch size x named shape set). Every mistake in a
suite file is reported as one line naming the file, the key and the fix, e.g.::

    benchmarks/suites/zoo.yaml: models[1].pathh: unknown key; did you mean 'path'?
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.core.errors import SuiteError

PRECISIONS = ("fp32", "tf32", "fp16", "bf16", "int8", "fp8")
INPUT_DTYPES = ("float32", "float16", "bfloat16", "int64", "int32", "int8", "uint8", "bool")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.]*$")

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
MODEL_SOURCES = ("path", "onnx_zoo", "torch")  # torch: "package.module:factory" (harness.models.prepare.torch_factory)
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
    # Precision recipes (harness.recipes.config): "random:SEED" replaces constant placeholder weights; calibration
    # for int8/fp8; recipe options and accuracy tolerance overrides per precision.
    weights: str | None = None
    calibration: Any = None  # harness.recipes.config.CalibrationSpec
    recipes: dict[str, dict[str, Any]] = field(default_factory=dict)
    accuracy: dict[str, dict[str, float]] = field(default_factory=dict)


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
            from harness.backends.engine_cache import format_size

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


def load_suite(path: str | Path) -> Suite:
    """Read and validate one suite file; raise :class:`SuiteError` with a one-line message on any mistake."""
    path = Path(path)
    if not path.is_file():
        raise SuiteError(f"{path}: suite file not found; pass an existing file with --suite")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SuiteError(f"{path}: cannot be read ({exc.strerror or exc}); check its permissions") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SuiteError(
            f"{path}: line {line}: byte {exc.start} (0x{raw[exc.start]:02x}) is not UTF-8; save the file as UTF-8"
        ) from None
    try:
        data = yaml.load(text, Loader=UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        fix = "remove or rename one of them" if isinstance(exc, DuplicateKeyError) else "fix the YAML syntax"
        raise SuiteError(f"{path}:{where}: {problem}; {fix}") from None
    return _Validator(path).suite(data)


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping that gives one key twice (plain YAML keeps the last one without a word)."""


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader, refusing duplicate keys in a mapping: YAML 1.2 requires keys to be unique, and a suite
    whose second ``batch_sizes:`` silently replaced the first would measure something other than what it reads."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: SafeLoader's own error says so
                break
            if first is not None:
                raise DuplicateKeyError(
                    None,
                    None,
                    f"key '{key}' is given twice "
                    f"(lines {first.start_mark.line + 1} and {key_node.start_mark.line + 1})",
                    key_node.start_mark,
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


class _Validator:
    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, problem: str) -> SuiteError:
        return SuiteError(f"{self.path}: {key}: {problem}")

    def mapping(self, value: Any, key: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a mapping, got {_kind(value)}")
        for name in value:
            if name not in allowed:
                near = difflib.get_close_matches(str(name), allowed, n=1)
                hint = f"did you mean '{near[0]}'?" if near else f"allowed keys: {', '.join(allowed)}"
                raise self.fail(_join(key, name), f"unknown key; {hint}")
        return value

    def suite(self, data: Any) -> Suite:
        if data is None:
            raise self.fail("(top)", "the file is empty; start with 'suite: NAME' and a 'models:' list")
        data = self.mapping(data, "(top)", SUITE_KEYS)
        name = data.get("suite")
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
            raise self.fail("suite", "give the suite a name made of letters, digits, '-', '_' or '.'")
        description = data.get("description", "")
        if not isinstance(description, str):
            raise self.fail("description", f"expected text, got {_kind(description)}")
        precisions = self.precisions(data.get("precisions", ["fp32"]), "precisions")
        batch_sizes = self.batch_sizes(data.get("batch_sizes", [1]), "batch_sizes")
        shapes = self.shapes(data.get("shapes", {}), "shapes")
        tolerance = self.tolerance(data.get("tolerance", "10%"), "tolerance", {})
        self.workspaces = self.workspace_sizes(data.get("workspaces", []), "workspaces")
        measure = self.measure(data.get("measure", {}))
        backends = self.backends(data.get("backends", {}))
        self.recipe_defaults = self.recipe_keys(data, "(top)", {})
        reference_backend = data.get("reference_backend")
        if reference_backend is not None and not isinstance(reference_backend, str):
            raise self.fail("reference_backend", "expected a backend name such as onnxruntime")
        if reference_backend is not None and (problem := backend_name_problem(reference_backend)):
            raise self.fail("reference_backend", problem)
        raw_models = data.get("models")
        if not isinstance(raw_models, list) or not raw_models:
            raise self.fail("models", "list at least one model (with 'name' and 'path' or 'onnx_zoo')")
        models: list[ModelSpec] = []
        for i, raw in enumerate(raw_models):
            models.append(self.model(raw, f"models[{i}]", precisions, batch_sizes, shapes, tolerance))
        names = [m.name for m in models]
        for i, model_name in enumerate(names):
            if model_name in names[:i]:
                raise self.fail(f"models[{i}].name", f"'{model_name}' is used twice; model names must be unique")
        suite = Suite(
            name=name,
            path=self.path.resolve(),
            description=description,
            models=tuple(models),
            measure=measure,
            backends=backends,
            reference_backend=reference_backend,
        )
        if not suite.cases():
            raise self.fail("models", "the matrix is empty; give each model at least one precision and batch size")
        return suite

    def model(
        self,
        raw: Any,
        key: str,
        precisions: tuple[str, ...],
        batch_sizes: tuple[int, ...],
        shapes: dict[str, dict[str, int]],
        tolerance: dict[str, float],
    ) -> ModelSpec:
        raw = self.mapping(raw, key, MODEL_KEYS)
        name = raw.get("name")
        # Any printable name is accepted (it is escaped wherever it is shown); file names use a slug of it.
        if not isinstance(name, str) or not name.strip() or not name.isprintable():
            raise self.fail(_join(key, "name"), "give each model a non-empty, single-line name (it starts the case id)")
        given = [s for s in MODEL_SOURCES if s in raw]
        if len(given) != 1:
            raise self.fail(key, f"give exactly one model source: {' or '.join(MODEL_SOURCES)}")
        source = given[0]
        value = raw[source]
        if not isinstance(value, str) or not value:
            raise self.fail(_join(key, source), f"expected text, got {_kind(value)}")
        if source == "path":
            location = (self.path.parent / value).resolve()
            if not location.is_file():
                raise self.fail(
                    _join(key, "path"),
                    f"model file '{value}' not found (looked for {location}); paths are relative to the suite file",
                )
            value = str(location)
        elif source == "torch":
            from harness.models.prepare import check_torch_factory  # finds the module without importing torch

            problem = check_torch_factory(value, self.path)
            if problem:
                raise self.fail(_join(key, "torch"), problem)
        else:
            from harness.models.prepare import zoo_names  # the onnx wheel is a core dependency

            short = value.removeprefix("light_")
            if short not in zoo_names():
                near = difflib.get_close_matches(short, zoo_names(), n=1)
                hint = f"did you mean 'light_{near[0]}'?" if near else f"known: {', '.join(zoo_names())}"
                raise self.fail(_join(key, "onnx_zoo"), f"unknown zoo model '{value}'; {hint}")
            value = short
        inputs = {}
        raw_inputs = raw.get("inputs") or {}
        if not isinstance(raw_inputs, dict):
            raise self.fail(
                _join(key, "inputs"), f"expected a mapping of input name -> settings, got {_kind(raw_inputs)}"
            )
        for input_name, settings in raw_inputs.items():
            inputs[str(input_name)] = self.input(settings, _join(_join(key, "inputs"), input_name))
        return ModelSpec(
            name=name,
            source=source,
            location=value,
            inputs=inputs,
            precisions=self.precisions(raw["precisions"], _join(key, "precisions"))
            if "precisions" in raw
            else precisions,
            batch_sizes=self.batch_sizes(raw["batch_sizes"], _join(key, "batch_sizes"))
            if "batch_sizes" in raw
            else batch_sizes,
            shapes=self.shapes(raw["shapes"], _join(key, "shapes")) if "shapes" in raw else shapes,
            tolerance=self.tolerance(raw["tolerance"], _join(key, "tolerance"), tolerance)
            if "tolerance" in raw
            else tolerance,
            workspaces=self.workspace_sizes(raw["workspaces"], _join(key, "workspaces"))
            if "workspaces" in raw
            else getattr(self, "workspaces", ()),
            **self.recipe_keys(raw, key, getattr(self, "recipe_defaults", {})),
        )

    def recipe_keys(self, raw: dict[str, Any], key: str, inherited: dict[str, Any]) -> dict[str, Any]:
        """weights / calibration / recipes / accuracy of a model (or the suite's defaults), validated."""
        from harness.core.errors import HarnessError
        from harness.judge.accuracy import parse_tolerances
        from harness.recipes.config import parse_calibration, parse_recipes, parse_weights

        out = dict(inherited)
        if "weights" in raw:
            out["weights"] = parse_weights(raw["weights"], _join(key, "weights"), self.fail)
        if "calibration" in raw:
            out["calibration"] = parse_calibration(
                raw["calibration"], _join(key, "calibration"), self.path.parent, out.get("calibration"), self.fail
            )
        if "recipes" in raw:
            out["recipes"] = parse_recipes(raw["recipes"], _join(key, "recipes"), out.get("recipes", {}), self.fail)
        if "accuracy" in raw:
            try:
                given = parse_tolerances(raw["accuracy"], _join(key, "accuracy"))
            except HarnessError as exc:
                raise SuiteError(f"{self.path}: {exc}") from None
            merged = {p: dict(v) for p, v in out.get("accuracy", {}).items()}
            for precision, values in given.items():
                merged.setdefault(precision, {}).update(values)
            out["accuracy"] = merged
        return out

    def workspace_sizes(self, raw: Any, key: str) -> tuple[int, ...]:
        """``[256M, 1G]``: memory-pool limits to sweep (binary units), e.g. to find where speed stops improving."""
        from harness.backends.engine_cache import parse_size
        from harness.core.errors import HarnessError

        if not isinstance(raw, list):
            raise self.fail(key, f"expected a list of sizes such as [256M, 1G], got {_kind(raw)}")
        out = []
        for i, value in enumerate(raw):
            try:
                size = parse_size(value, f"{key}[{i}]")
            except HarnessError as exc:
                raise self.fail(f"{key}[{i}]", str(exc).split(": ", 1)[-1]) from None
            if size < 1:
                raise self.fail(f"{key}[{i}]", "a workspace limit must be at least 1 byte")
            out.append(size)
        return tuple(dict.fromkeys(out))

    def input(self, raw: Any, key: str) -> InputSpec:
        raw = self.mapping(raw or {}, key, INPUT_KEYS)
        shape = raw.get("shape")
        if shape is not None:
            if not isinstance(shape, list) or not all(
                (isinstance(d, int) and not isinstance(d, bool) and d > 0) or isinstance(d, str) for d in shape
            ):
                raise self.fail(
                    _join(key, "shape"), "expected a list of positive sizes or dim names, e.g. [batch, 3, 224, 224]"
                )
            shape = tuple(shape)
        dtype = raw.get("dtype")
        if dtype is not None and dtype not in INPUT_DTYPES:
            near = difflib.get_close_matches(str(dtype), INPUT_DTYPES, n=1)
            hint = f"did you mean '{near[0]}'?" if near else f"use one of {', '.join(INPUT_DTYPES)}"
            raise self.fail(_join(key, "dtype"), f"unknown dtype '{dtype}'; {hint}")
        value_range = raw.get("range")
        if value_range is not None:
            if (
                not isinstance(value_range, list)
                or len(value_range) != 2
                or not all(_is_number(v) and math.isfinite(v) for v in value_range)
                or value_range[0] >= value_range[1]
            ):
                raise self.fail(_join(key, "range"), "expected [low, high] of finite numbers, low < high (inclusive)")
            value_range = (float(value_range[0]), float(value_range[1]))
        return InputSpec(shape=shape, dtype=dtype, range=value_range)

    def precisions(self, raw: Any, key: str) -> tuple[str, ...]:
        if not isinstance(raw, list) or not raw:
            raise self.fail(key, f"expected a non-empty list such as [fp32, fp16], got {_kind(raw)}")
        for i, value in enumerate(raw):
            if value not in PRECISIONS:
                near = difflib.get_close_matches(str(value), PRECISIONS, n=1)
                hint = f"did you mean '{near[0]}'?" if near else f"use one of {', '.join(PRECISIONS)}"
                raise self.fail(f"{key}[{i}]", f"unknown precision '{value}'; {hint}")
        return tuple(dict.fromkeys(raw))

    def batch_sizes(self, raw: Any, key: str) -> tuple[int, ...]:
        if not isinstance(raw, list) or not raw:
            raise self.fail(key, f"expected a non-empty list of positive integers such as [1, 8], got {_kind(raw)}")
        for i, value in enumerate(raw):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise self.fail(f"{key}[{i}]", f"expected a positive integer, got {value!r}")
        return tuple(dict.fromkeys(raw))

    def shapes(self, raw: Any, key: str) -> dict[str, dict[str, int]]:
        if not isinstance(raw, dict):
            raise self.fail(key, "expected a mapping of label -> {dim name: size}, e.g. {seq128: {seq: 128}}")
        out: dict[str, dict[str, int]] = {}
        for label, dims in raw.items():
            if not isinstance(label, str) or not _NAME_RE.match(label):
                raise self.fail(_join(key, label), "shape labels are letters, digits, '_' or '.' (they go in case ids)")
            if (
                not isinstance(dims, dict)
                or not dims
                or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in dims.values())
            ):
                raise self.fail(_join(key, label), "expected a mapping of dim name -> positive size, e.g. {seq: 128}")
            out[label] = {str(k): int(v) for k, v in dims.items()}
        return out

    def tolerance(self, raw: Any, key: str, inherited: dict[str, float]) -> dict[str, float]:
        """``10%`` for every metric, or ``{default: 10%, latency_p99_ms: 20%}``; inherits what it does not set."""
        from harness.core.metrics import METRICS, resolve_metric

        out = dict(inherited)
        if isinstance(raw, dict):
            for metric, value in raw.items():
                if metric == "default":
                    out["default"] = self.percent(value, _join(key, metric))
                    continue
                name = resolve_metric(str(metric))
                if name is None:
                    choices = ["default", *METRICS]
                    near = difflib.get_close_matches(str(metric), choices, n=1)
                    hint = f"did you mean '{near[0]}'?" if near else f"use one of {', '.join(choices)}"
                    raise self.fail(_join(key, metric), f"unknown metric; {hint}")
                out[name] = self.percent(value, _join(key, metric))
        else:
            out = {"default": self.percent(raw, key)}
        return out

    def percent(self, raw: Any, key: str) -> float:
        text = str(raw).strip()
        try:
            value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            raise self.fail(key, f"expected a percentage such as 10%, got {raw!r}") from None
        if not 0 <= value < 10:
            raise self.fail(key, f"expected a percentage between 0% and 1000%, got {raw!r}")
        return value

    def measure(self, raw: Any) -> MeasureSpec:
        raw = self.mapping(raw or {}, "measure", MEASURE_KEYS)
        values: dict[str, Any] = {}
        for name, value in raw.items():
            problem = measure_value_problem(name, value)
            if problem:
                raise self.fail(_join("measure", name), problem)
            values[name] = int(value) if name in MEASURE_COUNTS else float(value)
        return MeasureSpec(**values)

    def backends(self, raw: Any) -> dict[str, dict[str, Any]]:
        if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
            raise self.fail(
                "backends", "expected a mapping of backend name -> options, e.g. {onnxruntime: {intra_op_threads: 1}}"
            )
        for name, options in raw.items():
            problem = backend_name_problem(str(name))
            if problem:
                raise self.fail(_join("backends", name), problem)
            for option, value in options.items():
                problem = _backend_option_problem(str(name), str(option), value)
                if problem:
                    raise self.fail(_join(_join("backends", name), option), problem)
        return {str(k): dict(v) for k, v in raw.items()}


def backend_name_problem(name: str) -> str | None:
    """Why ``name`` is not a backend of the registry (with the nearest name), or None."""
    from harness.backends.base import REGISTRY

    if name in REGISTRY:
        return None
    near = difflib.get_close_matches(name, list(REGISTRY), n=1)
    hint = f"did you mean '{near[0]}'?" if near else f"use one of {', '.join(sorted(REGISTRY))}"
    return f"unknown backend '{name}'; {hint}"


def _backend_option_problem(backend: str, option: str, value: Any) -> str | None:
    """Why a suite's option for a known backend is unknown to it or of the wrong type (its module's OPTIONS, the
    table harness.backends.base.check_options applies when the backend is created), or None."""
    import importlib

    from harness.backends.base import REGISTRY

    allowed: dict[str, type | tuple[type, ...]] = importlib.import_module(REGISTRY[backend].split(":")[0]).OPTIONS
    if option not in allowed:
        near = difflib.get_close_matches(option, list(allowed), n=1)
        hint = f"did you mean '{near[0]}'?" if near else f"known options: {', '.join(allowed) or 'none'}"
        return f"unknown option of backend '{backend}'; {hint}"
    expected = allowed[option]
    if not isinstance(value, expected) or (isinstance(value, bool) and expected is int):
        names = " or ".join(t.__name__ for t in (expected if isinstance(expected, tuple) else (expected,)))
        return f"expected {names}, got {_kind(value)}"
    return None


MEASURE_COUNTS = ("min_iterations", "trials")


def measure_value_problem(name: str, value: Any) -> str | None:
    """What is wrong with ``value`` for the measure setting ``name`` (None when nothing): durations are finite
    milliseconds (``max_duration_ms`` above zero), counts whole numbers of at least 1. Shared by the suite's
    ``measure:`` section and the command-line overrides, so both refuse ``nan``, ``.inf`` and ``-5`` alike."""
    if not _is_number(value) or not math.isfinite(value):
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


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _join(key: str, name: Any) -> str:
    return str(name) if key == "(top)" else f"{key}.{name}"


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: "text", bool: "true/false"}.get(type(value), type(value).__name__)
