"""The GitHub Actions workflows: actionlint passes, and perf.yml keeps its security and GPU promises."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = REPO / ".github" / "workflows"
FORK_GUARD = "github.event_name != 'pull_request' || github.event.pull_request.head.repo.full_name == github.repository"
USES_RE = re.compile(r"^\s*(?:-\s*)?uses:\s*(\S+)(.*)$")


def load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as the boolean true
    return data


def actionlint() -> str:
    path = shutil.which("actionlint")
    if path is None:
        pytest.skip("actionlint is not installed: pip install -e '.[dev]'")
    return path


def run_actionlint(*paths: Path) -> subprocess.CompletedProcess[str]:
    args = [actionlint(), "-no-color"]
    shellcheck = shutil.which("shellcheck")
    args += ["-shellcheck", shellcheck] if shellcheck else ["-shellcheck="]
    return subprocess.run([*args, *map(str, paths)], cwd=REPO, capture_output=True, text=True, timeout=120)


# -- actionlint ------------------------------------------------------------------------------------------------------
def test_actionlint_passes_on_every_workflow():
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert {p.name for p in files} >= {"ci.yml", "perf.yml"}
    proc = run_actionlint(*files)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path):
    broken = tmp_path / ".github" / "workflows" / "perf.yml"
    broken.parent.mkdir(parents=True)
    text = (WORKFLOWS / "perf.yml").read_text(encoding="utf-8")
    broken.write_text(text.replace("needs.plan.outputs.shards", "needs.plan.outputs.shard_count", 1))
    proc = run_actionlint(broken)
    assert proc.returncode != 0
    assert "shard_count" in proc.stdout


# -- perf.yml --------------------------------------------------------------------------------------------------------
def test_perf_runs_on_same_repo_prs_pushes_to_main_and_dispatch_with_its_inputs():
    on = load("perf.yml")["on"]
    assert "pull_request_target" not in on  # it would run PR code with a write token and secrets
    assert on["push"]["branches"] == ["main"]
    assert "pull_request" in on
    inputs = on["workflow_dispatch"]["inputs"]
    assert set(inputs) >= {"suite", "backend", "trt_tag", "update_baselines", "candidate_tag"}
    assert inputs["update_baselines"]["type"] == "boolean"


def test_perf_benchmarks_in_the_ngc_tensorrt_container_with_every_gpu():
    job = load("perf.yml")["jobs"]["benchmark"]
    assert job["container"]["image"] == "nvcr.io/nvidia/tensorrt:${{ matrix.tag }}-py3"
    assert "--gpus all" in job["container"]["options"]
    assert "self-hosted" in job["runs-on"] and "PERF_RUNNER_LABELS" in job["runs-on"]
    assert job["strategy"]["matrix"] == "${{ fromJSON(needs.plan.outputs.matrix) }}"
    script = "\n".join(step.get("run", "") for step in job["steps"])
    assert '--shard "$SHARD"' in script and "pytest" in script and "-n" in script
    assert job["env"]["SHARD"] == "${{ matrix.shard }}/${{ needs.plan.outputs.shards }}"
    upload = next(s for s in job["steps"] if "upload-artifact" in s.get("uses", ""))
    assert "${{ matrix.tag }}" in upload["with"]["name"] and "${{ matrix.shard }}" in upload["with"]["name"]


def test_pull_requests_are_judged_against_the_base_branch_in_the_same_job_unless_told_otherwise():
    job = load("perf.yml")["jobs"]["benchmark"]
    base = next(s for s in job["steps"] if s.get("with", {}).get("path") == ".perf-base")
    # A/B by default for pull requests only; PERF_PR_MODE=baseline opts out (pushes always use the baselines)
    assert base["if"] == "github.event_name == 'pull_request' && vars.PERF_PR_MODE != 'baseline'"
    assert base["with"]["ref"] == "${{ github.event.pull_request.base.sha }}"  # the same repository's base branch
    assert base["with"]["persist-credentials"] is False
    script = "\n".join(step.get("run", "") for step in job["steps"])
    assert "args+=(--ab-base .perf-base)" in script


def test_fork_pull_requests_never_reach_the_self_hosted_runner():
    jobs = load("perf.yml")["jobs"]
    self_hosted = [name for name, job in jobs.items() if "self-hosted" in str(job["runs-on"])]
    assert self_hosted == ["benchmark"]
    for name in ("plan", *self_hosted):
        assert jobs[name]["if"] == FORK_GUARD, name
    # every other job waits for the guarded plan job, so a fork PR starts nothing
    for name, job in jobs.items():
        if name != "plan":
            assert "plan" in ([job["needs"]] if isinstance(job["needs"], str) else job["needs"]), name


def test_every_job_asks_for_the_least_permissions():
    data = load("perf.yml")
    assert data["permissions"] == {}
    writes = {}
    for name, job in data["jobs"].items():
        assert isinstance(job.get("permissions"), dict), f"{name}: no permissions block"
        writes[name] = sorted(k for k, v in job["permissions"].items() if v == "write")
    assert writes == {
        "plan": [],
        "benchmark": [],
        "merge": ["pull-requests"],
        "refresh-baselines": ["contents", "pull-requests"],
        "upgrade-check": [],
    }
    ci = load("ci.yml")
    assert ci["permissions"] == {"contents": "read"}
    assert all("permissions" not in job for job in ci["jobs"].values())


@pytest.mark.parametrize("name", ["perf.yml", "ci.yml"])
def test_actions_are_pinned_by_commit_sha_with_the_version_in_a_comment(name):
    uses = [USES_RE.match(line) for line in (WORKFLOWS / name).read_text(encoding="utf-8").splitlines()]
    uses = [m for m in uses if m]
    assert uses
    for match in uses:
        ref, comment = match.group(1), match.group(2)
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", ref), ref
        assert re.search(r"#\s*v\d+(\.\d+)*", comment), f"{ref}: add the version tag as a comment"
    # one version of each action across the file
    pins: dict[str, set[str]] = {}
    for match in uses:
        action, sha = match.group(1).split("@")
        pins.setdefault(action, set()).add(sha)
    assert all(len(shas) == 1 for shas in pins.values()), pins


def test_no_expression_is_pasted_into_a_shell_script_from_user_input():
    # Inputs, PR titles or branch names pasted into `run:` are script injection; they travel through env instead.
    for name in ("perf.yml", "ci.yml"):
        for job_name, job in load(name)["jobs"].items():
            for step in job["steps"]:
                for found in re.findall(r"\$\{\{([^}]*)\}\}", step.get("run", "")):
                    assert not re.search(r"inputs\.|github\.event\.|github\.head_ref", found), (name, job_name, found)


def test_merge_job_gates_comments_and_runs_after_failed_shards():
    jobs = load("perf.yml")["jobs"]
    merge = jobs["merge"]
    assert merge["needs"] == ["plan", "benchmark"]
    assert "!cancelled()" in merge["if"]  # runs when a shard failed: it reports it and fails the workflow
    assert merge["runs-on"] == "ubuntu-latest"
    script = "\n".join(step.get("run", "") for step in merge["steps"])
    assert 'harness merge shards --expect-shards "$SHARDS"' in script
    sticky = next(s for s in merge["steps"] if "sticky-pull-request-comment" in s.get("uses", ""))
    assert sticky["with"]["header"] and "github.event_name == 'pull_request'" in sticky["if"]
    gate = merge["steps"][-1]
    assert gate["name"] == "Gate" and "exit 1" in gate["run"]
    refresh = jobs["refresh-baselines"]
    assert "needs.plan.outputs.update == 'true'" in refresh["if"]
    refresh_script = "\n".join(step.get("run", "") for step in refresh["steps"])
    assert "--update-baselines --baseline-dir baselines" in refresh_script
    pr = next(s for s in refresh["steps"] if "create-pull-request" in s.get("uses", ""))
    assert pr["continue-on-error"] is True and pr["with"]["add-paths"] == "baselines/"
    fallback = [s for s in refresh["steps"] if s.get("if") == "${{ steps.pr.outcome != 'success' }}"]
    assert any("upload-artifact" in s.get("uses", "") for s in fallback)
    upgrade = "\n".join(step.get("run", "") for step in jobs["upgrade-check"]["steps"])
    assert '--baseline "$RUNNER_TEMP/current.json"' in upgrade


def test_ci_runs_lint_types_tests_and_the_example_suite_on_hosted_runners():
    jobs = load("ci.yml")["jobs"]
    assert all(job["runs-on"] == "ubuntu-latest" for job in jobs.values())
    scripts = "\n".join(step.get("run", "") for job in jobs.values() for step in job["steps"])
    for command in (
        "ruff check",
        "ruff format --check",
        "actionlint",
        "mypy harness",
        "pytest tests",
        "pytest benchmarks",
    ):
        assert command in scripts, command


def run_plan(tmp_path: Path, **env: str) -> tuple[int, dict[str, str], str]:
    """Run the `plan` job's script with bash as Actions would, and read back its outputs."""
    step = load("perf.yml")["jobs"]["plan"]["steps"][0]
    tmp_path.mkdir(parents=True, exist_ok=True)
    output, summary = tmp_path / "output", tmp_path / "summary"
    variables = {"SUITE": "benchmarks/suites/zoo-trt.yaml", "BACKEND": "tensorrt", "TAG": "25.10"}
    variables |= {"CANDIDATE": "", "UPDATE": "false", "SHARDS": "3"} | env
    proc = subprocess.run(
        ["bash", "-e", "-c", step["run"]],
        env={"PATH": "/usr/bin:/bin", "GITHUB_OUTPUT": str(output), "GITHUB_STEP_SUMMARY": str(summary), **variables},
        capture_output=True,
        text=True,
        timeout=30,
    )
    lines = output.read_text().splitlines() if output.exists() else []
    return proc.returncode, dict(line.split("=", 1) for line in lines), proc.stdout + proc.stderr


def test_plan_builds_the_matrix_of_tags_and_shards(tmp_path):
    import json

    status, out, log = run_plan(tmp_path)
    assert status == 0, log
    assert json.loads(out["matrix"]) == {"tag": ["25.10"], "shard": [1, 2, 3]}
    assert out["shards"] == "3" and out["tag"] == "25.10" and out["candidate"] == ""
    status, out, log = run_plan(tmp_path / "upgrade", CANDIDATE="25.12", SHARDS="1")
    assert status == 0, log
    assert json.loads(out["matrix"]) == {"tag": ["25.10", "25.12"], "shard": [1]}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TAG": "latest"}, "container tag 'latest' is not of the form YY.MM"),
        ({"CANDIDATE": "25.12; rm -rf /"}, "is not of the form YY.MM"),
        ({"SHARDS": "0"}, "expected a number of shards from 1 to 32"),
        ({"CANDIDATE": "25.10"}, "candidate_tag equals trt_tag"),
        ({"SUITE": "a.yaml\nmatrix={}"}, "must be one line each"),
    ],
)
def test_plan_refuses_bad_settings_before_any_gpu_job_starts(tmp_path, env, message):
    status, out, log = run_plan(tmp_path, **env)
    assert status == 1 and message in log
    assert "matrix" not in out


# -- perf.yml: the history store -------------------------------------------------------------------------------------
def merge_step(name: str) -> dict[str, Any]:
    return next(s for s in load("perf.yml")["jobs"]["merge"]["steps"] if s.get("name") == name)


def run_step(step: dict[str, Any], tmp_path: Path, tools: dict[str, str], **env: str) -> subprocess.CompletedProcess:
    """A step's script run by bash as Actions would, in ``tmp_path``, with fake commands (``tools``: name -> bash
    body) ahead of the system's on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name, body in tools.items():
        (bin_dir / name).write_text(f"#!/bin/bash\n{body}\n")
        (bin_dir / name).chmod(0o755)
    files = {k: str(tmp_path / k.lower()) for k in ("GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY", "RUNNER_TEMP")}
    (tmp_path / "runner_temp").mkdir(exist_ok=True)
    files["RUNNER_TEMP"] = str(tmp_path / "runner_temp")
    return subprocess.run(
        ["bash", "-e", "-c", step["run"]],
        cwd=tmp_path,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", **files, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def outputs(tmp_path: Path) -> dict[str, str]:
    path = tmp_path / "github_output"
    return dict(line.split("=", 1) for line in path.read_text().splitlines()) if path.exists() else {}


def test_the_history_url_secret_reaches_only_the_steps_that_open_the_store():
    merge = load("perf.yml")["jobs"]["merge"]
    # the job knows whether the secret is set, not its value
    assert merge["env"]["HISTORY_IN_SECRET"] == "${{ secrets.PERF_HISTORY_URL != '' }}"
    holders = []
    for step in merge["steps"]:
        env = step.get("env", {})
        if "uses" in step:  # third-party actions never see it
            assert "PERF_HISTORY_URL" not in str(step.get("with", {})) + str(env), step["uses"]
            continue
        assert "secrets." not in step["run"], step["name"]
        if "secrets.PERF_HISTORY_URL" in str(env):
            assert env["HISTORY_URL"] == "${{ secrets.PERF_HISTORY_URL || 'sqlite:///.perf-history/history.db' }}"
            assert '--history "$HISTORY_URL"' in step["run"]
            assert not re.search(r"(echo|printf|cat)[^\n|]*\$\{?HISTORY_URL|set -x", step["run"]), step["name"]
            holders.append(step["name"])
    assert holders == ["Append this run to the history store", "Trends and change points from the history store"]
    for name, job in load("perf.yml")["jobs"].items():
        if name != "merge":
            assert "PERF_HISTORY_URL" not in str(job), name


def test_only_default_branch_runs_append_to_the_store_and_hand_the_history_file_on():
    merge = load("perf.yml")["jobs"]["merge"]
    assert merge["env"]["RECORD_HISTORY"] == (
        "${{ github.event_name != 'pull_request' && github.ref_name == github.event.repository.default_branch }}"
    )
    append = merge_step("Append this run to the history store")
    assert "env.RECORD_HISTORY == 'true'" in append["if"]
    assert append["run"] == 'harness history import reports/merged/results.json --history "$HISTORY_URL"'
    upload = merge_step("Upload the history file for the next run")
    assert "steps.append.outcome == 'success'" in upload["if"] and "env.HISTORY_IN_SECRET != 'true'" in upload["if"]
    assert upload["with"]["name"] == "perf-history" and upload["with"]["path"] == ".perf-history/history.db"
    download = merge_step("Download the history file")
    assert download["with"]["name"] == "perf-history" and download["with"]["path"] == ".perf-history"
    assert download["with"]["run-id"] == "${{ steps.history-file.outputs.run_id }}"
    assert merge["permissions"]["actions"] == "read"  # another run's artifact
    names = [s.get("name") for s in merge["steps"]]
    assert names.index("Merge (one results file, one report, the step summary)") < names.index(append["name"])
    assert names.index(append["name"]) < names.index("Trends and change points from the history store")
    assert names.index("Trends and change points from the history store") < names.index(
        "Sticky pull request comment (one per pull request, updated by every run)"
    )


GH_ARTIFACTS = """{"artifacts": [
  {"expired": false, "workflow_run": {"id": 41, "head_branch": "feature"}},
  {"expired": true, "workflow_run": {"id": 40, "head_branch": "main"}},
  {"expired": false, "workflow_run": {"id": 39, "head_branch": "main"}},
  {"expired": false, "workflow_run": {"id": 38, "head_branch": "main"}}
]}"""


def test_the_history_file_comes_from_the_newest_unexpired_default_branch_artifact(tmp_path):
    step = merge_step("Find the history file of the last default-branch run")
    assert step["if"] == "env.HISTORY_IN_SECRET != 'true'"
    env = {"GITHUB_REPOSITORY": "o/r", "DEFAULT_BRANCH": "main", "GH_TOKEN": "t"}
    asked = "repos/o/r/actions/artifacts?name=perf-history&per_page=100"
    gh = f"[ \"$2\" = '{asked}' ] || exit 9\ncat <<'J'\n{GH_ARTIFACTS}\nJ"
    proc = run_step(step, tmp_path / "found", {"gh": gh}, **env)
    assert proc.returncode == 0, proc.stderr
    assert outputs(tmp_path / "found") == {"listed": "true", "run_id": "39"}
    proc = run_step(step, tmp_path / "none", {"gh": "echo '{\"artifacts\": []}'"}, **env)
    assert proc.returncode == 0 and outputs(tmp_path / "none") == {"listed": "true", "run_id": ""}
    assert "no history file yet" in proc.stdout
    # the history cannot be seen: this run must not start a new file that would hide it as the newest artifact
    proc = run_step(step, tmp_path / "refused", {"gh": "echo 'HTTP 403' >&2; exit 1"}, **env)
    assert proc.returncode == 0 and outputs(tmp_path / "refused") == {"listed": "false"}
    assert "::warning::could not list the artifacts perf-history" in proc.stdout
    append = merge_step("Append this run to the history store")["if"]
    assert "steps.history-file.outputs.listed == 'true'" in append
    assert "steps.history-download.outcome == 'success'" in append


FAKE_HARNESS = r"""
case "$1" in
  report) mkdir -p reports/merged/trends
          cat > reports/merged/trends/summary.md <<'MD'
### ok

**Trends (last 20 runs in the history store):**

| case | metric | trend |
| --- | --- | --- |
| net | latency p50 | `▁▁█` +6.1% since abc1234 |

Environment: x
MD
          ;;
  history) [ "$*" = "history detect --history sqlite:///.perf-history/history.db --key gpu-h100__tensorrt-10.13 \
--newer-than 2026-01-01T00:00:00Z" ] || { echo "unexpected: $*"; exit 9; }
           if [ -n "$DETECT_ERROR" ]; then echo "harness history: error: $DETECT_ERROR" >&2; exit 2; fi
           echo "demo net latency p50 [key]: +6.1% at run r (2026-01-02), commits abc1234..def5678, p<0.001, worse$NEW"
           echo "1 change point(s) in 4 series of sqlite:///.perf-history/history.db"
           exit "${DETECT_STATUS:-0}" ;;
esac
"""
NO_SERIES = "no series in sqlite:///.perf-history/history.db matches --case *; harness history show lists them"
UNREADABLE = "history store sqlite:///.perf-history/history.db cannot be opened: file is not a database; check ..."


def detect_in_step(tmp_path, **extra: str) -> subprocess.CompletedProcess:
    """The change-point step run with a fake harness whose detect prints and exits as ``extra`` says (DETECT_STATUS
    and NEW: the exit status and the change point's mark; DETECT_ERROR: detect's one-line error, exit 2)."""
    step = merge_step("Trends and change points from the history store")
    (tmp_path / ".perf-history").mkdir(parents=True)
    (tmp_path / ".perf-history" / "history.db").write_text("")
    merged = tmp_path / "reports" / "merged"
    merged.mkdir(parents=True)
    (merged / "results.json").write_text('{"environment": {"key": "gpu-h100__tensorrt-10.13"}}')
    (tmp_path / "runner_temp").mkdir()
    (tmp_path / "runner_temp" / "comment.md").write_text("## Benchmark results\n")
    env = {"HISTORY_URL": "sqlite:///.perf-history/history.db", "HISTORY_IN_SECRET": "false"}
    proc = run_step(step, tmp_path, {"harness": FAKE_HARNESS}, STARTED="2026-01-01T00:00:00Z", **env | extra)
    assert proc.returncode == 0, proc.stderr
    return proc


def summary_and_comment(tmp_path) -> tuple[str, str]:
    comment = (tmp_path / "runner_temp" / "comment.md").read_text()
    assert comment.startswith("## Benchmark results\n")
    return (tmp_path / "github_step_summary").read_text(), comment


@pytest.mark.parametrize(("detect_status", "new"), [(0, ""), (1, "  NEW")])
def test_trends_and_change_points_reach_the_summary_and_the_comment(tmp_path, detect_status, new):
    # detect exits 1 only for a change point newer than --newer-than (marked NEW): this run's finding
    detect_in_step(tmp_path, DETECT_STATUS=str(detect_status), NEW=new)
    assert outputs(tmp_path)["status"] == str(detect_status)
    for text in summary_and_comment(tmp_path):
        assert "| net | latency p50 | `▁▁█` +6.1% since abc1234 |" in text
        assert "Environment" not in text  # the trend table only, not the rest of that summary
        assert f"commits abc1234..def5678, p<0.001, worse{new}\n" in text
        assert f"harness history detect, exit {detect_status}" in text


def test_no_series_of_this_baseline_key_yet_is_no_failure_and_an_unreadable_store_is_not_that(tmp_path):
    detect_in_step(tmp_path / "new", DETECT_ERROR=NO_SERIES)
    assert outputs(tmp_path / "new")["status"] == "0"
    for text in summary_and_comment(tmp_path / "new"):
        assert "harness history detect, exit 0" in text
        assert (
            "no history of baseline key gpu-h100__tensorrt-10.13 yet: the default branch's runs on it start one" in text
        )

    detect_in_step(tmp_path / "unreadable", DETECT_ERROR=UNREADABLE)
    assert outputs(tmp_path / "unreadable")["status"] == "2"  # the gate's "could not be read" warning
    for text in summary_and_comment(tmp_path / "unreadable"):
        assert "harness history detect, exit 2" in text and "file is not a database" in text
        assert "no history of baseline key" not in text


def test_the_step_knows_detects_own_no_series_line(tmp_path, capsys):
    """The step's pattern matches what the real ``harness history detect`` prints on a store without the key."""
    from harness.cli.main import main
    from harness.history.store import HistoryStore

    run = merge_step("Trends and change points from the history store")["run"]
    (pattern,) = re.findall(r"grep -q '([^']+)' \"\$RUNNER_TEMP/changes.txt\"", run)
    url = f"sqlite:///{tmp_path / 'history.db'}"
    HistoryStore(url).close()  # a store with no runs yet
    assert main(["history", "detect", "--history", url, "--key", "gpu-h100__tensorrt-10.13"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert re.search(pattern, line), (pattern, line)
    assert not re.search(pattern, "harness history: error: " + UNREADABLE)


def test_no_store_yet_is_not_an_error(tmp_path):
    step = merge_step("Trends and change points from the history store")
    proc = run_step(step, tmp_path, {"harness": "exit 7"}, HISTORY_IN_SECRET="false", HISTORY_URL="x", STARTED="t")
    assert proc.returncode == 0 and outputs(tmp_path) == {"status": "0"}
    assert "no history store yet" in proc.stdout


@pytest.mark.parametrize(
    ("changes", "record", "status", "message"),
    [
        ("0", "true", 0, "performance gate passed"),
        ("1", "true", 1, "::error::the history store found a change point at this run"),
        ("1", "false", 0, "::warning::the history store holds a recent change point"),
        ("2", "true", 0, "::warning::the history store could not be read (harness history detect exit status 2)"),
        ("", "false", 0, "performance gate passed"),
    ],
)
def test_the_gate_fails_the_default_branch_on_a_change_point_and_warns_elsewhere(
    tmp_path, changes, record, status, message
):
    proc = run_step(merge_step("Gate"), tmp_path, {}, STATUS="0", CHANGES=changes, RECORD_HISTORY=record)
    assert proc.returncode == status and message in proc.stdout, proc.stdout
