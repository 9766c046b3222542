"""Concurrent writers never lose data: baseline updates hold a lock on the file around their read-modify-write."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import time
from pathlib import Path

from fault_project import make_project, pytest_args

from harness.core.results import CaseResult
from harness.judge.baselines import BaselineStore

ENV = {"key": "k", "date": "2026-01-01"}


def _update_many(root: str, worker: int, count: int) -> None:
    """One process recording ``count`` cases one update at a time, as a benchmark session does after each case."""
    store = BaselineStore(Path(root), "k")
    for n in range(count):
        case = CaseResult(
            id=f"w{worker}-c{n}",
            params={"suite": "s", "model": f"w{worker}", "batch_size": n + 1},
            metrics={"latency_median_ms": 1.0 + n, "throughput_sps": 100.0},
            trials={"latency_median_ms": [1.0, 1.1, 0.9]},
        )
        store.update("s", [case], ENV)


def test_processes_updating_one_baseline_file_at_once_keep_every_case(tmp_path):
    workers, count = 4, 15
    context = multiprocessing.get_context("spawn")
    procs = [context.Process(target=_update_many, args=(str(tmp_path), w, count)) for w in range(workers)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
        assert proc.exitcode == 0
    cases = json.loads((tmp_path / "k" / "s.json").read_text())["cases"]
    assert sorted(cases) == sorted(f"w{w}-c{n}" for w in range(workers) for n in range(count))
    assert not list(tmp_path.rglob("*.lock"))  # the lock files stay out of the (committed) baseline folder


def test_two_pytest_shards_updating_one_baseline_folder_at_once_end_with_every_case(tmp_path):
    root = make_project(tmp_path / "project")
    shared = ["--baseline-dir", str(root / "baselines"), "--update-baselines", "--no-reports"]
    runs = [
        subprocess.Popen(
            [*pytest_args(root, "--shard", f"{i}/2", *shared), "--report-dir", str(root / f"reports{i}")],
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in (1, 2)
    ]
    for proc in runs:
        out, _ = proc.communicate(timeout=240)
        assert proc.returncode == 0, out
    (baseline,) = (root / "baselines").glob("*/faults.json")
    assert sorted(json.loads(baseline.read_text())["cases"]) == [
        "mlp-fp32-b1", "mlp-fp32-b2", "mlp2-fp32-b1", "mlp2-fp32-b2"
    ]  # fmt: skip


def test_a_second_run_into_the_same_report_folder_is_refused_while_the_first_keeps_its_results(tmp_path):
    """Two runs into one --report-dir would each replace the other's results.json: the second is refused at once."""
    from filelock import Timeout

    from harness.core.fsio import locked

    root = make_project(tmp_path / "project")
    first = subprocess.Popen(
        pytest_args(root, "--min-duration-ms", "4000", "--no-reports"),
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    results = root / "reports" / "results.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # until the first run holds its results file
        probe = locked(results, timeout_s=0)
        try:
            probe.acquire()
        except Timeout:
            break
        probe.release()
        time.sleep(0.2)
    listing = subprocess.run(pytest_args(root, "--collect-only"), cwd=root, capture_output=True, text=True, timeout=120)
    second = subprocess.run(pytest_args(root, "--no-reports"), cwd=root, capture_output=True, text=True, timeout=120)
    out, _ = first.communicate(timeout=240)
    # listing the cases writes nothing, so it is not refused beside a run in progress
    assert listing.returncode == 0 and listing.stdout.count("::") == 4, listing.stdout + listing.stderr
    assert "PytestAssertRewriteWarning" not in listing.stdout + listing.stderr
    assert first.returncode == 0, out
    text = second.stdout + second.stderr
    assert second.returncode == 4, text
    assert "another harness run is writing results.json there now" in text and "Traceback" not in text
    cases = json.loads(results.read_text())["cases"]
    assert sorted(c["id"] for c in cases) == ["mlp-fp32-b1", "mlp-fp32-b2", "mlp2-fp32-b1", "mlp2-fp32-b2"]
