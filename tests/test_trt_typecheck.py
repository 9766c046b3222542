"""The TensorRT backend type-checks against the TensorRT 10.13 API (tensorrt-stubs), and the check is real: a call
that the API does not have is caught, so the stubs are not silently read as ``Any``."""

from __future__ import annotations

import importlib.metadata

import pytest

from harness.trt import typecheck as trt_typecheck


def _missing() -> str | None:
    try:
        importlib.metadata.distribution("tensorrt-stubs")
    except importlib.metadata.PackageNotFoundError:
        return "tensorrt-stubs is not installed (pip install --no-deps tensorrt-stubs)"
    try:
        import mypy  # noqa: F401
    except ImportError:
        return "mypy is not installed (pip install -e '.[dev]')"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=str(_missing()))


def test_backend_passes_mypy_against_tensorrt_stubs():
    done = trt_typecheck.run_mypy()
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"no issues found in {len(trt_typecheck.CHECKED)} source files" in done.stdout


def test_a_call_outside_the_tensorrt_api_is_caught(tmp_path):
    package = tmp_path / "probe"
    package.mkdir()
    (package / "wrong.py").write_text(
        "from __future__ import annotations\n"
        "import tensorrt as trt\n\n\n"
        "def configure(config: trt.IBuilderConfig) -> None:\n"
        "    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, '256M')\n"
        "    config.set_workspace_size(1)\n",
        encoding="utf-8",
    )
    done = trt_typecheck.run_mypy(("probe/wrong.py",), root=tmp_path)
    assert done.returncode == 1
    assert 'Argument 2 to "set_memory_pool_limit" of "IBuilderConfig" has incompatible type "str"' in done.stdout
    assert '"IBuilderConfig" has no attribute "set_workspace_size"' in done.stdout


def test_generated_stub_defects_are_repaired():
    assert trt_typecheck.repair("    def f(self, in: list[int], out: list[int]) -> int:") == (
        "    def f(self, in_: list[int], out: list[int]) -> int:"
    )
    fixed = trt_typecheck.repair("    def g(self, a: int, b: W = None, c: int) -> L:")
    assert fixed == "    def g(self, a: int, b: W = None, c: int = ...) -> L:"
    compile(fixed.strip() + " ...", "<stub>", "exec")


def test_missing_stubs_are_explained(monkeypatch):
    def absent(name: str):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", absent)
    with pytest.raises(Exception, match="pip install --no-deps tensorrt-stubs"):
        trt_typecheck.stub_files()
