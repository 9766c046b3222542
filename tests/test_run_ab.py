"""A/B mode end to end: the base branch's model files (--ab-base) and two backend settings in one job."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest
from suite_runner import BENCH_MODULE, cases, run_suite

from harness.core.errors import HarnessError
from harness.models.sources import zoo_dir
from harness.run.ab import ABConfig, base_model_path
from harness.suite.load import load_suite

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--warmup-ms", "40", "--min-duration-ms", "300", "--min-iterations", "10", "--trials", "6"]


def slower_model():
    spec = importlib.util.spec_from_file_location("slower_model", ROOT / "benchmarks" / "perf" / "slower_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def branches(pytester: pytest.Pytester, tmp_path: Path) -> tuple[Path, Path]:
    """This branch (the pytester dir) and a checkout of the base branch with the same layout."""
    here = pytester.path
    base = tmp_path / "base"
    for root in (here, base):
        (root / "models").mkdir(parents=True)
        shutil.copy(zoo_dir() / "light_squeezenet.onnx", root / "models" / "net.onnx")
        shutil.copy(zoo_dir() / "light_squeezenet.onnx", root / "models" / "same.onnx")
    pytester.makepyfile(test_bench=BENCH_MODULE)
    (here / "suite.yaml").write_text(
        "suite: ab\n"
        "models:\n"
        "  - name: net\n    path: models/net.onnx\n"
        "  - name: same\n    path: models/same.onnx\n"
        "batch_sizes: [1]\n"
        "tolerance: 8%\n"  # the slower variant is ~18% slower; the twin must stay within it on any runner
    )
    return here, base


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return run_suite(pytester, *FAST, *args)


def test_a_model_about_10_percent_slower_than_the_base_branch_fails_in_one_job(pytester, branches):
    here, base = branches
    slower_model().slower_variant(zoo_dir() / "light_squeezenet.onnx", here / "models" / "net.onnx", convs=3)
    outcome = run(pytester, "--ab-base", str(base))
    outcome.assert_outcomes(passed=1, failed=1)
    by_id = cases(here)
    net, same = by_id["net-fp32-b1"], by_id["same-fp32-b1"]
    assert net["status"] == "failed" and net["verdict"] == "regressed"
    assert same["status"] == "passed" and same["verdict"] in ("unchanged", "ambiguous")
    assert net["params"]["ab"]["reference"]["model"] == str((base / "models" / "net.onnx").resolve())
    assert net["params"]["ab"]["candidate"]["model"] == str((here / "models" / "net.onnx").resolve())
    assert net["measure"]["ab_pairs"] == 12 and net["baseline"]["source"] == "ab-reference"
    assert len(net["baseline"]["trials"]["latency_median_ms"]) == 12
    # each variant's budget (300 ms) split into 12 short trials of at least 3 iterations
    assert all(n >= 3 for n in net["measure"]["trial_iterations"])
    text = outcome.stdout.str()  # latency or throughput: on a loaded runner one of them may fall short of significance
    assert (
        "net-fp32-b1 (this branch vs base): median latency" in text
        or "net-fp32-b1 (this branch vs base): throughput" in text
    )
    assert not (here / "baselines").exists()  # A/B mode neither reads nor writes baselines


def test_a_model_new_in_this_branch_is_reported_new(pytester, branches):
    here, base = branches
    (base / "models" / "net.onnx").unlink()
    outcome = run(pytester, "--ab-base", str(base), "-k", "net")
    outcome.assert_outcomes(passed=1, deselected=1)
    net = cases(here)["net-fp32-b1"]
    assert net["verdict"] == "new" and "has no counterpart under --ab-base" in net["message"]


def test_two_settings_of_one_backend_are_compared_interleaved(pytester, branches):
    here, _ = branches
    outcome = run(pytester, "-k", "same", "--ab-backend-option", "graph_optimization=disable")
    outcome.assert_outcomes(deselected=1, **{"passed": 1} if outcome.ret == 0 else {"failed": 1})
    case = cases(here)["same-fp32-b1"]
    assert case["params"]["ab"]["reference"]["settings"]["graph_optimization"] == "all"
    assert case["params"]["ab"]["candidate"]["settings"]["graph_optimization"] == "disable"
    assert case["verdict"] in ("regressed", "improved", "unchanged", "ambiguous")
    comparison = next(c for c in case["comparisons"] if c["metric"] == "latency_median_ms")
    assert comparison["method"] == "wilcoxon-paired" and comparison["trials"] == [12, 12]
    # Turning ORT's graph optimizations off fuses nothing: squeezenet's Conv+Relu run separately, so it is slower.
    cpu_ratio = sum(case["trials"]["cpu_ms"]) / sum(case["baseline"]["trials"]["cpu_ms"])
    assert cpu_ratio > 1.0


def test_base_models_are_found_relative_to_the_checkout_or_the_suite(tmp_path: Path, branches):
    here, base = branches
    suite = load_suite(here / "suite.yaml")
    case = suite.cases()[0]
    assert base_model_path(case, ABConfig(base_dir=base, root=here)) == (base / "models" / "net.onnx").resolve()
    flat = tmp_path / "flat"  # the base checkout holds the suite folder's content only
    (flat / "models").mkdir(parents=True)
    shutil.copy(base / "models" / "net.onnx", flat / "models" / "net.onnx")
    assert base_model_path(case, ABConfig(base_dir=flat, root=tmp_path / "elsewhere")) is not None
    with pytest.raises(HarnessError, match="A/B mode needs"):
        ABConfig()


SESSION_KIND = "def test_session_kind(harness_session):\n    print('session class:', type(harness_session).__name__)\n"


@pytest.mark.parametrize(
    ("options", "kind"),
    [((), "HarnessSession"), (("--ab-backend-option", "intra_op_threads=1"), "ABSession")],
)
def test_the_ab_options_give_the_run_an_ab_session(pytester, branches, options, kind):
    pytester.makepyfile(test_kind=SESSION_KIND)
    outcome = run_suite(pytester, "-s", "-k", "session_kind", *options)
    outcome.assert_outcomes(passed=1, deselected=2)
    outcome.stdout.fnmatch_lines([f"*session class: {kind}*"])
