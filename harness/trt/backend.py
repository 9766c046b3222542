"""TensorRT backend: TensorRT 10.x, 11.x and TensorRT-RTX through one code path.

Loader and runner are split Polygraphy style: :meth:`TensorRTBackend.build` turns the typed ONNX model of a case into
a serialized engine (parse, optimization profile, builder configuration, ``build_serialized_network``), served from
the engine cache when the same model, configuration, library and GPU were built before;
:class:`~harness.trt.runner.TensorRTRunner` binds an engine to device buffers and times it with CUDA events. Flavour
and version differences live in :mod:`harness.trt.compat`; this module is written against the common API, and
type-checked against the TensorRT 10.13 stubs (``python -m harness.trt.typecheck``).

Precision comes from the model (strongly typed): the precision stage (:mod:`harness.run.precision`) turns the fp32
model into an fp16/bf16 or Q/DQ model through the recipes before it reaches this backend, which builds what it is
given. On TensorRT 10.x only, ``precision_mode: flags`` builds the fp32 model with the
legacy builder flags instead (weak typing, deprecated since 10.12, removed in 11).
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.backends.base import BackendBase, BackendContext, BuildInfo, check_options
from harness.backends.engine_cache import DEFAULT_MAX_BYTES, EngineCache, cache_key
from harness.core.errors import CaseSkipped, HarnessError
from harness.core.units import parse_size
from harness.machine import cuda
from harness.machine.environment import gpu_facts
from harness.models.graph import TensorInfo
from harness.models.inputs import batch_names, check_batch, input_shape
from harness.models.sources import PreparedModel
from harness.suite.backend_options import BACKEND_OPTIONS
from harness.suite.schema import Case
from harness.trt import compat as trt_compat
from harness.trt.engine import BuiltEngine, RunOptions
from harness.trt.log import tensorrt_log
from harness.trt.runner import TensorRTRunner

if TYPE_CHECKING:
    import tensorrt as trt  # the stubs: every call on ``trt`` below is checked against the TensorRT 10.13 API
else:
    trt = trt_compat.module_proxy  # the module actually loaded (tensorrt, tensorrt_rtx or tensorrt_rtx_bindings)

OPTIONS = BACKEND_OPTIONS["tensorrt"]  # the suite's table of this backend's options and their types
PRECISION_MODES = ("typed", "flags")
PROFILE_MODES = ("range", "case")
VERBOSITY = {"detailed": "DETAILED", "layer_names_only": "LAYER_NAMES_ONLY", "none": "NONE"}
HARDWARE_COMPATIBILITY = {
    "none": "NONE",
    "ampere_plus": "AMPERE_PLUS",
    "same_compute_capability": "SAME_COMPUTE_CAPABILITY",
}
# Precisions whose typed model comes from the recipes; fp32 and tf32 build the fp32 model as is.
TYPED_PRECISIONS = frozenset({"fp16", "bf16", "int8", "fp8"})


def create(options: dict[str, Any], context: BackendContext) -> TensorRTBackend:
    check_options("tensorrt", options, OPTIONS)
    api = trt_compat.find(str(options.get("flavour", "auto")))
    return TensorRTBackend(api, context, **{k: v for k, v in options.items() if k != "flavour"})


# -- the backend -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Profile:
    """One optimization profile: per dynamic input, (min, opt, max) shapes."""

    shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]

    def to_dict(self) -> dict[str, list[list[int]]]:
        return {name: [list(s) for s in mom] for name, mom in sorted(self.shapes.items())}


class TensorRTBackend(BackendBase):
    name = "tensorrt"
    # Precision comes from the typed model, so every recipe can be built; fp8 needs hardware with FP8 kernels.
    precisions = frozenset({"fp32", "tf32", "fp16", "bf16", "int8", "fp8"})
    uses_gpu = True

    def __init__(
        self,
        api: trt_compat.TrtApi,
        context: BackendContext | None = None,
        precision_mode: str = "typed",
        profile: str = "range",
        tf32: bool = True,
        optimization_level: int = 3,
        workspace: int | str | None = None,
        hardware_compatibility: str = "none",
        version_compatible: bool = False,
        profiling_verbosity: str = "detailed",
        compute_capabilities: list[str] | None = None,
        engine_cache: bool = True,
        cache_max_bytes: int | str = DEFAULT_MAX_BYTES,
        timing_cache: bool = True,
        cuda_graph: bool = True,
        transfers: bool = False,
        layer_profile: bool = True,
    ) -> None:
        super().__init__(context)
        self.api = api
        if precision_mode not in PRECISION_MODES:
            raise HarnessError(f"backend 'tensorrt': precision_mode must be one of {PRECISION_MODES}")
        if precision_mode == "flags" and not api.has_precision_flags:
            raise HarnessError(
                f"backend 'tensorrt': precision_mode 'flags' needs weakly typed TensorRT 10.x; {api.label} is "
                "strongly typed, so use precision_mode 'typed' (the default)"
            )
        if profile not in PROFILE_MODES:
            raise HarnessError(f"backend 'tensorrt': profile must be one of {PROFILE_MODES}")
        if not 0 <= optimization_level <= 5:
            raise HarnessError("backend 'tensorrt': optimization_level must be between 0 and 5")
        if profiling_verbosity not in VERBOSITY:
            raise HarnessError(f"backend 'tensorrt': profiling_verbosity must be one of {tuple(VERBOSITY)}")
        if hardware_compatibility not in HARDWARE_COMPATIBILITY:
            raise HarnessError(
                f"backend 'tensorrt': hardware_compatibility must be one of {tuple(HARDWARE_COMPATIBILITY)}"
            )
        if hardware_compatibility != "none" and api.flavour == trt_compat.TENSORRT_RTX:
            raise HarnessError(
                "backend 'tensorrt': hardware_compatibility is not supported by TensorRT-RTX; its engines target "
                "GPU generations through compute_capabilities instead"
            )
        if compute_capabilities and not api.targets_compute_capabilities:
            raise HarnessError(
                f"backend 'tensorrt': compute_capabilities needs TensorRT-RTX; {api.label} builds for the GPU it "
                "runs on (see hardware_compatibility)"
            )
        self.precision_mode = precision_mode
        # The precision stage hands over the recipe's typed model, except with legacy flags, which build the fp32
        # model.
        self.takes_typed_models = precision_mode != "flags"
        self.profile_mode = profile
        self.tf32 = tf32
        self.optimization_level = optimization_level
        self.workspace_bytes = None if workspace is None else parse_size(workspace, "backend 'tensorrt': workspace")
        self.hardware_compatibility = hardware_compatibility
        self.version_compatible = version_compatible
        self.profiling_verbosity = profiling_verbosity
        self.compute_capabilities = [str(c) for c in compute_capabilities or []]
        self.cache_enabled = engine_cache
        self.cache_max_bytes = parse_size(cache_max_bytes, "backend 'tensorrt': cache_max_bytes")
        self.timing_cache = timing_cache
        self.cuda_graph = cuda_graph
        self.transfers = transfers
        self.layer_profile = layer_profile
        self._target: str | None = None

    # -- protocol ----------------------------------------------------------------------------------------------
    def version(self) -> str:
        return self.api.version if self.api.flavour == trt_compat.TENSORRT else f"rtx-{self.api.version}"

    def settings(self) -> dict[str, Any]:
        return {
            "flavour": self.api.flavour,
            "precision_mode": self.precision_mode,
            "profile": self.profile_mode,
            "tf32": self.tf32,
            "optimization_level": self.optimization_level,
            "workspace_bytes": self.workspace_bytes,
            "hardware_compatibility": self.hardware_compatibility,
            "version_compatible": self.version_compatible,
            "profiling_verbosity": self.profiling_verbosity,
            "compute_capabilities": self.compute_capabilities,
            "cuda_graph": self.cuda_graph,
            "transfers": self.transfers,
        }

    @property
    def cache(self) -> EngineCache:
        return EngineCache(self.context.cache_dir, self.cache_max_bytes, enabled=self.cache_enabled)

    def target(self) -> str:
        """What the engine is built for, part of the cache key: the GPU (name and compute capability), or the
        TensorRT-RTX ahead-of-time targets when building without a GPU."""
        if self._target is None:
            gpus = gpu_facts()
            if self.compute_capabilities:
                self._target = "aot:" + ",".join(sorted(c.upper() for c in self.compute_capabilities))
            elif gpus:
                self._target = f"{gpus[0]['name']} sm{gpus[0]['compute_capability']}"
            else:
                self._target = "no-gpu"
        return self._target

    def build(self, model: PreparedModel, case: Case) -> TensorRTEngine:
        check_batch(model, case)  # a graph pinned to one batch (that could not be made dynamic) builds only at it
        self.check_typed(model, case)
        started = time.perf_counter()
        profiles = self.profiles(model, case)
        config = self.build_config(case, profiles)
        key = cache_key(model.sha256, config, self.api.label, self.target())
        cache = self.cache
        cached = cache.get(key)
        if cached is not None:
            phase_ms = (time.perf_counter() - started) * 1e3
            meta = cached.meta
            return self._engine(
                case,
                cached.plan,
                BuildInfo(
                    build_time_ms=float(meta["build_time_ms"]),
                    engine_bytes=len(cached.plan),
                    cache_hit=True,
                    details=self._details(key, config, meta, phase_ms),
                ),
            )
        plan, build_ms, timing = self._build_plan(model, case, profiles)
        meta = {
            "case": case.id,
            "build_time_ms": build_ms,
            "model_sha256": model.sha256,
            "library": self.api.label,
            "target": self.target(),
            "config": config,
            "timing_cache": timing,
        }
        stored = cache.put(key, plan, meta)
        phase_ms = (time.perf_counter() - started) * 1e3
        return self._engine(
            case,
            plan,
            BuildInfo(
                build_time_ms=build_ms,
                engine_bytes=len(plan),
                cache_hit=False,
                details=self._details(key, config, stored.meta, phase_ms),
            ),
        )

    def check_typed(self, model: PreparedModel, case: Case) -> None:
        """Refuse a model that does not carry the case's precision: a strongly typed build takes precision from the
        model, so an fp32 model would give an fp32 engine recorded as the case's precision. The precision stage
        (harness.run.precision.typed_for_case) is the one place a recipe is applied; with ``precision_mode: flags``
        the fp32 model is built with builder flags instead."""
        if case.precision not in TYPED_PRECISIONS or not self.takes_typed_models or is_typed(model, case.precision):
            return
        raise HarnessError(
            f"{case.id}: {model.path.name} does not carry {case.precision}; TensorRT builds precision from the "
            "typed model that the precision stage (harness.run.precision.typed_for_case) makes, or from the fp32 "
            "model with precision_mode 'flags' on TensorRT 10.x"
        )

    def _engine(self, case: Case, plan: bytes, build: BuildInfo) -> TensorRTEngine:
        run = RunOptions(
            cuda_graph=self.cuda_graph,
            transfers=self.transfers,
            layer_profile=self.layer_profile,
            artifact_dir=self.context.artifact_dir,
            runtime_cache=self.cache,
            runtime_cache_label=f"runtime-{self.api.label}-{self.target()}",
        )
        return TensorRTEngine(self.api, case.id, plan, build, run)

    def _details(self, key: str, config: dict[str, Any], meta: dict[str, Any], phase_ms: float) -> dict[str, Any]:
        return {
            "build_phase_ms": phase_ms,  # this run: a cache hit is a lookup, a miss the full build
            "cache_key": key,
            "model_sha256": meta.get("model_sha256"),  # the typed model the engine was built from
            "library": self.api.label,
            "target": self.target(),
            "config": config,
            "timing_cache": meta.get("timing_cache"),
            "device_memory_bytes": None,  # known once the engine is deserialized on a GPU (the runner fills it)
        }

    # -- build steps -------------------------------------------------------------------------------------------
    def profiles(self, model: PreparedModel, case: Case) -> list[Profile]:
        """One optimization profile for this case.

        ``range``: min/max span every shape the suite asks of this model (all its batch sizes and shape sets) and
        opt is this case's shape: the engine is what a deployment with a dynamic batch would ship, tuned for this
        case. ``case``: min = opt = max = this case's shape: kernels chosen for exactly one shape, smaller engines
        and sometimes faster ones, but not a deployable dynamic engine. Either way each case builds its own engine
        (opt differs), and the cache makes repeated runs cheap.
        """
        axis = batch_names(model.inputs)  # the batch axis whatever its name, sized by each case's batch size
        current = {info.name: input_shape(info, case.model.inputs.get(info.name), case, axis) for info in model.inputs}
        dynamic = [info for info in model.inputs if _is_dynamic(info, case)]
        if self.profile_mode == "case":
            return [Profile({i.name: (current[i.name], current[i.name], current[i.name]) for i in dynamic})]
        siblings = [c for c in case.suite.cases() if c.model.name == case.model.name]
        if model.fixed_batch is not None:
            siblings = [c for c in siblings if c.batch_size == model.fixed_batch]
        shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]] = {}
        for info in dynamic:
            seen = [input_shape(info, c.model.inputs.get(info.name), c, axis) for c in siblings]
            seen = [s for s in seen if len(s) == len(current[info.name])]
            low = tuple(min(dims) for dims in zip(*seen, strict=True))
            high = tuple(max(dims) for dims in zip(*seen, strict=True))
            shapes[info.name] = (low, current[info.name], high)
        return [Profile(shapes)]

    def workspace_for(self, case: Case) -> int | None:
        """The case's workspace axis wins over the backend option; None leaves TensorRT's default."""
        return int(case.workspace_bytes) if case.workspace_bytes is not None else self.workspace_bytes

    def build_config(self, case: Case, profiles: list[Profile]) -> dict[str, Any]:
        """Everything that shapes the engine, in a canonical form: the cache key hashes it and results record it."""
        return {
            "precision": case.precision,
            "precision_mode": self.precision_mode,
            "strongly_typed": self.precision_mode == "typed",
            "profiles": [p.to_dict() for p in profiles],
            "tf32": self.tf32 or case.precision == "tf32",
            "optimization_level": self.optimization_level,
            "workspace_bytes": self.workspace_for(case),
            "hardware_compatibility": self.hardware_compatibility,
            "version_compatible": self.version_compatible,
            "profiling_verbosity": self.profiling_verbosity,
            "compute_capabilities": self.compute_capabilities,
        }

    def _build_plan(
        self, model: PreparedModel, case: Case, profiles: list[Profile]
    ) -> tuple[bytes, float, dict[str, Any]]:
        """Parse and build; returns (serialized engine, build time in ms, timing-cache facts)."""
        api = self.api
        start = time.perf_counter()
        log = tensorrt_log()
        builder = trt.Builder(log.logger)
        network = builder.create_network(api.network_flags(self.precision_mode == "typed"))
        parser = trt.OnnxParser(network, log.logger)
        parse_onnx(parser, model.path, api)
        config = builder.create_builder_config()
        self._configure(builder, network, config, case, profiles)
        timing = self._attach_timing_cache(config)
        mark = log.mark()
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            errors = log.errors_since(mark)
            detail = errors[-1] if errors else "no message from TensorRT"
            raise HarnessError(
                f"{case.id}: {api.label} could not build an engine from {model.path.name}: {detail}; check the "
                "model's ops and precision (run with --log-level=DEBUG for TensorRT's log)"
            )
        build_ms = (time.perf_counter() - start) * 1e3
        self._save_timing_cache(config, timing)
        return bytes(memoryview(plan)), build_ms, timing

    def _configure(
        self,
        builder: trt.Builder,
        network: trt.INetworkDefinition,
        config: trt.IBuilderConfig,
        case: Case,
        profiles: list[Profile],
    ) -> None:
        api = self.api
        names = {network.get_input(i).name for i in range(network.num_inputs)}
        for profile in profiles:
            if not profile.shapes:
                continue
            opt_profile = builder.create_optimization_profile()
            for name, (low, opt, high) in profile.shapes.items():
                if name not in names:
                    raise HarnessError(f"{case.id}: the network has no input '{name}' (inputs: {sorted(names)})")
                opt_profile.set_shape(name, trt.Dims(list(low)), trt.Dims(list(opt)), trt.Dims(list(high)))
            config.add_optimization_profile(opt_profile)
        if self.precision_mode == "flags":
            api.set_precision_flag(config, case.precision)
        if self.tf32 or case.precision == "tf32":
            config.set_flag(trt.BuilderFlag.TF32)
        else:
            config.clear_flag(trt.BuilderFlag.TF32)
        config.builder_optimization_level = self.optimization_level
        workspace = self.workspace_for(case)
        if workspace is not None:
            config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace)
        config.profiling_verbosity = getattr(trt.ProfilingVerbosity, VERBOSITY[self.profiling_verbosity])
        if self.hardware_compatibility != "none":
            config.hardware_compatibility_level = getattr(
                trt.HardwareCompatibilityLevel, HARDWARE_COMPATIBILITY[self.hardware_compatibility]
            )
        if self.version_compatible:
            config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
        api.set_compute_capabilities(config, self.compute_capabilities)

    def _attach_timing_cache(self, config: trt.IBuilderConfig) -> dict[str, Any]:
        if not self.timing_cache:
            return {"used": False, "reason": "timing_cache is off"}
        if not self.api.uses_timing_cache:
            return {"used": False, "reason": f"{self.api.flavour} does not use a timing cache"}
        label = f"{self.api.label}-{self.target()}"
        data = self.cache.read_timing(label)
        cache = config.create_timing_cache(data)
        if not config.set_timing_cache(cache, ignore_mismatch=False):
            cache = config.create_timing_cache(b"")  # a cache from another GPU or version: start afresh
            config.set_timing_cache(cache, ignore_mismatch=False)
            data = b""
        return {"used": True, "label": label, "loaded_bytes": len(data)}

    def _save_timing_cache(self, config: trt.IBuilderConfig, timing: dict[str, Any]) -> None:
        if not timing.get("used"):
            return
        cache = config.get_timing_cache()
        if cache is None:
            return
        data = bytes(memoryview(cache.serialize()))
        self.cache.write_timing(str(timing["label"]), data)
        timing["saved_bytes"] = len(data)


def parse_onnx(parser: trt.OnnxParser, path: Path, api: trt_compat.TrtApi) -> None:
    """Parse an ONNX file; a failure names the node and op, and a damaged file says so plainly."""
    if not path.is_file():
        raise HarnessError(f"{path}: model file not found")
    if parser.parse_from_file(str(path)):
        return
    lines = api.parser_errors(parser)
    if any("ParseFromCodedStream" in line or "MODEL_DESERIALIZE" in line for line in lines):
        raise HarnessError(
            f"{path}: not a complete ONNX model (the file is truncated or damaged); re-export or re-download it"
        )
    shown = "; ".join(lines[:3]) + (f"; and {len(lines) - 3} more" if len(lines) > 3 else "")
    raise HarnessError(
        f"{path.name}: {api.label}'s ONNX parser failed at {shown}; replace the op, export at another opset, "
        "or provide a plugin"
    )


def _is_dynamic(info: TensorInfo, case: Case) -> bool:
    override = case.model.inputs.get(info.name)
    template = override.shape if override and override.shape else info.shape
    return any(not isinstance(d, int) for d in template)


def precision_markers(model: PreparedModel) -> frozenset[str]:
    """What the ONNX graph says about its precision: ``qdq`` (Q/DQ nodes) and the element types (``fp16``,
    ``bf16``, ``int8``, ``fp8``) of its weights, zero points, graph inputs and outputs and Cast targets."""
    return graph_markers(str(model.path), model.sha256)


@functools.lru_cache(maxsize=64)
def graph_markers(path: str, sha256: str) -> frozenset[str]:
    """:func:`precision_markers` of the file at ``path``, cached by its content hash (every case of a model asks)."""
    import onnx

    proto = onnx.load(path, load_external_data=False)
    graph = proto.graph
    kinds = {"qdq"} if any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in graph.node) else set()
    names = {
        onnx.TensorProto.FLOAT16: "fp16",
        onnx.TensorProto.BFLOAT16: "bf16",
        onnx.TensorProto.INT8: "int8",
        onnx.TensorProto.FLOAT8E4M3FN: "fp8",
    }
    types = [i.data_type for i in graph.initializer]
    types += [v.type.tensor_type.elem_type for v in (*graph.input, *graph.output)]
    types += [a.i for n in graph.node if n.op_type == "Cast" for a in n.attribute if a.name == "to"]
    kinds.update(names[t] for t in types if t in names)
    return frozenset(kinds)


def is_typed(model: PreparedModel, precision: str) -> bool:
    """Whether ``model`` already carries ``precision`` (a recipe's output), judged from its graph."""
    markers = precision_markers(model)
    if precision in ("int8", "fp8"):
        return "qdq" in markers and precision in markers
    return precision in markers


# -- engine and runner -------------------------------------------------------------------------------------------
class TensorRTEngine(BuiltEngine):
    """The built engine as the backend protocol's Engine: :meth:`runner` opens it on the GPU."""

    def runner(self, feeds: dict[str, np.ndarray]) -> TensorRTRunner:
        """A runner on the GPU; a machine that cannot run the engine skips the case with the reason (the build and
        its metrics are already recorded, and --build-only gates them without a GPU)."""
        reason = cuda.available()
        if reason is None:
            info = cuda.device_info(0)
            if self.api.runs_on(info["compute_capability"]) is False:
                reason = (
                    f"{self.api.label} does not run on compute capability {info['compute_capability']} ({info['name']})"
                )
        if reason:
            raise CaseSkipped(f"{self.case_id}: cannot run the engine here: {reason}; use --build-only without one")
        return TensorRTRunner(self, feeds)
