"""The backends a suite may name, and the options each accepts with their types (``backends: {name: {...}}``).

This table is the one list: the suite is checked against it when it loads, each backend checks the options it is
created with against its own entry (harness.backends.base.check_options), and the registry of backend factories
(harness.backends.base.REGISTRY) is keyed by the same names. Loading a suite never imports a backend.
"""

from __future__ import annotations

from typing import Any

from harness.suite.problems import kind_of, nearest

OptionTypes = dict[str, type | tuple[type, ...]]

BACKEND_OPTIONS: dict[str, OptionTypes] = {
    "onnxruntime": {
        "intra_op_threads": int,
        "inter_op_threads": int,
        "providers": list,
        "graph_optimization": str,  # disable | basic | extended | all
    },
    "tensorrt": {
        "flavour": str,  # auto | tensorrt | tensorrt-rtx
        "precision_mode": str,  # typed | flags (10.x only)
        "profile": str,  # range | case
        "tf32": bool,
        "optimization_level": int,  # builder optimization level 0..5 (TensorRT's default 3)
        "workspace": (int, str),  # memory-pool limit for every case without a workspaces axis, e.g. 256M
        "hardware_compatibility": str,  # none | ampere_plus | same_compute_capability
        "version_compatible": bool,
        "profiling_verbosity": str,  # detailed | layer_names_only | none
        "compute_capabilities": list,  # TensorRT-RTX ahead-of-time targets, e.g. [SM89, SM120]
        "engine_cache": bool,
        "cache_max_bytes": (int, str),
        "timing_cache": bool,
        "cuda_graph": bool,
        "transfers": bool,  # include H2D/D2H copies in every iteration, each with its own timing
        "layer_profile": bool,  # per-layer times through IProfiler, in a separate pass after measuring
    },
    "trtexec": {
        "binary": str,
        "precision_mode": str,
        "tf32": bool,
        "optimization_level": int,
        "workspace": (int, str),
        "cuda_graph": bool,
        "spin_wait": bool,
        "transfers": bool,
        "profiling_verbosity": str,
        "engine_cache": bool,
    },
    "torch": {"mode": str, "compile_mode": str, "device": int},
}
BACKEND_NAMES = tuple(BACKEND_OPTIONS)


def backend_name_problem(name: str) -> str | None:
    """Why ``name`` is not a backend (with the nearest name), or None."""
    if name in BACKEND_OPTIONS:
        return None
    hint = nearest(name, BACKEND_NAMES, f"use one of {', '.join(sorted(BACKEND_NAMES))}")
    return f"unknown backend '{name}'; {hint}"


def backend_option_problem(backend: str, option: str, value: Any) -> str | None:
    """Why a suite's option for a known backend is unknown to it or of the wrong type, or None."""
    allowed = BACKEND_OPTIONS[backend]
    if option not in allowed:
        hint = nearest(option, allowed, f"known options: {', '.join(allowed) or 'none'}")
        return f"unknown option of backend '{backend}'; {hint}"
    expected = allowed[option]
    if not isinstance(value, expected) or (isinstance(value, bool) and expected is int):
        names = " or ".join(t.__name__ for t in (expected if isinstance(expected, tuple) else (expected,)))
        return f"expected {names}, got {kind_of(value)}"
    return None
