"""Bad input and environment faults, run as a user would meet them: every one ends with a non-zero exit, one line
naming the thing and what to do, no Python traceback, and nothing finished is lost.

``harness`` commands and the write faults run as real subprocesses; refusals that happen before anything is
measured run through pytester in-process (the same plugin and hooks, without an interpreter start each).
Write faults are injected, not staged with chmod: these tests may run as root, whom permissions do not stop. A
plugin loaded with ``-p`` makes the harness's atomic writes raise the OSError a full disk or a read-only folder
raises, for the files named in ``HARNESS_FAULT_FILE``, after ``HARNESS_FAULT_AFTER`` successful writes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fault_project import FAST, SUITE, env_with, folders, harness, make_project, pytest_args, run

pytest_plugins = ["pytester"]

FAULT_PLUGIN = """
import errno, os
import harness.core.fsio as fsio

_real = fsio.atomic_write_bytes
_written = {"n": 0}

def _faulty(path, data):
    if os.path.basename(str(path)) == os.environ["HARNESS_FAULT_FILE"]:
        _written["n"] += 1
        if _written["n"] > int(os.environ.get("HARNESS_FAULT_AFTER", "0")):
            code = getattr(errno, os.environ.get("HARNESS_FAULT_ERRNO", "ENOSPC"))
            raise OSError(code, os.strerror(code), str(path))
    return _real(path, data)

fsio.atomic_write_bytes = _faulty
"""


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_project(tmp_path_factory.mktemp("template"))
    (root / "harness_fault.py").write_text(FAULT_PLUGIN)
    return root


@pytest.fixture
def project(template: Path, tmp_path: Path) -> Path:
    root = tmp_path / "project"
    shutil.copytree(template, root)
    return root


def assert_refused(code: int, out: str, err: str, expected: str) -> str:
    """Non-zero exit, no traceback, and ``expected`` on one line of the output; returns that line."""
    text = out + err
    assert code != 0, text
    assert "Traceback" not in text and "INTERNALERROR" not in text, text
    lines = [line for line in text.splitlines() if expected in line]
    assert lines, f"no line says {expected!r}:\n{text}"
    return lines[0]


def in_process(pytester: pytest.Pytester, *args: str) -> tuple[int, str, str]:
    """The benchmark run of the pytester project, in this process: (exit status, stdout, stderr)."""
    root = pytester.path
    outcome = pytester.runpytest(
        str(root / "test_bench.py"), "--suite", str(root / "suite.yaml"), *folders(root), *FAST, "-p",
        "no:cacheprovider", *args,
    )  # fmt: skip
    return int(outcome.ret), "\n".join(outcome.outlines), "\n".join(outcome.errlines)


@pytest.fixture
def local(pytester: pytest.Pytester, template: Path) -> Path:
    """The template project copied into pytester's folder (its working directory)."""
    shutil.copytree(template, pytester.path, dirs_exist_ok=True)
    return pytester.path


def results_ids(root: Path) -> list[str]:
    return [c["id"] for c in json.loads((root / "reports" / "results.json").read_text())["cases"]]


# -- mistakes in the command line and the suite file: refused before anything is measured --------------------------
SUITE_MISTAKES = {
    "warmup-inf": (SUITE + "measure: {warmup_ms: .inf}\n", "measure.warmup_ms: expected a finite number, got inf"),
    "duration-nan": (SUITE + "measure: {min_duration_ms: .nan}\n", "measure.min_duration_ms: expected a finite"),
    "duration-negative": (SUITE + "measure: {min_duration_ms: -5}\n", "measure.min_duration_ms: expected a duration"),
    "iterations-fraction": (SUITE + "measure: {min_iterations: 2.5}\n", "measure.min_iterations: expected a whole"),
    "trials-zero": (SUITE + "measure: {trials: 0}\n", "measure.trials: expected a whole number of at least 1"),
    "tolerance-nan": (SUITE + "tolerance: .nan\n", "tolerance: expected a percentage between"),
    "tolerance-negative": (SUITE + "tolerance: -10%\n", "tolerance: expected a percentage between"),
    "batch-zero": (SUITE.replace("[1, 2]", "[0, 2]"), "batch_sizes[0]: expected a positive integer, got 0"),
    "shape-negative": (SUITE + "shapes: {s: {batch: -1}}\n", "shapes.s: expected a mapping of dim name -> positive"),
    "range-nan": (
        SUITE.replace("mlp.onnx\n  - name: mlp2", "mlp.onnx\n    inputs: {x: {range: [0, .nan]}}\n  - name: mlp2"),
        "models[0].inputs.x.range: expected [low, high] of finite numbers",
    ),
    "duplicate-key": (SUITE + "batch_sizes: [4]\n", "key 'batch_sizes' is given twice (lines 7 and 10)"),
    "unknown-key": (SUITE + "measur: {}\n", "measur: unknown key; did you mean 'measure'?"),
}


@pytest.mark.parametrize("name", sorted(SUITE_MISTAKES))
def test_a_suite_mistake_is_one_line_before_anything_runs(pytester, local, name):
    body, expected = SUITE_MISTAKES[name]
    (local / "suite.yaml").write_text(body)
    line = assert_refused(*in_process(pytester), expected)
    assert "suite.yaml" in line
    assert all(not json.loads(f.read_text())["cases"] for f in local.rglob("results.json"))


def test_a_suite_with_bytes_that_are_not_utf8_names_the_offset(project):
    (project / "suite.yaml").write_bytes(SUITE.encode() + b"# caf\xe9\n")
    offset = len(SUITE.encode()) + 5
    assert_refused(*run(pytest_args(project), project), f"line 10: byte {offset} (0xe9) is not UTF-8")


OPTION_MISTAKES = {
    "min-duration-nan": (["--min-duration-ms", "nan"], "--min-duration-ms nan: expected a finite number"),
    "min-duration-negative": (["--min-duration-ms", "-5"], "--min-duration-ms -5.0: expected a duration of 0 ms"),
    "warmup-inf": (["--warmup-ms", "inf"], "--warmup-ms inf: expected a finite number"),
    "iterations-zero": (["--min-iterations", "0"], "--min-iterations 0: expected a whole number of at least 1"),
    "trials-zero": (["--trials", "0"], "--trials 0"),
    "alpha-nan": (["--gate-alpha", "nan"], "--gate-alpha nan: give a level between 0 and 0.5"),
    "backend-option": (["--backend-option", "threads"], "--backend-option 'threads': expected KEY=VALUE"),
    "missing-suite": (["--suite", "nowhere.yaml"], "nowhere.yaml: suite file not found"),
}


@pytest.mark.parametrize("name", sorted(OPTION_MISTAKES))
def test_a_bad_option_is_one_line_before_anything_runs(pytester, local, name):
    args, expected = OPTION_MISTAKES[name]
    assert_refused(*in_process(pytester, *args), expected)
    assert all(not json.loads(f.read_text())["cases"] for f in local.rglob("results.json"))


# -- output folders: checked before anything is measured -------------------------------------------------------------
FOLDERS = {
    "report-dir-is-a-file": ("--report-dir", "file", "is a file, not a folder; point --report-dir at a writable"),
    "report-dir-under-a-file": ("--report-dir", "file/reports", "cannot be written (Not a directory)"),
    "cache-is-a-file": ("--harness-cache", "file", "is a file, not a folder; point --harness-cache at"),
    "baseline-dir-is-a-file": ("--baseline-dir", "file", "is a file, not a folder; point --baseline-dir at"),
    "report-dir-in-proc": ("--report-dir", "/proc/harness-reports", "cannot be written"),
}


@pytest.mark.parametrize("name", sorted(FOLDERS))
def test_an_output_folder_that_cannot_be_written_is_refused_before_measuring(pytester, local, name):
    option, where, expected = FOLDERS[name]
    (local / "file").write_text("not a folder\n")
    target = where if where.startswith("/") else str(local / where)
    args = [option, target, "--update-baselines"]  # the baseline folder is an output only when updating
    line = assert_refused(*in_process(pytester, *args), expected)
    assert f"{option} {target}" in line
    # nothing was measured: at most the session's record that it was refused
    assert all(not json.loads(f.read_text())["cases"] for f in local.rglob("results.json"))


# -- baseline files that cannot be used: refused, never half-used ----------------------------------------------------
def _record_baselines(pytester: pytest.Pytester) -> Path:
    code, out, err = in_process(pytester, "--update-baselines", "--no-reports", "-k", "mlp-fp32-b1")
    assert code == 0, out + err
    (path,) = (pytester.path / "baselines").glob("*/faults.json")
    return path


BASELINE_DAMAGE = {
    "truncated": (lambda text: text[: len(text) // 2], "not valid JSON"),
    "other-suite": (lambda text: text.replace('"suite": "faults"', '"suite": "other"'), "holds the baselines of suite"),
    "wrong-schema": (
        lambda text: text.replace("harness.baseline/2", "harness.baseline/9"),
        "not a baseline file",
    ),
    "nan-metric": (lambda text: _edit_metric(text, "NaN"), "latency_median_ms: expected a finite number, got nan"),
    "text-metric": (lambda text: _edit_metric(text, '"fast"'), "latency_median_ms: expected a finite number"),
    "not-utf8": (lambda text: text.replace('"faults"', '"fa\udcffults"', 1), "not a baseline file"),
}


def _edit_metric(text: str, value: str) -> str:
    data = json.loads(text)
    data["cases"]["mlp-fp32-b1"]["metrics"]["latency_median_ms"] = "@@"
    return json.dumps(data).replace('"@@"', value)


@pytest.mark.parametrize("name", sorted(BASELINE_DAMAGE))
def test_a_baseline_file_that_cannot_be_used_is_refused_with_how_to_record_it(pytester, local, name):
    path = _record_baselines(pytester)
    damage, expected = BASELINE_DAMAGE[name]
    path.write_bytes(damage(path.read_text()).encode("utf-8", "surrogateescape"))
    shutil.rmtree(local / "reports")
    line = assert_refused(*in_process(pytester, "--no-reports"), expected)
    assert str(path) in line and "rerun with --update-baselines" in line
    assert not json.loads((local / "reports" / "results.json").read_text())["cases"]  # refused before measuring
    # the fix the line names works: the file is recorded again, and then it is used
    code, out, err = in_process(pytester, "--no-reports", "--update-baselines", "-k", "mlp-fp32-b1")
    assert code == 0, out + err
    code, out, err = in_process(pytester, "--no-reports", "-k", "mlp-fp32-b1")
    assert code == 0 and "Traceback" not in out + err, out + err


# -- write faults while measuring: one line, the run stops, what was finished stays --------------------------------
@pytest.mark.parametrize(("code_name", "reason"), [("ENOSPC", "No space left on device"), ("EROFS", "Read-only")])
def test_a_full_disk_mid_run_stops_with_one_line_and_keeps_the_finished_cases(project, code_name, reason):
    env = env_with(project, HARNESS_FAULT_FILE="results.json", HARNESS_FAULT_AFTER="1", HARNESS_FAULT_ERRNO=code_name)
    code, out, err = run(pytest_args(project, "-p", "harness_fault", "--no-interleave"), project, env)
    line = assert_refused(code, out, err, f"results.json: cannot write ({reason}")
    assert str(project / "reports" / "results.json") in line
    assert results_ids(project) == ["mlp-fp32-b1"]  # the first case was finished and stays on disk
    assert "benchmark summary" in out  # the session still ends with its summary


def test_a_baseline_write_refused_mid_run_names_the_baseline_file(project):
    env = env_with(project, HARNESS_FAULT_FILE="faults.json", HARNESS_FAULT_AFTER="0", HARNESS_FAULT_ERRNO="EACCES")
    code, out, err = run(pytest_args(project, "-p", "harness_fault", "--update-baselines"), project, env)
    line = assert_refused(code, out, err, "faults.json: cannot write (Permission denied)")
    assert "--baseline-dir" in line
    assert results_ids(project)  # the case measured before the refusal is in results.json


def test_a_report_that_cannot_be_written_leaves_results_and_summary(project):
    env = env_with(project, HARNESS_FAULT_FILE="report.html", HARNESS_FAULT_ERRNO="ENOSPC")
    _, out, err = run(pytest_args(project, "-p", "harness_fault"), project, env)
    assert "Traceback" not in out + err
    assert "report: not written:" in out and "No space left on device" in out
    assert sorted(results_ids(project)) == ["mlp-fp32-b1", "mlp-fp32-b2", "mlp2-fp32-b1", "mlp2-fp32-b2"]


# -- the harness command on bad files ----------------------------------------------------------------------------------
def _results(project: Path) -> Path:
    code, out, err = run(pytest_args(project, "--no-reports", "-k", "mlp-fp32-b1"), project)
    assert code == 0, out + err
    return project / "reports" / "results.json"


CLI_MISTAKES = {
    "report-truncated": ("report", lambda t: t[:100], "not valid JSON"),
    "report-case-without-id": ("report", lambda t: _edit_case(t, "id", None), "no case 'id'"),
    "report-metrics-a-list": ("report", lambda t: _edit_case(t, "metrics", [1, 2]), "field 'metrics' should be"),
    "report-status-a-number": ("report", lambda t: _edit_case(t, "status", 3), "field 'status' should be"),
    "report-cases-a-mapping": ("report", lambda t: json.dumps({**json.loads(t), "cases": {}}), "'cases' should be"),
    "report-not-utf8": ("report", lambda t: t.replace('"fp32"', '"fp\udcff32"', 1), "not UTF-8"),
    "merge-truncated": ("merge", lambda t: t[:100], "not valid JSON"),
    "merge-case-without-id": ("merge", lambda t: _edit_case(t, "id", None), "no case 'id'"),
}


def _edit_case(text: str, key: str, value: object) -> str:
    data = json.loads(text)
    data["cases"][0][key] = value
    return json.dumps(data)


@pytest.mark.parametrize("name", sorted(CLI_MISTAKES))
def test_harness_commands_refuse_a_malformed_results_file_in_one_line(project, name):
    command, damage, expected = CLI_MISTAKES[name]
    path = _results(project)
    path.write_bytes(damage(path.read_text()).encode("utf-8", "surrogateescape"))
    args = [command, str(path)] + (["--report-dir", str(project / "merged")] if command == "merge" else [])
    code, out, err = harness(*args, cwd=project)
    line = assert_refused(code, out, err, expected)
    assert code == 2 and err.strip() == line and str(path) in line


def test_harness_report_reads_back_a_results_file_holding_nan(project):
    path = _results(project)
    path.write_text(path.read_text().replace('"latency_p99_ms": ', '"latency_p99_ms": NaN, "was": ', 1))
    code, out, err = harness("report", str(path), "--no-step-summary", cwd=project)
    assert code == 0 and "Traceback" not in out + err, out + err


CLI_FOLDERS = {
    "report-output-is-a-file": (["report", "{results}", "-o", "{file}"], "-o {file}: is a file, not a folder"),
    "merge-report-dir-under-a-file": (["merge", "{results}", "--report-dir", "{file}/m"], "--report-dir {file}/m"),
    "merge-baseline-dir-is-a-file": (
        ["merge", "{results}", "--report-dir", "{root}/m", "--update-baselines", "--baseline-dir", "{file}"],
        "--baseline-dir {file}: is a file, not a folder",
    ),
}


@pytest.mark.parametrize("name", sorted(CLI_FOLDERS))
def test_harness_commands_check_their_output_folders_first(project, name):
    args, expected = CLI_FOLDERS[name]
    path = _results(project)
    (project / "file").write_text("x")
    values = {"results": str(path), "file": str(project / "file"), "root": str(project)}
    code, out, err = harness(*(a.format(**values) for a in args), cwd=project)
    assert_refused(code, out, err, expected.format(**values))
    assert code == 2 and not (project / "m" / "results.json").exists()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"suite: x\n# caf\xe9\n", "line 2: byte 14 (0xe9) is not UTF-8; save the file as UTF-8"),
        (b"suite: x\nsuite: y\n", "key 'suite' is given twice (lines 1 and 2)"),
        (b"suite: [\n", "fix the YAML syntax"),
    ],
)
def test_harness_validate_refuses_a_bad_suite_file_in_one_line(tmp_path, body, expected):
    (tmp_path / "s.yaml").write_bytes(body)
    code, out, err = harness("validate", str(tmp_path / "s.yaml"), cwd=tmp_path)
    assert_refused(code, out, err, expected)
    assert code == 2 and len(err.strip().splitlines()) == 1


def test_a_defect_of_the_harness_is_one_line_and_a_log_with_the_traceback(tmp_path):
    script = (
        "import sys, harness.report as r\n"
        "def broken(*a, **k):\n    raise RuntimeError('renderer exploded')\n"
        "r.write_reports = broken\n"
        "from harness.cli.main import main\nsys.exit(main(sys.argv[1:]))\n"
    )
    (tmp_path / "results.json").write_text(json.dumps({"schema": "harness.results/1", "environment": {}, "cases": []}))
    code, out, err = run([shutil.which("python3") or "python3", "-c", script, "report", "results.json"], tmp_path)
    line = assert_refused(code, out, err, "internal error: RuntimeError: renderer exploded (traceback in ")
    assert code == 70 and len(err.strip().splitlines()) == 1
    log = Path(line.split("traceback in ", 1)[1].split(";", 1)[0])
    assert "Traceback" in log.read_text() and "renderer exploded" in log.read_text()
