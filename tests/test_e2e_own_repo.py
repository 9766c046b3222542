"""The harness used from a user's own repository: a fresh folder outside this checkout with a model exported from
PyTorch, no Python file, no pytest configuration. ``harness init`` writes the suite, ``pytest suite.yaml`` runs it."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from harness.core.errors import SuiteError
from harness.pytest_plugin.collect import HINT
from harness.suite.load import load_suite

REPO = Path(__file__).resolve().parents[1]
FAST = ["--warmup-ms", "5", "--min-duration-ms", "20", "--min-iterations", "3", "--trials", "1"]


def export_encoder(path: Path) -> None:
    """A token encoder as a user exports one: int64 ``input_ids`` [batch_size, sequence] -> embedding -> linear,
    with both axes dynamic and the batch axis not named ``batch``."""
    torch = pytest.importorskip("torch")

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = torch.nn.Embedding(1000, 16)
            self.proj = torch.nn.Linear(16, 8)

        def forward(self, input_ids):
            return torch.relu(self.proj(self.embed(input_ids)))

    torch.manual_seed(0)
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation notices
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            Encoder().eval(),
            (torch.zeros(2, 5, dtype=torch.int64),),
            str(path),
            dynamo=False,
            opset_version=17,
            input_names=["input_ids"],
            output_names=["hidden"],
            dynamic_axes={"input_ids": {0: "batch_size", 1: "sequence"}, "hidden": {0: "batch_size", 1: "sequence"}},
        )


def run(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """A command as the user types it in ``cwd``; pytest runs without its cache folder."""
    return subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True, timeout=300)


def pytest_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args]


def harness_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "harness.cli", *args]


@pytest.fixture
def user_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "my-project"
    repo.mkdir()
    assert REPO not in repo.parents
    return repo


def test_init_then_pytest_run_a_users_own_model_and_write_the_reports(user_repo):
    export_encoder(user_repo / "model.onnx")
    init = run(*harness_cmd("init", "model.onnx"), cwd=user_repo)
    assert init.returncode == 0, init.stderr
    assert "run it: pytest suite.yaml" in init.stdout
    listed = run(*harness_cmd("validate", "suite.yaml"), cwd=user_repo)
    ids = [line.strip() for line in listed.stdout.splitlines()[1:]]
    assert ids == ["model-fp32-b1-seq128", "model-fp32-b8-seq128", "model-fp16-b1-seq128", "model-fp16-b8-seq128"]

    result = run(*pytest_cmd("suite.yaml", *FAST), cwd=user_repo)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout and "Traceback" not in result.stdout + result.stderr
    assert f"rootdir: {user_repo}" in result.stdout  # no configuration of this checkout was used
    reports = user_repo / "reports"
    cases = json.loads((reports / "results.json").read_text())["cases"]
    assert [(c["id"], c["status"]) for c in cases] == [(i, "passed") for i in ids]
    assert all((reports / name).is_file() for name in ("report.html", "summary.md", "benchmark.json"))
    assert sorted(p.name for p in user_repo.glob("*.py")) == []


def test_a_folder_of_suites_is_collected_beside_other_yaml(user_repo):
    bench = user_repo / "benchmarks"
    (bench / "models").mkdir(parents=True)
    export_encoder(bench / "models" / "enc.onnx")
    for name in ("cpu", "long"):
        model = f"{{name: enc-{name}, path: models/enc.onnx}}"
        (bench / f"{name}.yaml").write_text(f"suite: {name}\nmodels:\n  - {model}\nshapes: {{s16: {{sequence: 16}}}}\n")
    (user_repo / "mkdocs.yml").write_text("site_name: mine\n")
    (bench / "compose.yaml").write_text("services:\n  db: {image: postgres}\n")
    result = run(*pytest_cmd("benchmarks", "--collect-only", "-q"), cwd=user_repo)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [line for line in result.stdout.splitlines() if "::" in line] == [
        "benchmarks/cpu.yaml::enc-cpu-fp32-b1-s16",
        "benchmarks/long.yaml::enc-long-fp32-b1-s16",
    ]


def test_pytest_where_there_is_nothing_to_run_says_what_to_do(user_repo):
    result = run(*pytest_cmd(), cwd=user_repo)
    assert result.returncode == pytest.ExitCode.NO_TESTS_COLLECTED
    assert HINT in result.stdout


def test_a_backend_typo_is_refused_by_validate_and_by_pytest(user_repo):
    export_encoder(user_repo / "model.onnx")
    (user_repo / "suite.yaml").write_text(
        "suite: typo\nmodels:\n  - {name: enc, path: model.onnx}\nshapes: {s8: {sequence: 8}}\n"
        "backends: {onnxrutime: {intra_op_threads: 1}}\n"
    )
    message = "suite.yaml: backends.onnxrutime: unknown backend 'onnxrutime'; did you mean 'onnxruntime'?"
    validate = run(*harness_cmd("validate", "suite.yaml"), cwd=user_repo)
    assert validate.returncode == 2
    assert validate.stderr == f"harness validate: error: {message}\n"
    for args in (["suite.yaml"], ["--suite", "suite.yaml"]):
        result = run(*pytest_cmd(*args), cwd=user_repo)
        assert result.returncode == pytest.ExitCode.USAGE_ERROR
        errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR:")]
        assert len(errors) == 1 and message in errors[0], result.stdout + result.stderr
        assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("backends", "message"),
    [
        ("{onnxruntime: {intra_op_thread: 1}}", "backends.onnxruntime.intra_op_thread: unknown option of backend "
         "'onnxruntime'; did you mean 'intra_op_threads'?"),
        ("{tensorrt: {tf32: 1}}", "backends.tensorrt.tf32: expected bool, got int"),
        ("{trtexec: {nope: 1}}", "backends.trtexec.nope: unknown option of backend 'trtexec'; known options: "),
        ("{jax: {}}", "backends.jax: unknown backend 'jax'; use one of onnxruntime, tensorrt, torch, trtexec"),
    ],
)  # fmt: skip
def test_backend_options_are_checked_when_the_suite_loads(tmp_path, backends, message):
    (tmp_path / "m.onnx").write_bytes(b"")
    (tmp_path / "suite.yaml").write_text(f"suite: s\nmodels:\n  - {{name: m, path: m.onnx}}\nbackends: {backends}\n")
    with pytest.raises(SuiteError) as caught:
        load_suite(tmp_path / "suite.yaml")
    assert message in str(caught.value)
