"""Reading a suite file: YAML -> validated :class:`~harness.suite.schema.Suite`.

Every mistake in a suite file is reported as one line naming the file, the key and the fix, e.g.::

    benchmarks/suites/zoo.yaml: models[1].pathh: unknown key; did you mean 'path'?

Loading checks what the file says, without importing a later stage: the model sources that only a later stage can
find (a zoo model in the onnx wheel, a torch factory's module) are checked after loading by
harness.models.sources.check_sources, with the line recorded here.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from harness.core.errors import HarnessError, SuiteError
from harness.core.metrics import METRICS, resolve_metric
from harness.core.units import parse_size
from harness.suite.accuracy_keys import parse_tolerances
from harness.suite.backend_options import backend_name_problem, backend_option_problem
from harness.suite.problems import check_known, is_number, join_key, kind_of, nearest
from harness.suite.recipe_keys import parse_calibration, parse_recipes, parse_weights
from harness.suite.schema import (
    INPUT_DTYPES,
    INPUT_KEYS,
    MEASURE_COUNTS,
    MEASURE_KEYS,
    MODEL_KEYS,
    MODEL_SOURCES,
    PRECISIONS,
    SHAPE_LABEL,
    SUITE_KEYS,
    SUITE_NAME,
    TORCH_FACTORY,
    InputSpec,
    MeasureSpec,
    ModelSpec,
    Suite,
    measure_value_problem,
)
from harness.suite.yaml_reader import DuplicateKeyError, model_lines, read_yaml


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
        data, root = read_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        fix = "remove or rename one of them" if isinstance(exc, DuplicateKeyError) else "fix the YAML syntax"
        raise SuiteError(f"{path}:{where}: {problem}; {fix}") from None
    return _Validator(path, model_lines(root)).suite(data)


class _Validator:
    def __init__(self, path: Path, lines: list[int]) -> None:
        self.path = path
        self.lines = lines  # per models[i], the line of its source key
        self.workspaces: tuple[int, ...] = ()
        self.recipe_defaults: dict[str, Any] = {}

    def fail(self, key: str, problem: str) -> SuiteError:
        return SuiteError(f"{self.path}: {key}: {problem}")

    def mapping(self, value: Any, key: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a mapping, got {kind_of(value)}")
        check_known(value, key, allowed, self.fail)
        return value

    def suite(self, data: Any) -> Suite:
        if data is None:
            raise self.fail("(top)", "the file is empty; start with 'suite: NAME' and a 'models:' list")
        data = self.mapping(data, "(top)", SUITE_KEYS)
        name = data.get("suite")
        if not isinstance(name, str) or not SUITE_NAME.fullmatch(name):
            raise self.fail("suite", "give the suite a name made of letters, digits, '-', '_' or '.'")
        description = data.get("description", "")
        if not isinstance(description, str):
            raise self.fail("description", f"expected text, got {kind_of(description)}")
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
            line = self.lines[i] if i < len(self.lines) else 0
            models.append(self.model(raw, f"models[{i}]", line, precisions, batch_sizes, shapes, tolerance))
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
        line: int,
        precisions: tuple[str, ...],
        batch_sizes: tuple[int, ...],
        shapes: dict[str, dict[str, int]],
        tolerance: dict[str, float],
    ) -> ModelSpec:
        raw = self.mapping(raw, key, MODEL_KEYS)
        name = raw.get("name")
        # Any printable name is accepted (it is escaped wherever it is shown); file names use a slug of it.
        if not isinstance(name, str) or not name.strip() or not name.isprintable():
            raise self.fail(
                join_key(key, "name"), "give each model a non-empty, single-line name (it starts the case id)"
            )
        given = [s for s in MODEL_SOURCES if s in raw]
        if len(given) != 1:
            raise self.fail(key, f"give exactly one model source: {' or '.join(MODEL_SOURCES)}")
        source = given[0]
        value = raw[source]
        if not isinstance(value, str) or not value:
            raise self.fail(join_key(key, source), f"expected text, got {kind_of(value)}")
        if source == "path":
            location = (self.path.parent / value).resolve()
            if not location.is_file():
                raise self.fail(
                    join_key(key, "path"),
                    f"model file '{value}' not found (looked for {location}); paths are relative to the suite file",
                )
            value = str(location)
        elif source == "torch":
            if not TORCH_FACTORY.match(value):
                raise self.fail(
                    join_key(key, "torch"),
                    f"expected 'package.module:factory' (a Python import path and a function name), got {value!r}",
                )
        else:
            value = value.removeprefix("light_")
        inputs = {}
        raw_inputs = raw.get("inputs") or {}
        if not isinstance(raw_inputs, dict):
            raise self.fail(
                join_key(key, "inputs"), f"expected a mapping of input name -> settings, got {kind_of(raw_inputs)}"
            )
        for input_name, settings in raw_inputs.items():
            inputs[str(input_name)] = self.input(settings, join_key(join_key(key, "inputs"), input_name))
        return ModelSpec(
            name=name,
            source=source,
            location=value,
            inputs=inputs,
            precisions=self.precisions(raw["precisions"], join_key(key, "precisions"))
            if "precisions" in raw
            else precisions,
            batch_sizes=self.batch_sizes(raw["batch_sizes"], join_key(key, "batch_sizes"))
            if "batch_sizes" in raw
            else batch_sizes,
            shapes=self.shapes(raw["shapes"], join_key(key, "shapes")) if "shapes" in raw else shapes,
            tolerance=self.tolerance(raw["tolerance"], join_key(key, "tolerance"), tolerance)
            if "tolerance" in raw
            else tolerance,
            workspaces=self.workspace_sizes(raw["workspaces"], join_key(key, "workspaces"))
            if "workspaces" in raw
            else self.workspaces,
            **self.recipe_keys(raw, key, self.recipe_defaults),
            suite_file=self.path,
            line=line,
        )

    def recipe_keys(self, raw: dict[str, Any], key: str, inherited: dict[str, Any]) -> dict[str, Any]:
        """weights / calibration / recipes / accuracy of a model (or the suite's defaults), validated."""
        out = dict(inherited)
        if "weights" in raw:
            out["weights"] = parse_weights(raw["weights"], join_key(key, "weights"), self.fail)
        if "calibration" in raw:
            out["calibration"] = parse_calibration(
                raw["calibration"], join_key(key, "calibration"), self.path.parent, out.get("calibration"), self.fail
            )
        if "recipes" in raw:
            out["recipes"] = parse_recipes(raw["recipes"], join_key(key, "recipes"), out.get("recipes", {}), self.fail)
        if "accuracy" in raw:
            try:
                given = parse_tolerances(raw["accuracy"], join_key(key, "accuracy"))
            except HarnessError as exc:
                raise SuiteError(f"{self.path}: {exc}") from None
            merged = {p: dict(v) for p, v in out.get("accuracy", {}).items()}
            for precision, values in given.items():
                merged.setdefault(precision, {}).update(values)
            out["accuracy"] = merged
        return out

    def workspace_sizes(self, raw: Any, key: str) -> tuple[int, ...]:
        """``[256M, 1G]``: memory-pool limits to sweep (binary units), e.g. to find where speed stops improving."""
        if not isinstance(raw, list):
            raise self.fail(key, f"expected a list of sizes such as [256M, 1G], got {kind_of(raw)}")
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
                    join_key(key, "shape"), "expected a list of positive sizes or dim names, e.g. [batch, 3, 224, 224]"
                )
            shape = tuple(shape)
        dtype = raw.get("dtype")
        if dtype is not None and dtype not in INPUT_DTYPES:
            hint = nearest(dtype, INPUT_DTYPES, f"use one of {', '.join(INPUT_DTYPES)}")
            raise self.fail(join_key(key, "dtype"), f"unknown dtype '{dtype}'; {hint}")
        value_range = raw.get("range")
        if value_range is not None:
            if (
                not isinstance(value_range, list)
                or len(value_range) != 2
                or not all(is_number(v) and math.isfinite(v) for v in value_range)
                or value_range[0] >= value_range[1]
            ):
                raise self.fail(
                    join_key(key, "range"), "expected [low, high] of finite numbers, low < high (inclusive)"
                )
            value_range = (float(value_range[0]), float(value_range[1]))
        return InputSpec(shape=shape, dtype=dtype, range=value_range)

    def precisions(self, raw: Any, key: str) -> tuple[str, ...]:
        if not isinstance(raw, list) or not raw:
            raise self.fail(key, f"expected a non-empty list such as [fp32, fp16], got {kind_of(raw)}")
        for i, value in enumerate(raw):
            if value not in PRECISIONS:
                hint = nearest(value, PRECISIONS, f"use one of {', '.join(PRECISIONS)}")
                raise self.fail(f"{key}[{i}]", f"unknown precision '{value}'; {hint}")
        return tuple(dict.fromkeys(raw))

    def batch_sizes(self, raw: Any, key: str) -> tuple[int, ...]:
        if not isinstance(raw, list) or not raw:
            raise self.fail(key, f"expected a non-empty list of positive integers such as [1, 8], got {kind_of(raw)}")
        for i, value in enumerate(raw):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise self.fail(f"{key}[{i}]", f"expected a positive integer, got {value!r}")
        return tuple(dict.fromkeys(raw))

    def shapes(self, raw: Any, key: str) -> dict[str, dict[str, int]]:
        if not isinstance(raw, dict):
            raise self.fail(key, "expected a mapping of label -> {dim name: size}, e.g. {seq128: {seq: 128}}")
        out: dict[str, dict[str, int]] = {}
        for label, dims in raw.items():
            if not isinstance(label, str) or not SHAPE_LABEL.match(label):
                raise self.fail(
                    join_key(key, label), "shape labels are letters, digits, '_' or '.' (they go in case ids)"
                )
            if (
                not isinstance(dims, dict)
                or not dims
                or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in dims.values())
            ):
                raise self.fail(
                    join_key(key, label), "expected a mapping of dim name -> positive size, e.g. {seq: 128}"
                )
            out[label] = {str(k): int(v) for k, v in dims.items()}
        return out

    def tolerance(self, raw: Any, key: str, inherited: dict[str, float]) -> dict[str, float]:
        """``10%`` for every metric, or ``{default: 10%, latency_p99_ms: 20%}``; inherits what it does not set."""
        out = dict(inherited)
        if isinstance(raw, dict):
            for metric, value in raw.items():
                if metric == "default":
                    out["default"] = self.percent(value, join_key(key, metric))
                    continue
                name = resolve_metric(str(metric))
                if name is None:
                    choices = ["default", *METRICS]
                    hint = nearest(metric, choices, f"use one of {', '.join(choices)}")
                    raise self.fail(join_key(key, metric), f"unknown metric; {hint}")
                out[name] = self.percent(value, join_key(key, metric))
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
                raise self.fail(join_key("measure", name), problem)
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
                raise self.fail(join_key("backends", name), problem)
            for option, value in options.items():
                problem = backend_option_problem(str(name), str(option), value)
                if problem:
                    raise self.fail(join_key(join_key("backends", name), option), problem)
        return {str(k): dict(v) for k, v in raw.items()}
