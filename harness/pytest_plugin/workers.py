"""Run bookkeeping at the end of a pytest session, and pytest-xdist: one worker per GPU, one results file each.

Without xdist the session's ``results.json`` is rewritten after every case (see :mod:`harness.run.session`); at the end
this module adds the session's run record (shard, exit status, gate outcome) that ``harness merge`` checks.

With xdist (``pytest benchmarks -n 2``) every worker is a separate process, so a shared ``results.json`` rewritten
after each case would lose cases to races. Instead each worker writes its own file after every case, under
``<report dir>/.xdist/<run id>/<worker>/results.json``, and never writes baselines; when the session ends the
controller merges those files (:mod:`harness.run.merge`) into ``results.json``, writes the baselines once from the
merged results with ``--update-baselines``, and only then removes the worker files. A crash of the controller
leaves every finished case in the worker files: ``harness merge <report dir>/.xdist`` recovers them.

GPUs: the controller hands each worker one device, ``CUDA_VISIBLE_DEVICES`` set in the worker before anything
touches CUDA, so workers never share a GPU and every worker sees its GPU as device 0. The devices are those of
``--worker-gpus`` (default ``auto``: the controller's ``CUDA_VISIBLE_DEVICES`` when set, else every GPU that NVML
or nvidia-smi lists; none on a machine without a GPU, where workers run unpinned).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from harness.core.errors import HarnessError, output_error
from harness.core.results import RunResults
from harness.machine.environment import fingerprint, gpu_facts
from harness.pytest_plugin.collect import case_of
from harness.pytest_plugin.options import report_dir
from harness.pytest_plugin.shard import ShardPlugin
from harness.pytest_plugin.state import cases_of, session_of, state_of
from harness.run.merge import find_results, merge, write_baselines
from harness.run.session import HarnessSession

XDIST_DIR = ".xdist"


# -- devices ------------------------------------------------------------------------------------------------------
def visible_gpus() -> list[str]:
    """This process's GPUs as ``CUDA_VISIBLE_DEVICES`` entries (indices or UUIDs); [] without a GPU."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d.strip() for d in env.split(",") if d.strip() and d.strip() != "-1"]
    gpus = gpu_facts()
    if gpus:
        return [str(g["index"]) for g in gpus]
    try:  # no nvidia-ml-py: the driver's own tool, when present
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip().isdigit()]


def worker_gpus(option: str | None) -> list[str]:
    """The devices of ``--worker-gpus``: ``auto``, ``none``, or a comma list such as ``0,1`` or GPU UUIDs."""
    value = (option or "auto").strip()
    if value == "auto":
        return visible_gpus()
    if value == "none":
        return []
    devices = [d.strip() for d in value.split(",") if d.strip()]
    if not devices:
        raise HarnessError(f"--worker-gpus {option!r}: expected auto, none or a list such as 0,1")
    return devices


def auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto``: one worker per GPU where there are GPUs; elsewhere (None) xdist's own choice, the CPU count.

    xdist asks while parsing the command line, before ``pytest_configure``, so the plugin module forwards here.
    """
    try:
        devices = worker_gpus(config.getoption("worker_gpus", None))
    except HarnessError as exc:
        raise pytest.UsageError(str(exc)) from None
    return len(devices) or None


def _worker_number(worker_id: str) -> int:
    digits = worker_id.removeprefix("gw")
    return int(digits) if digits.isdigit() else 0


# -- the plugin ---------------------------------------------------------------------------------------------------
def is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def is_controller(config: pytest.Config) -> bool:
    """True in the process that runs xdist workers (``-n N`` with N > 0), not in a worker or a plain run."""
    if is_worker(config) or config.getoption("collectonly", False):
        return False
    dist = config.getoption("dist", "no")
    return bool(config.getoption("numprocesses", None)) or dist not in (None, "no")


class RunRecorder:
    """Session-end bookkeeping for plain runs, xdist workers and the xdist controller (one instance per process)."""

    def __init__(self, config: pytest.Config, shard: ShardPlugin | None) -> None:
        self.config = config
        self.shard = shard
        self.devices: list[str] = []
        self.assigned: dict[str, str] = {}  # worker id -> CUDA_VISIBLE_DEVICES value
        self.run_dir: Path | None = None
        self.worker_outputs: dict[str, dict[str, Any]] = {}
        if is_worker(config):
            device = config.workerinput.get("harness_gpu")  # type: ignore[attr-defined]
            if device is not None:
                os.environ["CUDA_VISIBLE_DEVICES"] = str(device)
        elif is_controller(config):
            try:
                self.devices = worker_gpus(config.getoption("worker_gpus", None))
            except HarnessError as exc:
                raise pytest.UsageError(str(exc)) from None
            workers = config.getoption("numprocesses", None)
            if self.devices and isinstance(workers, int) and workers > len(self.devices):
                raise pytest.UsageError(
                    f"-n {workers} starts more workers than GPUs ({len(self.devices)}: {','.join(self.devices)}); "
                    f"use -n {len(self.devices)} for one worker per GPU, or --worker-gpus none to run unpinned"
                )

    # xdist hooks: optional, so the harness works without pytest-xdist installed
    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        worker_id = node.workerinput["workerid"]
        self.run_dir = report_dir(self.config) / XDIST_DIR / str(node.workerinput["testrunuid"])
        node.workerinput["harness_run_dir"] = str(self.run_dir)
        if self.devices:
            # A worker that replaces a crashed one gets a new id (gw2 after gw0 and gw1); wrap it onto the GPUs.
            device = self.devices[_worker_number(worker_id) % len(self.devices)]
            node.workerinput["harness_gpu"] = device
            self.assigned[worker_id] = device

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        output = getattr(node, "workeroutput", None)
        if output:
            self.worker_outputs[node.workerinput["workerid"]] = output

    def pytest_report_header(self, config: pytest.Config) -> str | None:
        if self.devices and is_controller(config):
            return f"harness: one GPU per xdist worker from {','.join(self.devices)}"
        return None

    @pytest.hookimpl(tryfirst=True)  # before the reports are written from the session's results
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if is_worker(self.config):
            self._finish_worker(session)
        elif is_controller(self.config):
            self._finish_controller(session)
        else:
            self._finish_plain(session)

    # -- the three kinds of process -------------------------------------------------------------------------------
    def adapt(self, hsession: HarnessSession) -> None:
        """Point a worker's session at its own results file and keep it away from the baseline files."""
        if not is_worker(self.config):
            return
        run_dir = self.config.workerinput.get("harness_run_dir")  # type: ignore[attr-defined]
        worker_id = self.config.workerinput["workerid"]  # type: ignore[attr-defined]
        base = Path(run_dir) if run_dir else hsession.config.report_dir / XDIST_DIR / "run"
        hsession.results_path = base / worker_id / "results.json"
        hsession.config.write_baselines = False

    def _finish_worker(self, session: pytest.Session) -> None:
        state = state_of(self.config)
        hsession = state.session
        output = self.config.workeroutput  # type: ignore[attr-defined]
        output["harness_run"] = state.cases is not None
        output["harness_shard"] = self.shard.record() if self.shard else None
        output["harness_items"] = _selected_ids(session) if state.cases is not None else []
        if hsession is not None and hsession.results is not None:
            output["harness_results"] = str(hsession.results_path)

    def _finish_plain(self, session: pytest.Session) -> None:
        self._allow_empty_shard(session)
        if state_of(self.config).cases is None or self.config.getoption("collectonly", False):
            return  # not a benchmark run (e.g. the harness's own tests), or nothing ran
        hsession = session_of(self.config)
        results = _results_of(self.config, hsession)
        record = self._run_record(session)
        record["items"] = _selected_ids(session)
        results.runs.append(record)
        hsession.results = results
        _write(self.config, results, hsession.results_path)

    def _finish_controller(self, session: pytest.Session) -> None:
        outputs = self.worker_outputs.values()
        found = self.run_dir is not None and self.run_dir.is_dir() and any(self.run_dir.rglob("results.json"))
        if not found and not any(o.get("harness_run") for o in outputs):
            return  # the workers ran no benchmark case: nothing to merge
        hsession = session_of(self.config)
        parts: list[tuple[str, RunResults]] = []
        if found and self.run_dir is not None:
            for path in find_results([self.run_dir]):
                parts.append((path.parent.name, RunResults.read(path)))
        shard = next((o["harness_shard"] for o in outputs if o.get("harness_shard")), None)
        self._allow_empty_shard(session)
        results = _merge_workers(parts) if parts else _results_of(self.config, hsession)
        record = self._run_record(session)
        record["shard"] = shard
        # What the workers collected (each collects every item, then xdist deals them out): merge checks that
        # every one of them has a result, so a worker that died mid-case cannot pass unnoticed.
        record["items"] = sorted({i for o in outputs for i in o.get("harness_items") or ()})
        results.runs.append(record)
        hsession.results = results
        # atomic: the merged file exists before the worker files go; a refused write keeps the worker files
        if not _write(self.config, results, hsession.results_path):
            return
        if hsession.config.update_baselines:
            try:
                write_baselines(results, hsession.config.baseline_dir)
            except HarnessError as exc:
                state_of(self.config).write_error = str(exc)
                return
        if self.run_dir is not None:
            shutil.rmtree(self.run_dir, ignore_errors=True)
            with contextlib.suppress(OSError):
                self.run_dir.parent.rmdir()  # only when no other run's files are left in it

    # -- helpers ------------------------------------------------------------------------------------------------
    def _allow_empty_shard(self, session: pytest.Session) -> None:
        """A shard with nothing to run (more shards than cases) passes instead of pytest's 'no tests' status 5."""
        if self.shard is not None and session.exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
            session.exitstatus = pytest.ExitCode.OK

    def _run_record(self, session: pytest.Session) -> dict[str, Any]:
        status = int(session.exitstatus)
        record: dict[str, Any] = {
            "shard": self.shard.record() if self.shard else None,
            "exit_status": status,
            "gate": "passed" if status == 0 else "failed",
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "host": os.uname().nodename if hasattr(os, "uname") else None,
        }
        if is_controller(self.config):
            record["workers"] = sorted(self.worker_outputs) or sorted(self.assigned)
            if self.assigned:
                record["worker_gpus"] = dict(sorted(self.assigned.items()))
        return record


def _merge_workers(parts: list[tuple[str, RunResults]]) -> RunResults:
    """Worker files of one run: disjoint cases by construction; a worker that crashed and was replaced may have
    recorded a case the replacement ran again, and then the later file wins rather than failing the run."""
    try:
        merged: RunResults = merge(parts).results
        return merged
    except HarnessError:
        combined = RunResults(environment=dict(parts[0][1].environment))
        for _, part in sorted(parts, key=lambda p: p[0]):
            combined.suites.update(part.suites)
            for case in part.cases:
                combined.add(case)
        return combined


def _selected_ids(session: pytest.Session) -> list[str]:
    """Case ids of the benchmark items this session selected (after -k, --shard and deselection)."""
    ids = []
    for item in getattr(session, "items", None) or []:
        case = case_of(item)  # a suite file's own item, or a bench module's test_case[...]
        if case is not None:
            ids.append(case.id)
    return ids


def _write(config: pytest.Config, results: RunResults, path: Path) -> bool:
    """Write the session's results at its end; a refused write is kept for the terminal summary (one line),
    since raising here would end the session in a traceback and hide the summary."""
    try:
        results.write(path)
    except OSError as exc:
        state_of(config).write_error = str(output_error(exc, path, "--report-dir"))
        return False
    return True


def _results_of(config: pytest.Config, hsession: HarnessSession) -> RunResults:
    """The session's results, or an empty record with this machine's environment when no case ran here."""
    if hsession.results is not None:
        return hsession.results
    try:
        cases = cases_of(config)
        if cases:
            hsession.environment(hsession.backend_for(cases[0].suite))
    except HarnessError:
        pass  # recorded below as an environment without a backend; the usage error was already reported
    if hsession.results is None:
        hsession.results = RunResults(environment=fingerprint(hsession.config.backend, "unavailable"))
    return hsession.results


def configure(config: pytest.Config, shard: ShardPlugin | None) -> RunRecorder:
    recorder = RunRecorder(config, shard)
    config.pluginmanager.register(recorder, "harness-runs")
    return recorder


def add_options(group: pytest.OptionGroup) -> None:
    group.addoption(
        "--worker-gpus",
        default="auto",
        metavar="auto|none|LIST",
        help="GPUs handed to pytest-xdist workers, one each via CUDA_VISIBLE_DEVICES: auto (the visible GPUs), "
        "none, or a list such as 0,1 (default: auto)",
    )
