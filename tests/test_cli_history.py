"""``harness history import/show/detect`` and ``--history`` on pytest runs and ``harness merge``, as a user types
them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harness.cli.main import main
from harness.history.store import HistoryStore, run_info
from harness.models.sources import zoo_dir
from tests.suite_runner import BENCH_MODULE, cases, isolated_args
from tests.test_history_store import synthetic_run

pytest_plugins = ["pytester"]

FAST = [
    "--warmup-ms",
    "10",
    "--min-duration-ms",
    "60",
    "--min-iterations",
    "3",
    "--trials",
    "2",
    "-p",
    "no:cacheprovider",
]


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Five nightly runs imported into an SQLite store in the test's folder; the commands run there."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HARNESS_HISTORY", raising=False)
    for i in range(5):
        synthetic_run(i).write(tmp_path / "artifacts" / f"run{i}" / "results.json")
    assert main(["history", "import", "artifacts", "--history", "h.db"]) == 0
    return str(tmp_path / "h.db")


def test_import_counts_what_it_added_and_what_was_there(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["history", "import", "artifacts", "artifacts/run0/results.json", "--history", store]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == f"0 imported, 5 already present in sqlite:///{store}"  # a plain path is an SQLite file
    assert out[0].startswith("  artifacts/run0/results.json: run 20260101T000000Z-") and "already present" in out[0]


def test_show_prints_one_line_per_run_oldest_first(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["history", "show", "--history", store, "--case", "resnet50-fp32-b1", "--metric", "latency"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        "zoo-cpu resnet50-fp32-b1: median latency (latency_median_ms), cpu-synthetic-2cpu__onnxruntime-1.23.2, 5 run(s)"
    )
    assert [line.split()[0] for line in lines[1:]] == [f"2026-01-01T{h:02d}:00:00+00:00" for h in range(5)]
    value = synthetic_run(4).cases[0].metrics["latency_median_ms"]
    assert f"main  {value:.4g} ms  ±" in lines[-1] and lines[-1].endswith("over 5 trials  unchanged")


def test_show_filters_by_date_and_reads_the_store_from_the_environment(
    store: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARNESS_HISTORY", f"sqlite:///{store}")
    capsys.readouterr()
    assert (
        main(["history", "show", "--case", "squeezenet-*", "--metric", "throughput", "--since", "2026-01-01T03:00"])
        == 0
    )
    out = capsys.readouterr().out
    assert out.count("2 run(s)") == 2 and "T02:00:00" not in out


def test_show_without_a_match_says_so_and_exits_1(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "show", "--history", store, "--case", "bert-*"]) == 1
    assert capsys.readouterr().err == f"no series in sqlite:///{store} matches --case bert-*\n"


def test_detect_keeps_what_it_found_in_the_store_and_a_read_only_store_still_prints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "h.db"
    runs = [synthetic_run(i, step_at=12, step=0.08) for i in range(24)]
    with HistoryStore(str(path)) as history:
        for results in runs:
            history.append(results, run_info(results, "import"))
    step = run_info(runs[12], "import").run_id
    assert main(["history", "detect", "--history", str(path), "--metric", "latency"]) == 0
    captured = capsys.readouterr()
    assert captured.out.endswith("4 change point(s) in 4 series of sqlite:///" + str(path) + "\n")
    assert captured.err == ""
    with HistoryStore(str(path)) as history:
        assert [(c.metric, c.run_id, c.worse) for c in history.change_points()] == [
            ("latency_median_ms", step, True)
        ] * 4

    # --since cuts each series short: what it finds is printed, the store keeps the whole-series detection
    assert (
        main(["history", "detect", "--history", str(path), "--metric", "latency", "--since", "2026-01-01T14:00"]) == 0
    )
    captured = capsys.readouterr()
    assert "0 change point(s) in 4 series" in captured.out
    assert captured.err == "history: change points not stored: --since analyses part of each series\n"
    with HistoryStore(str(path)) as history:
        assert len(history.change_points()) == 4

    read_only = f"sqlite:///file:{path}?mode=ro&uri=true"
    assert main(["history", "detect", "--history", read_only, "--metric", "latency", "--newer-than", f"{5:040x}"]) == 1
    captured = capsys.readouterr()
    assert captured.out.count(f"at run {step} ") == captured.out.count("  NEW") == 4
    assert captured.err == (
        f"history: change points printed only: history store {read_only} cannot take the change points: it is "
        "read-only (attempt to write a readonly database)\n"
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["show", "--metric", "speed"], "--metric speed: unknown metric; one of latency_median_ms, "),
        (["show", "--since", "last week"], "--since last week: not a date; give YYYY-MM-DD"),
        (
            ["show", "--history", "postgresql://me:secret@127.0.0.1:1/h"],
            "history store postgresql://me:***@127.0.0.1:1/h ",
        ),
        (["show", "--history", "oracle://db/h"], "--history oracle://db/h: a oracle database is not supported"),
        (["import", "nowhere"], "nowhere: no such results file or folder"),
    ],
)
def test_mistakes_are_one_line_and_exit_2(
    store: str, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    capsys.readouterr()
    assert main(["history", *argv] if "--history" in argv else ["history", *argv, "--history", store]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"harness history: error: {message}") and err.count("\n") == 1, err
    assert "secret" not in err


# -- --history on runs -----------------------------------------------------------------------------------------------
@pytest.fixture
def project(pytester: pytest.Pytester) -> Path:
    pytester.makepyfile(test_bench=BENCH_MODULE)
    shutil.copy(zoo_dir() / "light_squeezenet.onnx", pytester.path / "net.onnx")
    (pytester.path / "suite.yaml").write_text(
        "suite: demo\nmodels:\n  - name: net\n    path: net.onnx\nbatch_sizes: [1, 2]\n"
        "backends:\n  onnxruntime: {intra_op_threads: 1}\n"
    )
    return pytester.path


def bench(pytester: pytest.Pytester, report: str, *args: str) -> pytest.RunResult:
    root = pytester.path
    argv = ["--suite", str(root / "suite.yaml"), *isolated_args(root), "--report-dir", str(root / report)]
    return pytester.runpytest(*argv, *FAST, *args)


def test_shards_and_their_merge_append_to_the_history(
    pytester: pytest.Pytester, project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("HARNESS_HISTORY", raising=False)
    shards = project / "shards.db"
    for index in (1, 2):
        run = bench(pytester, f"shard{index}", "--shard", f"{index}/2", "--history", f"sqlite:///{shards}")
        run.assert_outcomes(passed=1)
        assert any(f"-shard{index}of2-" in line and "appended to sqlite:///" in line for line in run.outlines)
    with HistoryStore(str(shards)) as store:
        assert len(store.runs()) == 2
        assert [(s.case_id, len(s.points)) for s in store.series(metric="latency_median_ms")] == [
            ("net-fp32-b1", 1),
            ("net-fp32-b2", 1),
        ]
        assert store.series("net-fp32-b1", "latency_median_ms")[0].points[0].trials  # the trials are kept
    capsys.readouterr()
    assert main(["history", "import", "shard1", "shard2", "--history", str(shards)]) == 0  # the live appends' files
    assert capsys.readouterr().out.endswith(f"0 imported, 2 already present in sqlite:///{shards}\n")
    merged = str(project / "merged.db")
    argv = ["merge", "shard1", "shard2", "--report-dir", str(project / "all"), "--no-report", "--history", merged]
    assert main(argv) == 0
    assert f"appended to sqlite:///{merged}" in capsys.readouterr().out
    assert main(argv) == 0  # the same merged run again: stored once
    assert f"already in sqlite:///{merged}" in capsys.readouterr().out
    with HistoryStore(merged) as store:
        (run,) = store.runs()
        assert run.source == "merge"


def test_a_bad_history_url_stops_the_run_before_anything_is_measured(pytester: pytest.Pytester, project: Path) -> None:
    run = bench(pytester, "reports", "--history", "postgresql://u:pw@127.0.0.1:1/h")
    assert run.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in run.errlines if "history store" in line]
    assert errors and "cannot be opened" in errors[0] and "pw" not in errors[0]
    assert not cases(project)


@pytest.mark.parametrize("argv", [["show"], ["detect"], ["plot", "--out", "plots"]])
def test_reading_a_store_that_is_not_there_says_so_and_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HARNESS_HISTORY", raising=False)
    for given in (["--history", "histroy.db"], []):  # a mistyped path, and the default store of this folder
        assert main(["history", *argv, *given]) == 2
        err = capsys.readouterr().err
        assert "no history store there yet; runs are appended by pytest --history URL" in err, err
        assert err.count("\n") == 1
    assert not list(tmp_path.glob("*.db")) and not (tmp_path / ".harness-history.db").exists()


def test_an_import_that_fails_on_its_files_creates_no_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    synthetic_run(0).write(tmp_path / "good" / "results.json")
    (tmp_path / "bad.json").write_text("{not json")
    assert main(["history", "import", "good", "bad.json", "--history", "h.db"]) == 2
    assert main(["history", "import", "good", "missing.json", "--history", "h.db"]) == 2
    assert not (tmp_path / "h.db").exists()  # nothing half-imported either: the good file waits for a clean rerun
    assert main(["history", "import", "good", "--history", "h.db"]) == 0


def test_report_history_on_a_store_that_is_not_there_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    synthetic_run(0).write(tmp_path / "run" / "results.json")
    assert main(["report", str(tmp_path / "run"), "--history", str(tmp_path / "none.db"), "--no-step-summary"]) == 2
    err = capsys.readouterr().err
    assert "none.db: no history store there yet" in err and err.count("\n") == 1
    assert not (tmp_path / "none.db").exists()
