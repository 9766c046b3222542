"""trtexec's JSON files, and an optional backend that drives the ``trtexec`` binary itself.

The three files trtexec writes (field names as in TensorRT's samples/common/sampleReporting.cpp):

- ``--exportTimes``: a list, one object per inference: ``startEnqMs endEnqMs startH2dMs endH2dMs startComputeMs
  endComputeMs startD2hMs endD2hMs h2dMs computeMs d2hMs latencyMs endToEndMs`` (ms since the run started);
- ``--exportProfile``: ``[{"count": N}, {"name", "timeMs", "averageMs", "percentage"[, "medianMs"]}, ...]``, the
  per-layer times summed over N profiled iterations;
- ``--exportLayerInfo``: the engine inspector's JSON (``{"Layers": [...], "Bindings": [...]}``).

The TensorRT backend writes the first two in these formats next to our results; the ``trtexec`` backend, for users
whose CI already revolves around trtexec, runs the binary and reads them back into our records. trtexec's flags
differ between 10.x and 11.x (11.x removed ``--fp16/--int8/--bf16/--fp8/--best`` and is always strongly typed); that
difference is kept in :func:`command`.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.attribution import trt_files
from harness.attribution.record import LayerProfile
from harness.backends.base import BackendBase, BackendContext, BuildInfo, RunnerBase, check_options
from harness.backends.engine_cache import EngineCache, cache_key
from harness.core.errors import CaseSkipped, HarnessError
from harness.core.fsio import atomic_write_bytes, atomic_write_text
from harness.core.measurement import Measurement
from harness.core.units import parse_size
from harness.models.inputs import input_shape
from harness.models.sources import PreparedModel
from harness.suite.backend_options import BACKEND_OPTIONS
from harness.suite.schema import Case, MeasureSpec

TIME_FIELDS = (
    "startEnqMs",
    "endEnqMs",
    "startH2dMs",
    "endH2dMs",
    "startComputeMs",
    "endComputeMs",
    "startD2hMs",
    "endD2hMs",
    "h2dMs",
    "computeMs",
    "d2hMs",
    "latencyMs",
    "endToEndMs",
)
PRECISION_FLAGS = {"fp16": "--fp16", "bf16": "--bf16", "int8": "--int8", "fp8": "--fp8"}
PROFILE_WARMUP_MS = 100.0  # the profile run's warm-up: first inferences load kernels and would skew layer medians


# -- the files ---------------------------------------------------------------------------------------------------
def write_times(path: Path, trace: list[dict[str, float]]) -> None:
    """Per-iteration timestamps in ``--exportTimes`` form."""
    rows = [{k: round(float(t.get(k, 0.0)), 6) for k in TIME_FIELDS} for t in trace]
    atomic_write_text(path, json.dumps(rows, indent=1) + "\n")


def write_profile(path: Path, layers: list[dict[str, Any]], count: int) -> None:
    """Per-layer times in ``--exportProfile`` form (with ``medianMs``, which newer trtexec also writes)."""
    rows: list[dict[str, Any]] = [{"count": count}]
    rows += [
        {k: layer[k] for k in ("name", "timeMs", "averageMs", "medianMs", "percentage") if k in layer}
        for layer in layers
    ]
    atomic_write_text(path, json.dumps(rows, indent=1) + "\n")


def _load(path: Path, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HarnessError(f"{path}: no {what} file; did trtexec run with the export option?") from None
    except json.JSONDecodeError as exc:
        raise HarnessError(f"{path}: not a valid trtexec {what} file (line {exc.lineno}: {exc.msg})") from None


@dataclass(frozen=True)
class Times:
    """Per-iteration series (ms) from an ``--exportTimes`` file."""

    latency_ms: list[float]
    gpu_compute_ms: list[float]
    h2d_ms: list[float]
    d2h_ms: list[float]
    enqueue_ms: list[float]
    wall_ms: float  # first iteration's start to the last one's end

    def extra(self) -> dict[str, list[float]]:
        out = {"gpu_compute_ms": self.gpu_compute_ms, "enqueue_ms": self.enqueue_ms}
        if any(self.h2d_ms) or any(self.d2h_ms):
            out.update(h2d_ms=self.h2d_ms, d2h_ms=self.d2h_ms)
        return out


def read_times(path: Path, warmup_ms: float = 0.0) -> Times:
    """Read ``--exportTimes``; iterations whose compute started before ``warmup_ms`` are dropped, as trtexec does."""
    data = _load(path, "times")
    if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
        raise HarnessError(f"{path}: expected a list of per-iteration objects (trtexec --exportTimes)")
    rows = [r for r in data if float(r.get("startComputeMs", 0.0)) >= warmup_ms]
    if not rows:
        raise HarnessError(f"{path}: no iteration after the {warmup_ms} ms warm-up; run trtexec longer")
    missing = [k for k in ("computeMs", "latencyMs") if k not in rows[0]]
    if missing:
        raise HarnessError(f"{path}: iterations lack {missing}; is this a trtexec --exportTimes file?")

    def series(key: str) -> list[float]:
        return [float(r.get(key, 0.0)) for r in rows]

    enqueue = [float(r.get("endEnqMs", 0.0)) - float(r.get("startEnqMs", 0.0)) for r in rows]
    start = min(float(r.get("startH2dMs", r.get("startComputeMs", 0.0))) for r in rows)
    end = max(float(r.get("endD2hMs", r.get("endComputeMs", 0.0))) for r in rows)
    return Times(
        latency_ms=series("latencyMs"),
        gpu_compute_ms=series("computeMs"),
        h2d_ms=series("h2dMs"),
        d2h_ms=series("d2hMs"),
        enqueue_ms=enqueue,
        wall_ms=end - start,
    )


def read_profile(path: Path) -> tuple[int, list[dict[str, Any]]]:
    """``(profiled iterations, layers)`` from ``--exportProfile``; each layer has name, timeMs, averageMs,
    percentage (and medianMs when present)."""
    data = _load(path, "profile")
    if not isinstance(data, list) or not data or not isinstance(data[0], dict) or "count" not in data[0]:
        raise HarnessError(f"{path}: expected [{{'count': N}}, {{layer}}, ...] (trtexec --exportProfile)")
    layers = [row for row in data[1:] if isinstance(row, dict) and "name" in row]
    return int(data[0]["count"]), layers


def read_layer_info(path: Path) -> dict[str, Any]:
    """The engine inspector's JSON from ``--exportLayerInfo``."""
    data = _load(path, "layer info")
    if not isinstance(data, dict) or "Layers" not in data:
        raise HarnessError(f"{path}: expected an object with 'Layers' (trtexec --exportLayerInfo)")
    return data


# -- the command line --------------------------------------------------------------------------------------------
def parse_version(banner: str) -> tuple[int, int, int] | None:
    """``[TensorRT v101300]`` (trtexec's first line) -> (10, 13, 0)."""
    match = re.search(r"TensorRT v(\d{5,})", banner)
    if not match:
        return None
    digits = match.group(1)
    return int(digits[:-4]), int(digits[-4:-2]), int(digits[-2:])


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in shape)


@dataclass
class TrtexecOptions:
    precision_mode: str = "typed"
    tf32: bool = True
    optimization_level: int = 3
    workspace_bytes: int | None = None
    cuda_graph: bool = True
    spin_wait: bool = True
    transfers: bool = False
    profiling_verbosity: str = "detailed"
    timing_cache: Path | None = None


def command(
    binary: str,
    major: int,
    model: Path,
    shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]],
    precision: str,
    options: TrtexecOptions,
    engine: Path,
    build_only: bool,
    measure: MeasureSpec | None = None,
    exports: dict[str, Path] | None = None,
) -> list[str]:
    """The trtexec command for building (``build_only``) or for measuring a saved engine."""
    cmd = [binary]
    if build_only:
        cmd += [f"--onnx={model}", f"--saveEngine={engine}", "--skipInference"]
        if shapes:
            for flag, index in (("--minShapes", 0), ("--optShapes", 1), ("--maxShapes", 2)):
                cmd.append(f"{flag}=" + ",".join(f"{n}:{_shape(s[index])}" for n, s in sorted(shapes.items())))
        if options.precision_mode == "flags":
            if major >= 11:
                raise HarnessError("trtexec 11.x has no precision flags; use precision_mode 'typed'")
            if precision in PRECISION_FLAGS:
                cmd.append(PRECISION_FLAGS[precision])
        elif major == 10:
            cmd.append("--stronglyTyped")  # 11.x is always strongly typed and no longer needs (or knows) it
        if not options.tf32 and precision != "tf32":
            cmd.append("--noTF32")
        cmd.append(f"--builderOptimizationLevel={options.optimization_level}")
        if options.workspace_bytes is not None:
            cmd.append(f"--memPoolSize=workspace:{options.workspace_bytes}B")
        cmd.append(f"--profilingVerbosity={options.profiling_verbosity}")
        if options.timing_cache is not None:
            cmd.append(f"--timingCacheFile={options.timing_cache}")
        return cmd
    cmd.append(f"--loadEngine={engine}")
    if shapes:
        cmd.append("--shapes=" + ",".join(f"{n}:{_shape(s[1])}" for n, s in sorted(shapes.items())))
    if measure is not None:
        cmd += [
            f"--warmUp={measure.warmup_ms:g}",
            f"--duration={max(measure.min_duration_ms / 1e3, 0.001):g}",
            f"--iterations={measure.min_iterations}",
        ]
    if options.cuda_graph:
        cmd.append("--useCudaGraph")
    if options.spin_wait:
        cmd.append("--useSpinWait")
    if not options.transfers:
        cmd.append("--noDataTransfers")
    for key, flag in (("times", "--exportTimes"), ("profile", "--exportProfile"), ("layer_info", "--exportLayerInfo")):
        if exports and key in exports:
            cmd.append(f"{flag}={exports[key]}")
    if exports and "profile" in exports:
        cmd.append("--separateProfileRun")  # per-layer profiling must not slow the timed iterations
    return cmd


def run(cmd: list[str], what: str, timeout_s: float = 3600) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except FileNotFoundError:
        raise HarnessError(f"{cmd[0]}: trtexec not found; set the backend option binary=/path/to/trtexec") from None
    except subprocess.TimeoutExpired:
        raise HarnessError(f"{what}: trtexec ran past {timeout_s:.0f} s; see its log by running {cmd}") from None
    if done.returncode != 0:
        errors = [
            line for line in done.stdout.splitlines() + done.stderr.splitlines() if "[E]" in line or "Error" in line
        ]
        tail = errors[-1] if errors else (done.stdout.strip().splitlines() or ["no output"])[-1]
        raise HarnessError(f"{what}: trtexec failed (exit {done.returncode}): {tail.strip()}")
    return done.stdout


# -- the backend ---------------------------------------------------------------------------------------------------
OPTIONS = BACKEND_OPTIONS["trtexec"]  # the suite's table of this backend's options and their types


def create(options: dict[str, Any], context: BackendContext) -> TrtexecBackend:
    check_options("trtexec", options, OPTIONS)
    binary = str(options.pop("binary", "") or shutil.which("trtexec") or "")
    if not binary or not Path(binary).exists():
        raise HarnessError(
            "backend 'trtexec': no trtexec binary found on PATH; install TensorRT (it ships bin/trtexec) or set "
            "--backend-option binary=/path/to/trtexec"
        )
    return TrtexecBackend(binary, options, context)


class TrtexecBackend(BackendBase):
    """Builds with ``trtexec --skipInference`` and measures with ``trtexec --loadEngine``, reading the exported
    files into the harness's records, so trtexec users get baselines, the gate and reports unchanged."""

    name = "trtexec"
    precisions = frozenset({"fp32", "tf32", "fp16", "bf16", "int8", "fp8"})
    uses_gpu = True

    def __init__(self, binary: str, options: dict[str, Any], context: BackendContext | None = None) -> None:
        super().__init__(context)
        self.binary = binary
        banner = run([binary, "--help"], "trtexec --help")
        found = parse_version(banner)
        if found is None:
            raise HarnessError(f"{binary}: could not read the TensorRT version from 'trtexec --help'")
        self.version_tuple = found
        workspace = options.pop("workspace", None)
        engine_cache = bool(options.pop("engine_cache", True))
        self.options = TrtexecOptions(
            **options, workspace_bytes=None if workspace is None else parse_size(workspace, "workspace")
        )
        if self.options.precision_mode == "flags" and found[0] >= 11:
            raise HarnessError("backend 'trtexec': precision_mode 'flags' needs trtexec 10.x; 11.x is strongly typed")
        # Precision comes from the recipe's typed model, except with legacy flags, which build the fp32 model.
        self.takes_typed_models = self.options.precision_mode != "flags"
        self.cache_enabled = engine_cache

    def version(self) -> str:
        return ".".join(str(v) for v in self.version_tuple)

    def settings(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in self.options.__dict__.items()}

    def build(self, model: PreparedModel, case: Case) -> TrtexecEngine:
        if model.fixed_batch is not None and case.batch_size != model.fixed_batch:
            raise CaseSkipped(f"{model.name} builds only at batch {model.fixed_batch}: {model.batch_note}")
        shapes = {
            info.name: (shape, shape, shape)
            for info in model.inputs
            for shape in [input_shape(info, case.model.inputs.get(info.name), case)]
        }
        options = TrtexecOptions(**{**self.options.__dict__})
        if case.workspace_bytes is not None:
            options.workspace_bytes = int(case.workspace_bytes)
        config = {"precision": case.precision, "shapes": {k: list(v[1]) for k, v in shapes.items()}}
        config.update({k: str(v) for k, v in options.__dict__.items()})
        cache = EngineCache(self.context.cache_dir, enabled=self.cache_enabled)
        key = cache_key(model.sha256, config, f"trtexec-{self.version()}", "trtexec")
        started = time.perf_counter()
        cached = cache.get(key)
        hit = cached is not None
        if cached is None:
            options.timing_cache = cache.timing_path(f"trtexec-{self.version()}")
            options.timing_cache.parent.mkdir(parents=True, exist_ok=True)
            scratch = self.context.cache_dir / "scratch"
            scratch.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=scratch) as tmp:
                out = Path(tmp) / "engine.plan"
                major = self.version_tuple[0]
                cmd = command(self.binary, major, model.path, shapes, case.precision, options, out, True)
                run(cmd, f"{case.id}: build")
                build_ms = (time.perf_counter() - started) * 1e3
                plan = out.read_bytes()
            cached = cache.put(key, plan, {"case": case.id, "build_time_ms": build_ms, "config": config})
        # trtexec loads the engine from a file: the cache's own copy, or a scratch copy when the cache is off.
        engine_path = cache.engines / f"{key}.engine"
        if not cache.enabled:
            engine_path = self.context.cache_dir / "scratch" / f"{key}.engine"
            atomic_write_bytes(engine_path, cached.plan)
        info = BuildInfo(
            build_time_ms=float(cached.meta["build_time_ms"]),
            engine_bytes=len(cached.plan),
            cache_hit=hit,
            details={"build_phase_ms": (time.perf_counter() - started) * 1e3, "cache_key": key, "config": config},
        )
        return TrtexecEngine(self, case, engine_path, shapes, options, info)


class TrtexecEngine:
    def __init__(
        self,
        backend: TrtexecBackend,
        case: Case,
        path: Path,
        shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]],
        options: TrtexecOptions,
        build: BuildInfo,
    ) -> None:
        self.backend, self.case, self.path, self.shapes, self.options, self.build = (
            backend,
            case,
            path,
            shapes,
            options,
            build,
        )

    def runner(self, feeds: dict[str, np.ndarray]) -> TrtexecRunner:
        return TrtexecRunner(self)


class TrtexecRunner(RunnerBase):
    """trtexec times its own loop, so this runner's :meth:`measure` returns the trial (the session uses it instead
    of the per-step loop); ``step`` exists only to satisfy the protocol and refuses."""

    def __init__(self, engine: TrtexecEngine) -> None:
        self.engine = engine

    def _run(self, spec: MeasureSpec, *, folder: str = "", extra: tuple[str, ...] = ()) -> dict[str, Path]:
        """One trtexec run over the engine with ``spec``, its JSON exports (times, profile, layer information) kept
        under the case's artifact folder (``folder`` below it); returns the export paths."""
        engine = self.engine
        root = engine.backend.context.artifact_dir or engine.path.parent
        case_dir = root / re.sub(r"[^A-Za-z0-9_.-]+", "_", engine.case.id) / folder
        case_dir.mkdir(parents=True, exist_ok=True)
        exports = {k: case_dir / f"{k}.json" for k in ("times", "profile", "layer_info")}
        cmd = command(
            engine.backend.binary,
            engine.backend.version_tuple[0],
            engine.path,
            engine.shapes,
            engine.case.precision,
            engine.options,
            engine.path,
            False,
            spec,
            exports,
        )
        run([*cmd, *extra], f"{engine.case.id}: {folder or 'measure'}")
        return exports

    def measure(self, spec: MeasureSpec, batch_size: int) -> Measurement:
        engine = self.engine
        exports = self._run(spec)
        times = read_times(exports["times"], warmup_ms=spec.warmup_ms)
        engine.build.details["artifacts"] = {k: str(v) for k, v in exports.items() if v.exists()}
        return Measurement(
            batch_size=batch_size,
            latency_ms=times.latency_ms,
            wall_ms=times.wall_ms,
            warmup_iterations=0,
            warmup_ms=spec.warmup_ms,
            extra_ms=times.extra(),
        )

    def profile(self, iterations: int) -> LayerProfile | None:
        """Per-layer times from a trtexec run of their own: ``--exportProfile`` over ``iterations`` inferences in a
        ``--separateProfileRun`` (the timed iterations stay unprofiled and give the end-to-end median), and
        ``--exportLayerInfo`` at the engine's profiling verbosity for ONNX nodes, precision and tactics. The files
        are kept under the case's artifact folder, in ``profile/``."""
        engine = self.engine
        spec = MeasureSpec(warmup_ms=PROFILE_WARMUP_MS, min_duration_ms=0.0, min_iterations=iterations, trials=1)
        verbosity = f"--profilingVerbosity={engine.options.profiling_verbosity}"
        exports = self._run(spec, folder="profile", extra=(verbosity,))
        return trt_files.profile_from_files(exports["profile"], exports["layer_info"], times=exports["times"])

    def step(self) -> None:
        raise HarnessError("the trtexec backend measures through trtexec itself (TrtexecRunner.measure)")

    def outputs(self) -> dict[str, np.ndarray]:
        raise CaseSkipped("the trtexec backend does not return outputs; compare accuracy with the tensorrt backend")

    def close(self) -> None:
        return None
