"""PyTorch model factories: find, import and call ``package.module:factory``.

A factory is a function without required arguments that returns ``(module, example_inputs)``: a torch.nn.Module
and its inputs as a dict name -> tensor (the names become the ONNX input names), a tuple of tensors, or one tensor.
Weights are the module's own: random (the harness seeds torch with 0 first, so they are the same on every run) or
loaded by the factory from a local file; the harness never downloads anything.

The module is looked for on ``sys.path``, then in the folders above the suite file (e.g.
``benchmarks/models/torch_zoo.py`` seen from ``benchmarks/suites/gpu.yaml``), as pytest finds test modules. Such a
folder is put on ``sys.path`` only while the module is imported, so loading and checking suites leaves it as it was.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.errors import CaseSkipped, HarnessError


@dataclass(frozen=True)
class FactoryModule:
    """Where a factory's module is: its source file, and the folder to import it from when ``sys.path`` lacks it."""

    file: Path
    folder: Path | None = None  # None: importable from sys.path as it is


def locate_factory(location: str, suite_file: Path | None = None) -> FactoryModule | None:
    """The module of ``package.module:factory`` on ``sys.path`` or in a folder above ``suite_file``, found without
    importing it (torch may be absent); None when neither holds it."""
    parts = location.split(":")[0].split(".")
    for root in [Path(p or ".") for p in sys.path]:
        if found := module_file(root, parts):
            return FactoryModule(found)
    if suite_file is not None:
        for root in Path(suite_file).resolve().parents:
            if found := module_file(root, parts):
                return FactoryModule(found, root)
    return None


def factory_problem(location: str, suite_file: Path | None) -> str | None:
    """Why the factory's module cannot be found (one line with the fix), or None."""
    if locate_factory(location, suite_file) is not None:
        return None
    return (
        f"module '{location.split(':')[0]}' not found on the Python path or in a folder above the suite file; "
        "give an importable module (add its folder to PYTHONPATH)"
    )


def module_file(root: Path, parts: list[str]) -> Path | None:
    """``root/a/b.py`` or ``root/a/b/__init__.py`` for the module ``a.b``, when it exists."""
    base = root.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@contextlib.contextmanager
def importable_from(folder: Path | None) -> Iterator[None]:
    """``folder`` at the front of ``sys.path`` for the duration of an import, then taken out again."""
    entry = str(folder) if folder is not None else None
    if entry is None or entry in sys.path:
        yield
        return
    sys.path.insert(0, entry)
    importlib.invalidate_caches()
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(entry)


def load_torch_factory(location: str, suite_file: Path | None = None) -> tuple[Any, dict[str, Any]]:
    """Import and call a factory: ``(module in eval mode, {input name: example tensor})``, weights seeded with 0.
    ``suite_file``: the suite that names it, whose folders above are searched after ``sys.path``."""
    try:
        import torch
    except ImportError:
        raise CaseSkipped(
            f"model factory '{location}' needs PyTorch: pip install torch (a CPU build is enough to export to ONNX)"
        ) from None
    module_name, _, attr = location.partition(":")
    found = locate_factory(location, suite_file)
    try:
        with importable_from(found.folder if found else None):
            module = importlib.import_module(module_name)
    except Exception as exc:
        raise HarnessError(
            f"torch factory '{location}': cannot import {module_name}: {type(exc).__name__}: {exc}"
        ) from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise HarnessError(f"torch factory '{location}': {module_name} has no function '{attr}'")
    torch.manual_seed(0)
    try:
        made = factory()
    except Exception as exc:
        raise HarnessError(f"torch factory '{location}' failed: {type(exc).__name__}: {exc}") from None
    if not (isinstance(made, tuple) and len(made) == 2 and isinstance(made[0], torch.nn.Module)):
        raise HarnessError(
            f"torch factory '{location}' must return (torch.nn.Module, example inputs), got {type(made).__name__}"
        )
    net, examples = made
    if isinstance(examples, torch.Tensor):
        examples = {"input": examples}
    elif isinstance(examples, (tuple, list)):
        examples = {f"input{i}": t for i, t in enumerate(examples)}
    if (
        not isinstance(examples, dict)
        or not examples
        or not all(isinstance(t, torch.Tensor) for t in examples.values())
    ):
        raise HarnessError(
            f"torch factory '{location}': example inputs must be a tensor, a tuple of tensors or a dict name -> tensor"
        )
    return net.eval(), {str(k): v for k, v in examples.items()}
