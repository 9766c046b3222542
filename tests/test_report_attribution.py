"""The report's "where the time went": per profiled case a plot of the largest group deltas, the groups table and a
layer table sortable by time and by change; summary.md's regressed rows say where; --baseline re-explains."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from suite_runner import model_project, run_suite
from test_view_attribution import BASELINE, layer, record

from harness.attribution.diff import ProfileDiff
from harness.attribution.record import LayerProfile
from harness.cli.main import main
from harness.core.metrics import format_ms
from harness.core.results import RunResults
from harness.report import write_reports
from harness.report.markdown import escape
from harness.view.attribution import percent, signed_ms
from harness.view.cells import slug

pytest_plugins = ["pytester"]

EVIL = "<script>alert(1)</script>"


def sample() -> RunResults:
    return RunResults(
        environment={"key": "cpu"},
        suites={"demo": "demo.yaml"},
        cases=[
            record("net-fp32-b1"),  # regressed, compared with its baseline entry's profile
            record("net-fp16-b1", baseline=None, verdict="unchanged"),  # profile, nothing to compare with
            record("net-int8-b1", profile=None, verdict="unchanged"),  # no profile: no section
            record(EVIL, verdict="unchanged"),
        ],
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return write_reports(sample(), tmp_path_factory.mktemp("where"))


def article(html: str, case_id: str) -> str:
    start = html.index(f'<article class="where" id="where-{slug(case_id)}">')
    return html[start : html.index("</article>", start)]


def test_a_section_per_profiled_case_and_none_without_a_profile(files):
    html = files.html.read_text()
    assert '<a href="#where">Where the time went</a>' in html
    assert "<h2>Where the time went (3 cases)</h2>" in html
    assert html.count('<article class="where"') == 3
    assert f'id="where-{slug("net-int8-b1")}"' not in html
    # the regressed case comes first
    assert html.index(f'id="where-{slug("net-fp32-b1")}"') < html.index(f'id="where-{slug("net-fp16-b1")}"')


def test_the_plot_of_the_largest_group_deltas_is_written_and_embedded(files):
    name = f"{slug('net-fp32-b1')}__where.png"
    png = files.out_dir / "plots" / name
    assert png in files.plots and png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    section = article(files.html.read_text(), "net-fp32-b1")
    assert f"<code>plots/{name}</code>" in section and 'src="data:image/png;base64,' in section
    # not among the per-model plots
    plots = files.html.read_text().split('<section id="plots">')[1].split("</section>")[0]
    assert "__where.png" not in plots


def test_the_groups_table_shows_the_change_and_the_unattributed_rest(files):
    section = article(files.html.read_text(), "net-fp32-b1")
    assert "End to end 2.00 → 3.05 ms" in section and "+52.5%" in section
    assert "where: conv2 +0.80 ms (76% of the change), conv3 +0.30 ms (29%, added)" in section
    groups = section[section.index('<table class="where-groups">') :]
    groups = groups[: groups.index("</table>")]
    labels = re.findall(r"<tr><td[^>]*>(?:<code>)?([^<]+)", groups)
    assert labels == ["conv2", "conv3", "pool", "conv1", "relu1", "unattributed"]
    assert re.search(r"<code>conv2</code></td>.*?>\+0\.8\d*</td><td class=\"num\">76%</td><td>slower", groups)
    assert "removed" in groups and "added" in groups


def test_the_layer_table_is_sortable_by_time_and_by_change(files):
    section = article(files.html.read_text(), "net-fp32-b1")
    table = section[section.index('<table class="sortable where-layers">') :]
    table = table[: table.index("</table>")]
    headers = re.findall(r"<th[^>]*>([^<]+)</th>", table)
    assert headers == ["layer", "type", "ONNX nodes", "ms", "% of layers", "Δ ms (its group)", "change"]
    rows = re.findall(r"<tr><td><code>([^<]+)</code>", table)
    assert rows == ["conv2", "conv1", "conv3", "relu1", "pool"]
    assert 'data-v="1.3"' in table and 'data-v="0.8' in table
    assert re.search(r"<code>pool</code>.*?data-v=\"\">–</td>.*?removed", table)  # gone: no time, sorts last


def test_without_a_baseline_profile_the_layers_only_and_why(files):
    section = article(files.html.read_text(), "net-fp16-b1")
    assert "nothing to compare with: the baseline holds no layer profile; record baselines with --update-baselines" in (
        section
    )
    assert "<img" not in section and "where-groups" not in section
    assert "Δ ms" not in section and "<code>conv2</code>" in section
    assert not (files.out_dir / "plots" / f"{slug('net-fp16-b1')}__where.png").exists()


def test_user_text_is_escaped(files):
    html = files.html.read_text()
    assert EVIL not in html and f"<code>{EVIL.replace('<', '&lt;').replace('>', '&gt;')}</code>" in html


def test_summary_names_where_on_the_regressed_row(files):
    lines = files.markdown.read_text().splitlines()
    regressed = [line for line in lines if line.startswith("| net-fp32-b1 |")]
    assert regressed and regressed[0].endswith(
        "| regressed; where: conv2 +0.80 ms (76% of the change), conv3 +0.30 ms (29%, added) |"
    )
    assert sum("where:" in line for line in lines) == 1  # one tail per case, on regressed rows only


def test_an_unreadable_profile_is_named_and_the_rest_still_shown(tmp_path):
    results = sample()
    results.cases[1].profile = {"source": "onnxruntime", "layers": "none"}
    files = write_reports(results, tmp_path)
    html = files.html.read_text()
    assert "case &#39;net-fp16-b1&#39;: profile: &#39;layers&#39; should be a list" in html
    assert html.count('<article class="where"') == 2


def test_a_report_without_profiles_has_no_section(tmp_path):
    results = sample()
    for case in results.cases:
        case.profile = None
    html = write_reports(results, tmp_path).html.read_text()
    assert '<section id="where">' not in html and 'href="#where"' not in html


def test_a_report_against_another_baseline_explains_against_that_baseline_only(tmp_path):
    """``harness report --baseline``: the section follows the baseline the page judges against, never the diff
    the run recorded against its own."""
    results = sample()
    other = LayerProfile.of("onnxruntime", [layer("conv1", 1.0), layer("relu1", 0.2, "Relu"), layer("conv2", 0.1)])
    results.cases[0] = record("net-fp32-b1", attribution=other)  # recorded: conv2 +1.2 ms
    folder = tmp_path / "baselines" / "cpu"
    folder.mkdir(parents=True)
    entries = {
        "net-fp32-b1": {"metrics": {"latency_median_ms": 2.0}},  # no profile in this baseline
        "net-fp16-b1": {"metrics": {"latency_median_ms": 2.0}, "profile": BASELINE.to_dict()},
    }
    document = {"schema": "harness.baseline/2", "suite": "demo", "key": "cpu", "cases": entries}
    (folder / "demo.json").write_text(json.dumps(document))

    recorded = article(write_reports(results, tmp_path / "own").html.read_text(), "net-fp32-b1")
    assert "where: conv2 +1.20 ms" in recorded
    html = write_reports(results, tmp_path / "out", baseline=tmp_path / "baselines").html.read_text()
    assert "nothing to compare with" in article(html, "net-fp32-b1") and "+1.20" not in article(html, "net-fp32-b1")
    assert "End to end 2.00 → 3.05 ms" in article(html, "net-fp16-b1")


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Chromium (Debian: apt-get install chromium)")
def test_sorting_the_layer_table_in_a_browser(files):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright drives the browser: pip install -e .[dev]")
    problems: list[str] = []
    with sync_api.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}"))
            page.goto(files.html.as_uri())
            table = f"#where-{slug('net-fp32-b1')} table.where-layers"

            def names() -> list[str]:
                return list(page.eval_on_selector_all(f"{table} tbody tr", "rs => rs.map(r => r.cells[0].innerText)"))

            page.click(f"{table} th:has-text('Δ ms')")  # by change: the most negative first
            assert names() == ["pool", "conv1", "relu1", "conv3", "conv2"]
            page.click(f"{table} th:has-text('Δ ms')")
            assert names()[:2] == ["conv2", "conv3"]
            page.click(f"{table} th:text-is('ms')")  # by time: the removed layer (no time) last
            assert names() == ["relu1", "conv3", "conv1", "conv2", "pool"]
            assert page.is_visible(f"#where-{slug('net-fp32-b1')} img")
        finally:
            browser.close()
    assert problems == []


# -- end to end on ONNX Runtime CPU: a real profile, a real diff, the report and the command ----------------------

FAST = ["--warmup-ms", "40", "--min-duration-ms", "300", "--min-iterations", "10", "--trials", "5"]
SUITE = "suite: demo\nmodels:\n  - name: net\n    path: net.onnx\nbackends:\n  onnxruntime: {intra_op_threads: 1}\n"
BRANCH_NODES = {"/branch/Conv", "/Add"}  # what the changed model adds; every other node keeps its export name


def export(path, branch: bool) -> None:
    """Three 3x3 convolutions (32 channels, 40 x 40); ``branch`` adds a 5x5 convolution beside the middle one."""
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem, self.body, self.head = (nn.Conv2d(c, 32, 3, padding=1) for c in (16, 32, 32))
            self.branch = nn.Conv2d(32, 32, 5, padding=2) if branch else None

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = torch.relu(self.stem(x))
            z = self.body(y)
            return self.head(z + self.branch(y) if self.branch is not None else z)

    torch.manual_seed(0)
    torch.onnx.export(
        Net().eval(), (torch.randn(1, 16, 40, 40),), str(path), dynamo=False, opset_version=17,
        input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
    )  # fmt: skip


def test_a_branch_added_to_a_model_is_shown_where_it_went(pytester, tmp_path, capsys):
    """The recorded baseline's model gains a convolution branch: the report's groups table, its plot, summary.md
    and ``harness explain`` (recorded diff and --baseline file) put most of the change on the added nodes."""
    models = tmp_path / "models"
    models.mkdir()
    export(models / "net.onnx", branch=False)
    project = model_project(pytester, models, SUITE + "tolerance: 15%\n")
    run_suite(pytester, *FAST, "--update-baselines").assert_outcomes(passed=1)
    export(project / "net.onnx", branch=True)
    run_suite(pytester, *FAST).assert_outcomes(failed=1)

    reports = project / "reports"
    (case,) = json.loads((reports / "results.json").read_text())["cases"]
    diff = ProfileDiff.from_dict(case["attribution"])
    changed = {g.label for g in diff.groups if BRANCH_NODES & set(g.nodes)}  # layers as ORT names them
    # Of what the layers explain, the added nodes carry most. (Their share of the end-to-end change also holds the
    # profiled pass's unattributed time, which a loaded 2-core machine can swell: the run's gate tests own that.)
    assert diff.groups[0].label in changed
    assert sum(g.delta_ms for g in diff.groups if g.label in changed) >= 0.7 * sum(g.delta_ms for g in diff.groups)

    section = article((reports / "report.html").read_text(), "net-fp32-b1")
    table = section[section.index('<table class="where-groups">') :]
    first = re.search(r"<tr><td><code>([^<]+)</code></td>(?:<td[^>]*>([^<]*)</td>){4}", table)
    assert first is not None and first.group(1) == diff.groups[0].label
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", table[first.start() : first.end()])
    assert cells[-2:] == [signed_ms(diff.groups[0].delta_ms), percent(diff.share(diff.groups[0]))]
    assert (reports / "plots" / f"{slug('net-fp32-b1')}__where.png").is_file()
    # summary.md carries the tail the run's message carries (the groups above their noise; on a loaded machine an
    # added layer's own spread can hide it, and then neither says where)
    where = diff.where()
    summary = (reports / "summary.md").read_text()
    assert f"| regressed; {escape(where)} |" in summary if where else "where:" not in summary

    # the command says the same, from the recorded diff and against the baseline file
    capsys.readouterr()  # what the in-process pytest runs printed
    assert main(["explain", str(reports / "results.json"), "--top", "50"]) == 0
    recorded = capsys.readouterr().out
    (baseline,) = (project / "baselines").glob("*/demo.json")
    assert main(["explain", str(reports / "results.json"), "--baseline", str(baseline), "--top", "50"]) == 0
    against_file = capsys.readouterr().out
    assert against_file.splitlines()[0].endswith(f"against {baseline}")
    for out in (recorded, against_file):
        lines = out.splitlines()
        assert lines[0].startswith("net-fp32-b1 (regressed): end to end ")
        rows = [line.split() for line in lines[2:] if line.startswith("  ") and not line.startswith("  where")]
        groups = [row for row in rows if row[0] != "unattributed"]
        assert groups[0][0] in changed
        on_changed = sum(float(row[3]) for row in groups if row[0] in changed)
        assert on_changed >= 0.7 * sum(float(row[3]) for row in groups), out
    assert recorded.splitlines()[2].split()[:4] == [
        diff.groups[0].label,
        format_ms(diff.groups[0].baseline_ms),
        format_ms(diff.groups[0].current_ms),
        signed_ms(diff.groups[0].delta_ms),
    ]
