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
