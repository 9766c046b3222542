"""The environment fingerprint, and the baseline key derived from the parts of it that change performance.

The key is readable on purpose (``cpu-intel-xeon-platinum-8481c-2cpu__onnxruntime-1.23.2``): a folder name under
baselines/ should tell a reviewer which machine and backend its numbers belong to. It holds the hardware (the GPU
when one is used, else the CPU model and visible CPU count) and the backend with its version; the OS, Python, driver
and commit are recorded beside the numbers but do not split baselines.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import harness
from harness.machine.telemetry import availability as telemetry_availability


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown-cpu"


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def gpu_facts() -> list[dict[str, Any]]:
    """Name, driver, CUDA driver version, compute capability and memory of each visible GPU through NVML.

    Returns [] on machines without a GPU, the NVML library or nvidia-ml-py: never raises.
    """
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except Exception:
        return []
    try:
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
        cuda = pynvml.nvmlSystemGetCudaDriverVersion()
        gpus = []
        uuids = [
            _text(pynvml.nvmlDeviceGetUUID(pynvml.nvmlDeviceGetHandleByIndex(i)))
            for i in range(pynvml.nvmlDeviceGetCount())
        ]
        visible = _visible_indices(uuids)
        for index in visible:
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
            gpus.append(
                {
                    "index": index,
                    "name": _text(pynvml.nvmlDeviceGetName(handle)),
                    "driver": driver,
                    "cuda_driver": f"{cuda // 1000}.{cuda % 1000 // 10}",
                    "compute_capability": f"{major}.{minor}",
                    "memory_bytes": int(pynvml.nvmlDeviceGetMemoryInfo(handle).total),
                    "uuid": _text(pynvml.nvmlDeviceGetUUID(handle)),
                    **_gpu_limits(pynvml, handle),
                }
            )
        return gpus
    except Exception:
        return []
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()


def _gpu_limits(pynvml: Any, handle: Any) -> dict[str, Any]:
    """Maximum SM and memory clocks (MHz), enforced power limit (W) and persistence mode: what bounds the speed of
    this board. Each is left out where the board or driver does not report it."""
    readers = {
        "max_sm_clock_mhz": lambda: pynvml.nvmlDeviceGetMaxClockInfo(handle, pynvml.NVML_CLOCK_SM),
        "max_mem_clock_mhz": lambda: pynvml.nvmlDeviceGetMaxClockInfo(handle, pynvml.NVML_CLOCK_MEM),
        "power_limit_w": lambda: pynvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000,
        "persistence_mode": lambda: bool(pynvml.nvmlDeviceGetPersistenceMode(handle)),
    }
    out: dict[str, Any] = {}
    for name, read in readers.items():
        with contextlib.suppress(Exception):
            out[name] = read()
    return out


def _visible_indices(uuids: list[str]) -> list[int]:
    """NVML indices of the GPUs CUDA_VISIBLE_DEVICES shows, in its order; ``uuids`` are NVML's, by index.

    CUDA accepts indices and (unique prefixes of) UUIDs such as ``GPU-8f3e...``; like CUDA, the list ends at the
    first entry that names no device.
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return list(range(len(uuids)))
    out: list[int] = []
    for token in (t.strip() for t in visible.split(",")):
        if token.isdigit():
            index = int(token) if int(token) < len(uuids) else None
        else:
            matches = [i for i, uuid in enumerate(uuids) if token and uuid.startswith(token)]
            index = matches[0] if len(matches) == 1 else None
        if index is None:
            break
        out.append(index)
    return out


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def git_commit(cwd: Path | None = None) -> dict[str, Any]:
    """Commit, branch and dirty flag of the checkout, or {} outside git. CI variables win when present."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = os.environ.get("GITHUB_SHA") or git("rev-parse", "HEAD")
    if not commit:
        return {}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {
        "id": commit,
        "branch": os.environ.get("GITHUB_HEAD_REF")
        or os.environ.get("GITHUB_REF_NAME")
        or git("rev-parse", "--abbrev-ref", "HEAD"),
        "dirty": bool(status),
    }


def fingerprint(
    backend_name: str, backend_version: str, settings: dict[str, Any] | None = None, uses_gpu: bool = False
) -> dict[str, Any]:
    """Everything recorded about where a run happened."""
    gpus = gpu_facts()
    env: dict[str, Any] = {
        "cpu": {"model": cpu_model(), "count": cpu_count(), "arch": platform.machine()},
        "gpus": gpus,
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "backend": {"name": backend_name, "version": backend_version, "settings": settings or {}},
        "harness_version": harness.__version__,
        "commit": git_commit(),
        "hostname": platform.node(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "uses_gpu": uses_gpu,
        "telemetry": telemetry_availability(),  # {"status": "unavailable", "reason": ...} without NVML
    }
    env["key"] = baseline_key(env)
    return env


def baseline_key(env: dict[str, Any]) -> str:
    """``<hardware>__<backend>-<version>``, lower case, filesystem safe."""
    if env.get("uses_gpu") and env.get("gpus"):
        hardware = "gpu-" + _slug(env["gpus"][0]["name"].removeprefix("NVIDIA "))
    else:
        cpu = env["cpu"]
        hardware = f"cpu-{_slug(cpu['model'])}-{cpu['count']}cpu"
    backend = env["backend"]
    return f"{hardware}__{_slug(backend['name'])}-{_slug(backend['version'])}"


def _slug(text: str) -> str:
    text = re.sub(r"\((r|tm|c)\)", "", text.lower()).split("@")[0]  # drop trademarks and the nominal clock
    text = re.sub(r"\b(cpu|processor)\b", "", text)
    return re.sub(r"[^a-z0-9.]+", "-", text).strip("-.") or "unknown"
