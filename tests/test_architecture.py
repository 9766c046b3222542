"""The package's shape: import-linter's contracts in pyproject.toml hold, and they break when a forbidden import is
added; no module imports another module's private name."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
needs_import_linter = pytest.mark.skipif(
    not Path(LINT_IMPORTS).exists(), reason="import-linter is not installed (pip install -e '.[dev]')"
)


def lint_imports(root: Path, *contracts: str) -> subprocess.CompletedProcess[str]:
    """`lint-imports` over the `harness` package found under ``root``, with the repository's contracts (or only
    those named)."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    only = [arg for contract in contracts for arg in ("--contract", contract)]
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache", *only, str(ROOT / "pyproject.toml")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@needs_import_linter
def test_the_import_contracts_hold():
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "broken" not in done.stdout.lower().replace("0 broken", "")


FORBIDDEN = {
    # a report reaching into a backend
    "report/terminal.py": ("from harness.backends import base as _base  # noqa: F401\n", "reports-read-records"),
    # the gate measuring
    "judge/gate.py": ("from harness.measure import loop as _loop  # noqa: F401\n", "judgement-reads-numbers"),
    # the schema reaching up into model preparation
    "suite/__init__.py": ("from harness.models import graph as _graph  # noqa: F401\n", "layers"),
    # a circle inside one package
    "run/session.py": ("from harness.run import ab as _ab  # noqa: F401\n", "no-circles"),
}


@needs_import_linter
@pytest.mark.parametrize("module", sorted(FORBIDDEN))
def test_a_forbidden_import_breaks_a_contract(tmp_path, module):
    shutil.copytree(ROOT / "harness", tmp_path / "harness", ignore=shutil.ignore_patterns("__pycache__"))
    line, contract = FORBIDDEN[module]
    kept = lint_imports(tmp_path, contract)
    assert kept.returncode == 0, kept.stdout[-3000:] + kept.stderr[-1000:]
    target = tmp_path / "harness" / module
    target.write_text(target.read_text(encoding="utf-8") + "\n" + line, encoding="utf-8")
    done = lint_imports(tmp_path, contract)
    assert done.returncode != 0, done.stdout[-3000:]
    assert "BROKEN" in done.stdout and "1 broken" in done.stdout


def _private_imports(path: Path) -> list[str]:
    """``from harness.x import _name`` lines of one file (a private name used outside its module)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("harness"):
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.module}.{alias.name}")
    return found


def test_no_module_imports_a_private_name_of_another():
    found = [line for path in sorted((ROOT / "harness").rglob("*.py")) for line in _private_imports(path)]
    assert found == []
