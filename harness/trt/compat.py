"""The one place that knows how TensorRT 10.x, TensorRT 11.x and TensorRT-RTX differ.

Everything else in the TensorRT backend is written once against the common API. Differences are found by probing
features (``hasattr``) rather than by parsing version strings, so a point release that adds or drops a feature is
handled without an edit here. The flavours:

- ``tensorrt`` 10.x: weakly typed by default; legacy precision flags (``BuilderFlag.FP16`` ...) exist.
- ``tensorrt`` 11.x: always strongly typed, no precision flags, ``device_memory_size`` removed.
- TensorRT-RTX (``tensorrt_rtx``, or ``tensorrt_rtx_bindings`` when installed from the ``-libs`` and ``-bindings``
  wheels without the metapackage): strongly typed, builds ahead of time on a CPU-only machine, compiles kernels just
  in time on the GPU; the timing cache has no effect there and forces a GPU query, so it is not used.

``tensorrt-stubs`` installs an empty ``tensorrt`` namespace package, so a module only counts when it has a real
``Builder``.
"""

from __future__ import annotations

import ctypes
import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError

TENSORRT = "tensorrt"
TENSORRT_RTX = "tensorrt-rtx"
FLAVOURS = ("auto", TENSORRT, TENSORRT_RTX)

# Import names tried for each flavour, in order.
_MODULES = {
    TENSORRT: ("tensorrt",),
    TENSORRT_RTX: ("tensorrt_rtx", "tensorrt_rtx_bindings"),
}
INSTALL_HINT = (
    "install TensorRT-RTX with `pip install -e '.[tensorrt-rtx]'` (tensorrt-rtx-cu13-libs and "
    "tensorrt-rtx-cu13-bindings), or TensorRT 10.x/11.x from NVIDIA's package index"
)

# Precisions a legacy builder flag enables on weakly typed TensorRT (10.x); None where no flag is needed.
PRECISION_FLAGS = {"fp32": None, "tf32": None, "fp16": "FP16", "bf16": "BF16", "int8": "INT8", "fp8": "FP8"}

_loaded: TrtApi | None = None


@dataclass(frozen=True)
class TrtApi:
    """A loaded TensorRT module and the facts about it that the backend branches on."""

    module: Any
    flavour: str  # TENSORRT or TENSORRT_RTX
    import_name: str
    version: str

    @property
    def label(self) -> str:
        """``tensorrt-10.13.0.35`` or ``tensorrt-rtx-1.7.1.116``: recorded with results and in the cache key."""
        return f"{self.flavour}-{self.version}"

    # -- features, probed --------------------------------------------------------------------------------------
    @property
    def has_precision_flags(self) -> bool:
        """True on weakly typed TensorRT (10.x), where ``BuilderFlag.FP16`` and friends still exist."""
        return hasattr(self.module.BuilderFlag, "FP16")

    @property
    def uses_timing_cache(self) -> bool:
        # TensorRT-RTX keeps the ITimingCache API for source compatibility, but a timing cache has no effect on its
        # engines and makes the ahead-of-time build query for a GPU, which breaks CPU-only builds.
        return self.flavour == TENSORRT and hasattr(self.module.IBuilderConfig, "create_timing_cache")

    @property
    def targets_compute_capabilities(self) -> bool:
        """TensorRT-RTX can build ahead of time for named GPU generations (``ComputeCapability.SM89``...)."""
        return hasattr(self.module, "ComputeCapability") and hasattr(
            self.module.IBuilderConfig, "set_compute_capability"
        )

    def runs_on(self, compute_capability: str) -> bool | None:
        """Whether engines of this library can run on a GPU of ``compute_capability`` (``"9.0"``): TensorRT-RTX
        lists the GPU generations it supports (``ComputeCapability.SM89``...); None where the library does not say."""
        if not self.targets_compute_capabilities:
            return None
        return "SM" + compute_capability.replace(".", "") in self.module.ComputeCapability.__members__

    def network_flags(self, strongly_typed: bool) -> int:
        """Creation flags for ``Builder.create_network``. 11.x and RTX are always strongly typed (the flag is
        then absent or a no-op); on 10.x it is set unless the legacy precision flags are wanted."""
        flag = getattr(self.module.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
        if flag is None or not strongly_typed:
            return 0
        return 1 << int(flag)

    def set_precision_flag(self, config: Any, precision: str) -> None:
        name = PRECISION_FLAGS.get(precision)
        if name is None:
            return
        flag = getattr(self.module.BuilderFlag, name, None)
        if flag is None:
            raise HarnessError(
                f"{self.label} has no builder flag for {precision}: precision_mode 'flags' works on TensorRT 10.x "
                "only; use precision_mode 'typed' (the recipe's typed ONNX model)"
            )
        config.set_flag(flag)

    def set_compute_capabilities(self, config: Any, names: list[str]) -> None:
        if not names:
            return
        if not self.targets_compute_capabilities:
            raise HarnessError(
                f"{self.label} cannot target compute capabilities ahead of time; drop 'compute_capabilities' "
                "(full TensorRT builds for the GPU it runs on; see hardware_compatibility)"
            )
        enum = self.module.ComputeCapability
        known = [n for n in enum.__members__ if n not in ("NONE",)]
        config.num_compute_capabilities = len(names)
        for i, name in enumerate(names):
            key = name.upper().replace(".", "")
            if key not in enum.__members__:
                raise HarnessError(f"compute capability '{name}' is unknown to {self.label}; use one of {known}")
            config.set_compute_capability(enum.__members__[key], i)

    def device_memory_bytes(self, engine: Any) -> int | None:
        """Device memory the engine needs besides weights (``device_memory_size_v2``; the old name before 10.x)."""
        for name in ("device_memory_size_v2", "device_memory_size"):
            if hasattr(engine, name):
                return int(getattr(engine, name))
        return None

    def parser_errors(self, parser: Any) -> list[str]:
        """One line per parser error, naming the node and its op when the parser knows them."""
        lines = []
        for i in range(parser.num_errors):
            error = parser.get_error(i)
            desc = str(error.desc()).strip()
            node = int(error.node()) if hasattr(error, "node") else -1
            name = str(error.node_name()) if hasattr(error, "node_name") else ""
            op = str(error.node_operator()) if hasattr(error, "node_operator") else ""
            if node >= 0 or name or op:
                where = f"node {node}" + (f" '{name}'" if name else "") + (f" (op {op})" if op else "")
                lines.append(f"{where}: {desc}")
            else:
                lines.append(desc)
        return lines


def execution_context(
    module: Any, engine: Any, graphs: bool, runtime_cache: bytes | None
) -> tuple[Any, Any, str | None]:
    """``(context, runtime cache or None, note)``: a plain context, or on TensorRT-RTX one made from an
    ``IRuntimeConfig``: with ``graphs``, its built-in CUDA graphs (capturing an RTX engine's stream from outside needs
    an engine built for user allocation), and with ``runtime_cache`` (bytes, maybe empty) its JIT-kernel runtime
    cache. The note says who runs the CUDA graphs, None when the caller captures them itself."""
    if not (hasattr(module, "CudaGraphStrategy") and hasattr(engine, "create_runtime_config")):
        return engine.create_execution_context(), None, None
    config = engine.create_runtime_config()
    note = None
    if graphs:
        config.cuda_graph_strategy = module.CudaGraphStrategy.WHOLE_GRAPH_CAPTURE
        note = "on (TensorRT-RTX built-in CUDA graphs)"
    cache = None
    if runtime_cache is not None and hasattr(config, "create_runtime_cache"):
        cache = config.create_runtime_cache()
        if runtime_cache:
            cache.deserialize(runtime_cache)  # refused (False) when made on another GPU or version: starts empty
        config.set_runtime_cache(cache)
    return engine.create_execution_context(config), cache, note


def _has_builder(module: Any) -> bool:
    return hasattr(module, "Builder") and hasattr(module, "OnnxParser")


def _preload_rtx_libs() -> None:
    """Load the TensorRT-RTX shared libraries from the ``tensorrt_rtx_libs`` wheel before the bindings need them.

    The bindings' own ``__init__`` does this through ``tensorrt_rtx_libs`` when it can; this covers an environment
    where that import did not run first (e.g. a bindings module imported by its plain name).
    """
    spec = importlib.util.find_spec("tensorrt_rtx_libs")
    if spec is None or not spec.submodule_search_locations:
        return
    for folder in spec.submodule_search_locations:
        for lib in sorted(Path(folder).glob("*.so*")):
            try:
                ctypes.CDLL(str(lib), mode=ctypes.RTLD_GLOBAL)
            except OSError:
                continue


def _import(name: str) -> Any | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        if name.startswith("tensorrt_rtx"):
            _preload_rtx_libs()
            try:
                return importlib.import_module(name)
            except ImportError:
                return None
        return None


def find(flavour: str = "auto") -> TrtApi:
    """Load TensorRT: ``auto`` prefers full TensorRT, then TensorRT-RTX. Raises HarnessError naming what to install.

    One process uses one flavour: the run-time proxy :data:`trt` in the backend resolves to the first one loaded.
    """
    global _loaded
    flavour = flavour.replace("_", "-")  # tensorrt_rtx, the module's name, means the same
    if flavour not in FLAVOURS:
        raise HarnessError(f"backend 'tensorrt': flavour must be one of {FLAVOURS}, got '{flavour}'")
    wanted = [TENSORRT, TENSORRT_RTX] if flavour == "auto" else [flavour]
    if _loaded is not None:
        if _loaded.flavour in wanted:
            return _loaded
        raise HarnessError(
            f"this process already loaded {_loaded.label}; run {flavour} in a separate pytest run (one TensorRT "
            "flavour per process)"
        )
    for candidate in wanted:
        for name in _MODULES[candidate]:
            module = _import(name)
            if module is not None and _has_builder(module):
                version = str(getattr(module, "__version__", "unknown"))
                _loaded = TrtApi(module=module, flavour=candidate, import_name=name, version=version)
                return _loaded
    what = "TensorRT or TensorRT-RTX" if flavour == "auto" else flavour
    raise HarnessError(f"backend 'tensorrt': no usable {what} found (a module with a Builder); {INSTALL_HINT}")


def loaded() -> TrtApi:
    """The flavour loaded in this process (after :func:`find`)."""
    if _loaded is None:
        raise HarnessError("TensorRT is not loaded yet; create the backend with harness.backends.get_backend first")
    return _loaded


class _ModuleProxy:
    """Stands for the loaded TensorRT module, so the backend can say ``trt.Builder`` whatever the import name was.

    Type checkers see ``import tensorrt as trt`` (the stubs) instead, so every call is checked against the
    TensorRT 10.13 API; RTX-only calls go through :class:`TrtApi`.
    """

    def __getattr__(self, name: str) -> Any:
        return getattr(loaded().module, name)


module_proxy = _ModuleProxy()
