"""harness.view.attribution: the rows the report and ``harness explain`` show of a case's layer profile and its diff."""

from __future__ import annotations

import json

import pytest

from harness.attribution.diff import diff_profiles
from harness.attribution.record import LayerProfile, LayerTime
from harness.core.errors import HarnessError
from harness.core.results import CaseResult, RunResults
from harness.view.attribution import (
    NO_BASELINE_PROFILE,
    baseline_profiles,
    explain,
    percent,
    report_attributions,
    select_cases,
    signed_ms,
)
from harness.view.report_view import build_view


def layer(name: str, ms: float, kind: str = "Conv", nodes: tuple[str, ...] | None = None, **kw) -> LayerTime:
    return LayerTime(name, nodes if nodes is not None else (name,), kind, ms, kw.pop("spread_ms", 0.002), **kw)


BASELINE = LayerProfile.of(
    "onnxruntime",
    [
        layer("conv1", 1.0),
        layer("relu1", 0.2, "Relu"),
        layer("conv2", 0.5),
        layer("pool", 0.1, "MaxPool"),
    ],
    iterations=50,
    end_to_end_ms=2.0,
)
# conv2 enlarged (+0.8 ms), a branch conv3 added (+0.3 ms), pool removed (-0.1 ms), 0.05 ms more outside the layers
CURRENT = LayerProfile.of(
    "onnxruntime",
    [
        layer("conv1", 1.0),
        layer("relu1", 0.2, "Relu"),
        layer("conv2", 1.3),
        layer("conv3", 0.3),
    ],
    iterations=50,
    end_to_end_ms=3.05,
)


def record(
    case_id: str = "net-fp32-b1",
    profile: LayerProfile | None = CURRENT,
    baseline: LayerProfile | None = BASELINE,
    attribution: LayerProfile | None = None,
    suite: str = "demo",
    verdict: str = "regressed",
) -> CaseResult:
    """A case record as a run writes it: its profile, the baseline entry with the baseline's profile, and (when
    ``attribution`` names a reference profile) the diff the run recorded against it."""
    entry = {"metrics": {"latency_median_ms": 2.0}}
    if baseline is not None:
        entry["profile"] = baseline.to_dict()
    comparison = {"metric": "latency_median_ms", "current": 3.0, "baseline": 2.0, "change": 0.5, "tolerance": 0.1}
    return CaseResult(
        id=case_id,
        params={"suite": suite, "model": "net", "precision": "fp32", "batch_size": 1},
        status="failed" if verdict == "regressed" else "passed",
        verdict=verdict,
        metrics={"latency_median_ms": 3.0},
        baseline=entry,
        comparisons=[comparison | {"verdict": verdict}],
        profile=profile.to_dict() if profile is not None else None,
        attribution=diff_profiles(attribution, profile).to_dict() if attribution and profile else None,
    )


def test_groups_put_the_changed_layers_first_and_add_up_to_the_end_to_end_change():
    a = explain(record())
    assert a is not None and a.diff is not None
    rows = a.group_rows()
    assert [r.label for r in rows[:3]] == ["conv2", "conv3", "pool"]
    assert rows[0].delta_ms == pytest.approx(0.8) and rows[0].change == "slower"
    assert rows[1].change == "added" and rows[2].change == "removed"
    assert rows[0].share == pytest.approx(0.8 / 1.05)
    rest = a.unattributed()
    assert rest is not None and rest.change == "unattributed"
    # the rest on each side is the end-to-end time the layers do not cover
    assert rest.baseline_ms == pytest.approx(2.0 - 1.8) and rest.current_ms == pytest.approx(3.05 - 2.8)
    everything = [*a.group_rows(top=100), rest]
    assert sum(r.delta_ms for r in everything) == pytest.approx(a.delta_ms)
    assert sum(r.share or 0.0 for r in everything) == pytest.approx(1.0)
    assert a.change == pytest.approx(1.05 / 2.0)
    assert a.where.startswith("where: conv2 +0.80 ms (76% of the change)")


def test_groups_after_the_top_are_added_up_in_one_row():
    a = explain(record())
    assert a is not None
    others = a.others(top=1)
    assert others is not None and others.label == "4 more groups"
    assert others.delta_ms == pytest.approx(0.3 - 0.1)
    assert a.others(top=10) is None


def test_layer_rows_carry_their_groups_change_and_the_removed_layers_come_last():
    a = explain(record())
    assert a is not None
    rows = a.layer_rows()
    assert [r.name for r in rows] == ["conv2", "conv1", "conv3", "relu1", "pool"]
    conv2 = rows[0]
    assert conv2.time_ms == pytest.approx(1.3) and conv2.delta_ms == pytest.approx(0.8) and conv2.change == "slower"
    assert conv2.share == pytest.approx(1.3 / 2.8)
    assert rows[1].change == "unchanged"
    assert rows[-1].time_ms is None and rows[-1].change == "removed" and rows[-1].delta_ms == pytest.approx(-0.1)
    assert a.layer_rows(limit=2) == rows[:2]


def test_a_fused_layer_names_its_group():
    fused = LayerProfile.of("tensorrt", [layer("conv2 + relu2", 0.9, "CaskConvolution", ("conv2", "relu2"))])
    split = LayerProfile.of("tensorrt", [layer("conv2", 0.5), layer("relu2", 0.2, "Relu")])
    a = explain(record(profile=split, baseline=fused))
    assert a is not None and a.diff is not None
    assert [g.change for g in a.diff.groups] == ["fusion changed"]
    rows = a.layer_rows()
    assert {r.name: r.group for r in rows} == {"conv2": "conv2+relu2", "relu2": "conv2+relu2"}
    assert all(r.delta_ms == pytest.approx(-0.2) for r in rows)


def test_the_recorded_diff_comes_first_and_a_rebased_report_uses_only_the_new_baseline_entry():
    other = LayerProfile.of("onnxruntime", [layer("conv1", 1.0), layer("relu1", 0.2, "Relu"), layer("conv2", 0.1)])
    case = record(attribution=other)
    recorded = explain(case)
    assert recorded is not None and recorded.diff is not None
    assert recorded.against == "the diff recorded by the run"
    assert recorded.group_rows()[0].delta_ms == pytest.approx(1.2)  # against `other`, not the baseline entry
    rebased = explain(case, rebased=True)
    assert rebased is not None and rebased.group_rows()[0].delta_ms == pytest.approx(0.8)
    case.baseline = {"metrics": {}}  # judged against a baseline without a profile: the recorded diff is stale
    stale = explain(case, rebased=True)
    assert stale is not None and stale.diff is None and stale.note == NO_BASELINE_PROFILE
    given = explain(case, baseline=CURRENT, against="cur.json")
    assert given is not None and given.against == "cur.json" and given.delta_ms == pytest.approx(0.0)


def test_without_a_baseline_profile_only_the_current_layers_are_shown():
    a = explain(record(baseline=None))
    assert a is not None and a.diff is None
    assert a.note == NO_BASELINE_PROFILE and "nothing to compare with" in a.note
    assert a.group_rows() == [] and a.unattributed() is None and a.where == ""
    rows = a.layer_rows()
    assert [r.name for r in rows] == ["conv2", "conv1", "conv3", "relu1"]
    assert all(r.delta_ms is None and r.change == "" for r in rows)


def test_a_case_without_a_profile_has_no_attribution():
    assert explain(record(profile=None)) is None


def test_report_attributions_order_regressed_first_and_say_which_profile_is_unreadable():
    unchanged = record("a-unchanged", verdict="unchanged")
    regressed = record("b-regressed")
    broken = record("c-broken", verdict="unchanged")
    broken.profile = {"source": "onnxruntime", "layers": [{"name": "x", "ms": "slow"}]}
    bare = record("d-bare", profile=None, verdict="unchanged")
    results = RunResults(environment={}, cases=[unchanged, regressed, broken, bare])
    shown, problems = report_attributions(build_view(results))
    assert [a.case_id for a in shown] == ["b-regressed", "a-unchanged"]
    assert problems == ["case 'c-broken': profile layer 0 'x': 'ms' should be a number"]


def test_select_cases_by_id_or_glob_and_refuse_an_unknown_one():
    results = RunResults(environment={}, cases=[record("net-fp32-b1"), record("net-fp16-b1"), record("bert-fp32-b1")])
    assert [c.id for c in select_cases(results, None, "r.json")] == ["net-fp32-b1", "net-fp16-b1", "bert-fp32-b1"]
    assert [c.id for c in select_cases(results, "net-fp16-b1", "r.json")] == ["net-fp16-b1"]
    assert [c.id for c in select_cases(results, "net-*", "r.json")] == ["net-fp32-b1", "net-fp16-b1"]
    with pytest.raises(HarnessError, match=r"--case gpt\*: no case of r.json .* its cases: net-fp32-b1, net-fp16-b1"):
        select_cases(results, "gpt*", "r.json")


def test_baseline_profiles_from_a_baseline_file_and_from_a_results_file(tmp_path):
    current = RunResults(environment={"key": "cpu"}, cases=[record("net-fp32-b1"), record("other", suite="demo")])
    baseline_file = tmp_path / "demo.json"
    entry = {"metrics": {"latency_median_ms": 2.0}, "profile": BASELINE.to_dict()}
    document = {"schema": "harness.baseline/2", "suite": "demo", "key": "cpu", "cases": {"net-fp32-b1": entry}}
    baseline_file.write_text(json.dumps(document))
    lookup, source = baseline_profiles(baseline_file, current)
    assert source == str(baseline_file)
    assert lookup(current.cases[0]) == BASELINE and lookup(current.cases[1]) is None

    # another run's results.json, of a suite with another name: matched by the case id alone
    other_run = RunResults(environment={}, cases=[record("net-fp32-b1", profile=BASELINE, suite="renamed")])
    results_file = tmp_path / "results.json"
    other_run.write(results_file)
    lookup, _ = baseline_profiles(results_file, current)
    assert lookup(current.cases[0]) == BASELINE and lookup(current.cases[1]) is None


def test_baseline_profiles_refuse_what_is_not_a_baseline(tmp_path):
    current = RunResults(environment={}, cases=[record()])
    with pytest.raises(HarnessError, match="no such file"):
        baseline_profiles(tmp_path / "missing.json", current)
    odd = tmp_path / "odd.json"
    odd.write_text('{"schema": "something/1"}')
    with pytest.raises(HarnessError, match="neither a results file"):
        baseline_profiles(odd, current)


def test_cell_texts():
    assert signed_ms(0.41) == "+0.41" and signed_ms(-0.0123) == "-0.0123" and signed_ms(None) == "–"
    assert percent(0.714) == "71%" and percent(-0.05) == "-5%" and percent(None) == "–"


def test_a_report_rebased_on_another_runs_results_keeps_that_runs_profiles(tmp_path):
    from harness.view.rebase import load_entries

    other_run = RunResults(environment={}, cases=[record("net-fp32-b1", profile=BASELINE)])
    results_file = tmp_path / "results.json"
    other_run.write(results_file)
    current = RunResults(environment={"key": "cpu"}, cases=[record("net-fp32-b1")])
    entries, _ = load_entries(results_file, current)
    assert LayerProfile.from_dict(entries[("demo", "net-fp32-b1")]["profile"]) == BASELINE


def test_groups_add_up_by_module_at_the_depth_asked() -> None:
    """A torch.export-based BERT keeps its GELU as four nodes, each its own group: by module they are one
    ``intermediate`` row, next to the dense layer whose width changed."""
    from harness.view.attribution import NO_MODULE, CaseAttribution

    def bert(width: float) -> LayerProfile:
        return LayerProfile.of(
            "onnxruntime",
            [
                layer("node_MatMul_1", 0.10 * width, "MatMul", module="m.encoder.layer.0.intermediate.dense"),
                *(
                    layer(f"node_{op}", 0.02 * width, op, module="m.encoder.layer.0.intermediate.intermediate_act_fn")
                    for op in ("Div", "Erf", "Add", "Mul")
                ),
                layer("node_MatMul_2", 0.10 * width, "MatMul", module="m.encoder.layer.0.output.dense"),
                layer("node_Cast_9", 0.01, "Cast"),  # added by a recipe: no module
            ],
            iterations=50,
        )

    attribution = CaseAttribution("bert-fp32-b1", "bert", bert(4.0), diff_profiles(bert(1.0), bert(4.0)))
    rows = {row.label: row for row in attribution.module_rows(depth=5)}
    assert list(rows) == ["m.encoder.layer.0.intermediate", "m.encoder.layer.0.output", NO_MODULE]
    assert rows["m.encoder.layer.0.intermediate"].delta_ms == pytest.approx(0.18 * 3)  # dense and the four GELU nodes
    assert rows["m.encoder.layer.0.intermediate"].share == pytest.approx(0.54 / 0.84)
    assert rows[NO_MODULE].delta_ms == pytest.approx(0.0)
    assert attribution.module_rows(depth=4)[0].label == "m.encoder.layer.0"
    two = attribution.module_rows(depth=5, top=1)
    assert [row.label for row in two] == ["m.encoder.layer.0.intermediate", "2 more modules"]
    assert two[1].delta_ms == pytest.approx(0.30)
