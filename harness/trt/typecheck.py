"""Type-check the TensorRT backend against the TensorRT 10.13 API described by ``tensorrt-stubs``.

``python -m harness.trt.typecheck`` (CI runs it through tests/test_trt_typecheck.py).

The ``tensorrt-stubs`` wheel cannot be used by mypy as installed: it puts ``.pyi`` files into a ``tensorrt`` folder
without a ``py.typed`` marker (mypy then skips it and every TensorRT call silently becomes ``Any``), and a few of its
generated signatures are not valid Python (a parameter named ``in``, a parameter without a default after one with a
default, all in plugin interfaces). This module copies the stubs into a temporary folder, repairs those lines, and
runs mypy with that folder on ``MYPYPATH``, so every ``trt.*`` call in the backend is checked for real.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from harness.core.errors import HarnessError

CHECKED = (
    "harness/trt/backend.py",
    "harness/trt/engine.py",
    "harness/trt/log.py",
    "harness/trt/runner.py",
    "harness/trt/compat.py",
    "harness/backends/trtexec.py",
    "harness/backends/engine_cache.py",
)
_DEF = re.compile(r"^(\s*def \w+\()(.*)(\)\s*->.*)$")


def stub_files() -> list[Path]:
    """The ``.pyi`` files of the installed tensorrt-stubs distribution."""
    try:
        dist = importlib.metadata.distribution("tensorrt-stubs")
    except importlib.metadata.PackageNotFoundError:
        raise HarnessError(
            "tensorrt-stubs is not installed: pip install --no-deps tensorrt-stubs (the TensorRT 10.13 API as .pyi)"
        ) from None
    files = [Path(str(dist.locate_file(f))) for f in dist.files or [] if str(f).endswith(".pyi")]
    if not files:
        raise HarnessError("tensorrt-stubs holds no .pyi files; reinstall it with pip install --no-deps tensorrt-stubs")
    return files


def _split_params(text: str) -> list[str]:
    """Split a parameter list at top-level commas."""
    parts, depth, current = [], 0, ""
    for char in text:
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    if current.strip():
        parts.append(current)
    return parts


def repair(line: str) -> str:
    """Make one generated stub line valid Python without changing what it declares for the backend's calls."""
    match = _DEF.match(line)
    if not match:
        return line
    head, params, tail = match.groups()
    fixed, seen_default = [], False
    for param in _split_params(params):
        name = param.split(":")[0].split("=")[0].strip()
        if name == "in":  # a keyword cannot be a parameter name
            param = param.replace("in", "in_", 1)
        if "=" in param:
            seen_default = True
        elif seen_default and not name.startswith("*"):
            param = f"{param} = ..."
        fixed.append(param)
    return f"{head}{','.join(fixed)}{tail}"


def prepare_stubs(target: Path) -> Path:
    """Copy the repaired stubs under ``target``; returns the folder to put on MYPYPATH."""
    for source in stub_files():
        package = source.parent.name
        if package == "tensorrt_stubs":
            continue
        out = target / package / source.name
        out.parent.mkdir(parents=True, exist_ok=True)
        text = source.read_text(encoding="utf-8")
        out.write_text("\n".join(repair(line) for line in text.splitlines()) + "\n", encoding="utf-8")
    # The stubs import the libs wheel of full TensorRT, which is not installed here: an empty stub stands for it.
    (target / "tensorrt_libs").mkdir(exist_ok=True)
    (target / "tensorrt_libs" / "__init__.pyi").write_text("", encoding="utf-8")
    return target


def run_mypy(files: tuple[str, ...] = CHECKED, root: Path | None = None) -> subprocess.CompletedProcess[str]:
    """mypy on ``files`` (relative to ``root``) with the repaired TensorRT stubs; returns the finished process."""
    root = root or Path(__file__).resolve().parents[2]
    with tempfile.TemporaryDirectory(prefix="trt-stubs-") as tmp:
        stubs = prepare_stubs(Path(tmp))
        config = Path(tmp) / "mypy.ini"
        # The stubs' own defects (pybind11 names such as ``capsule``) are not ours to report: only their use is.
        config.write_text(
            "[mypy]\npython_version = 3.11\nwarn_unused_ignores = True\nignore_missing_imports = True\n"
            "disallow_untyped_defs = True\nfollow_imports = silent\n"
            "[mypy-tensorrt.*]\nignore_errors = True\n[mypy-tensorrt_bindings.*]\nignore_errors = True\n"
            "[mypy-tensorrt_libs.*]\nignore_errors = True\n",
            encoding="utf-8",
        )
        env = {**os.environ, "MYPYPATH": str(stubs)}
        cmd = [sys.executable, "-m", "mypy", "--config-file", str(config), "--no-incremental", *files]
        return subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, check=False)


def main() -> int:
    try:
        done = run_mypy()
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    return done.returncode


if __name__ == "__main__":
    raise SystemExit(main())
