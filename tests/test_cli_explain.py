"""``harness explain``: where each case's time went, printed from a results file, against its record or a --baseline."""

from __future__ import annotations

import json

import pytest
from test_view_attribution import BASELINE, CURRENT, layer, record

from harness.attribution.record import LayerProfile
from harness.cli.main import main
from harness.core.metrics import format_ms
from harness.core.results import RunResults
from harness.view.attribution import signed_ms


@pytest.fixture
def results_file(tmp_path):
    path = tmp_path / "results.json"
    RunResults(
        environment={"key": "cpu"},
        cases=[record("net-fp32-b1"), record("net-fp16-b1", baseline=None), record("bare", profile=None)],
    ).write(path)
    return path


def rows(out: str) -> dict[str, list[str]]:
    """The table lines of the output by their first cell."""
    return {line.split()[0]: line.split() for line in out.splitlines() if line.startswith("  ") and line.split()}


def test_explains_each_case_against_its_recorded_baseline_profile(harness, results_file):
    status, out, err = harness("explain", results_file, "--case", "net-fp32-b1")
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0] == (
        "net-fp32-b1 (regressed): end to end 2.00 -> 3.05 ms (+1.05 ms, +52.5%) against the baseline entry's profile"
    )
    assert lines[1] == "  group         baseline ms  current ms  delta ms  % of change  change"
    table = rows(out)
    assert table["conv2"] == ["conv2", format_ms(0.5), format_ms(1.3), "+" + format_ms(0.8), "76%", "slower"]
    assert table["conv3"][3:] == ["+" + format_ms(0.3), "29%", "added"]
    assert table["pool"][3:] == ["-" + format_ms(0.1), "-10%", "removed"]
    assert table["conv1"][3:] == ["+" + format_ms(0), "0%", "unchanged", "(within", "noise)"]
    assert float(table["unattributed"][3]) == pytest.approx(0.05) and table["unattributed"][4] == "5%"
    assert lines[1].index("delta ms") + len("delta ms") == lines[2].index("+0.8") + len("+0.800")  # numbers align
    assert lines[-1] == "  where: conv2 +0.80 ms (76% of the change), conv3 +0.30 ms (29%, added)"


def test_top_adds_up_the_other_groups(harness, results_file):
    status, out, _ = harness("explain", results_file, "--case", "net-fp32-b1", "--top", "1")
    assert status == 0
    assert [line.split()[0] for line in out.splitlines()[2:5]] == ["conv2", "4", "unattributed"]
    assert rows(out)["4"][:3] == ["4", "more", "groups"]


def test_all_cases_by_default_the_unprofiled_ones_named_at_the_end(harness, results_file):
    status, out, _ = harness("explain", results_file)
    assert status == 0
    assert "\nnet-fp16-b1 (regressed): nothing to compare with: the baseline holds no layer profile; record " in out
    assert "  this run's slowest layers:" in out
    assert rows(out)["layer"] == ["layer", "type", "ms", "%", "of", "layers"]
    assert out.rstrip().endswith("no layer profile was recorded; rerun without --no-profile: bare")


def test_baseline_results_file_compares_two_runs(harness, results_file, tmp_path):
    """The upgrade check or an A/B pair: the other run's results.json is the reference."""
    other = tmp_path / "other.json"
    slower_conv1 = LayerProfile.of(
        "onnxruntime", [layer("conv1", 0.4), *[x for x in CURRENT.layers if x.name != "conv1"]], end_to_end_ms=2.45
    )
    RunResults(environment={}, cases=[record("net-fp16-b1", profile=slower_conv1)]).write(other)
    status, out, err = harness("explain", results_file, "--baseline", other, "--case", "net-*")
    assert status == 0, err
    assert out.startswith(f"net-fp32-b1 (regressed): nothing to compare with: {other} holds no layer profile of this")
    head = [line for line in out.splitlines() if line.startswith("net-fp16-b1")]
    assert head == [
        f"net-fp16-b1 (regressed): end to end 2.45 -> 3.05 ms ({signed_ms(0.6)} ms, +24.5%) against {other}"
    ]
    conv1 = rows(out)["conv1"]
    assert [float(x) for x in conv1[1:4]] == pytest.approx([0.4, 1.0, 0.6]) and conv1[4:6] == ["100%", "slower"]


def test_baseline_file_of_the_store(harness, results_file, tmp_path):
    store = tmp_path / "baselines" / "cpu"
    store.mkdir(parents=True)
    entry = {"metrics": {"latency_median_ms": 2.0}, "profile": BASELINE.to_dict()}
    document = {"schema": "harness.baseline/2", "suite": "demo", "key": "cpu", "cases": {"net-fp16-b1": entry}}
    (store / "demo.json").write_text(json.dumps(document))
    status, out, err = harness("explain", results_file, "--baseline", tmp_path / "baselines", "--case", "net-fp16-b1")
    assert status == 0, err
    assert out.startswith("net-fp16-b1 (regressed): end to end 2.00 -> 3.05 ms")
    assert rows(out)["conv2"][3] == "+0.800"
    assert "net-fp32-b1" not in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--case", "gpt-*"], "--case gpt-*: no case of {results} has this id or matches it; its cases: net-fp32-b1"),
        (["--case", "bare"], "{results}: no layer profile for case 'bare'; rerun without --no-profile"),
        (["--baseline", "{empty}"], "--baseline {empty}: no layer profile for the cases explained; record baselines "),
        (["--baseline", "{missing}"], "--baseline {missing}: no such file"),
        (["--top", "0"], "argument --top: expected a whole number of 1 or more, got '0'"),
    ],
)
def test_mistakes_are_one_line_and_exit_2(harness, results_file, tmp_path, args, message):
    empty = tmp_path / "empty.json"
    RunResults(environment={}, cases=[record("net-fp32-b1", profile=None)]).write(empty)
    where = {"results": results_file, "empty": empty, "missing": tmp_path / "missing.json"}
    status, out, err = harness("explain", results_file, *[a.format(**where) for a in args])
    assert status == 2
    assert message.format(**where) in err
    assert "Traceback" not in err and out == ""
    if args[0] != "--top":  # argparse adds its usage line; our errors are one line
        assert len(err.strip().splitlines()) == 1


def test_unreadable_results_file(harness, tmp_path):
    broken = tmp_path / "results.json"
    broken.write_text("{not json")
    status, _, err = harness("explain", tmp_path)  # a folder means its results.json
    assert status == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith(f"harness explain: error: {broken}")


def test_listed_in_help(harness):
    with pytest.raises(SystemExit):
        main(["--help"])
