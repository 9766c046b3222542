"""``harness explain`` on trtexec's own export files: two engines' ``--exportProfile`` files (and their companions,
found by name) diffed without a harness run.

The MobileNet files are real TensorRT 8.x exports (tests/data/tensorrt-exports/NOTICE.md); the "slower engine" is a
copy of them with one layer made 4x slower, in the profile and in every per-inference time.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_view_attribution import record

from harness.attribution.trt_files import profile_from_files
from harness.core.results import RunResults

EXPORTS = Path(__file__).parent / "data" / "tensorrt-exports"
ENGINE = "mobilenet.qat.engine"
SLOWED = "features.6.conv.1.0.weight + QuantizeLinear_267 + Conv_271 + PWN(Clip_275)"
SLOWED_NODES = ("Conv_271", "Clip_275")
# TREx's names of an engine's files, and the trtexec backend's names in its artifact folder
TREX = {"profile": "profile.json", "layer_info": "graph.json", "times": "timing.json"}
ARTIFACTS = {"profile": "profile.json", "layer_info": "layer_info.json", "times": "times.json"}


def write_engine(folder: Path, names: dict[str, str], prefix: str = "", slower: float = 1.0) -> Path:
    """The MobileNet exports under ``folder`` with the given names; ``slower`` multiplies the SLOWED layer's times
    and adds what it gained to every inference's latency. Returns the profile's path."""
    folder.mkdir(parents=True, exist_ok=True)
    profile = json.loads((EXPORTS / f"{ENGINE}.profile.json").read_text())
    (row,) = [r for r in profile[1:] if r.get("name") == SLOWED]
    gained = row["medianMs"] * (slower - 1)
    for key in ("timeMs", "averageMs", "medianMs"):
        row[key] *= slower
    times = json.loads((EXPORTS / f"{ENGINE}.timing.json").read_text())
    for inference in times:
        inference["latencyMs"] += gained
    (folder / (prefix + names["profile"])).write_text(json.dumps(profile))
    (folder / (prefix + names["times"])).write_text(json.dumps(times))
    shutil.copy(EXPORTS / f"{ENGINE}.graph.json", folder / (prefix + names["layer_info"]))
    return folder / (prefix + names["profile"])


def groups(out: str) -> list[list[str]]:
    """The groups table's rows (after its header, before the unattributed row), split on two or more spaces."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("  group "))
    rows = []
    for line in lines[start + 1 :]:
        cells = [cell for cell in line.strip().split("  ") if cell]
        if not line.startswith("  ") or cells[0].strip() in ("unattributed", "where:") or "more group" in cells[0]:
            break
        rows.append([cell.strip() for cell in cells])
    return rows


def share(row: list[str]) -> float:
    return float(row[4].rstrip("%")) / 100


def assert_slowed_first(out: str) -> None:
    first = groups(out)[0]
    assert first[0].startswith("features.6.conv.1.0.weight + QuantizeLinear_267"), out
    assert first[5] == "slower" and share(first) > 0.7
    where = [line for line in out.splitlines() if line.startswith("  where: ")]
    assert where and where[0].startswith(f"  where: {SLOWED} +0.0")
    assert all(node in where[0] for node in SLOWED_NODES)


def test_slowed_layer_first_with_companions_found_by_trex_names(harness, tmp_path):
    old = write_engine(tmp_path / "old", TREX, f"{ENGINE}.")
    new = write_engine(tmp_path / "new", TREX, f"{ENGINE}.", slower=4.0)
    status, out, err = harness("explain", new, "--baseline", old)
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0] == (
        f"files: {new}, layer info {tmp_path}/new/{ENGINE}.graph.json, times {tmp_path}/new/{ENGINE}.timing.json; "
        f"baseline {old}, layer info {tmp_path}/old/{ENGINE}.graph.json, times {tmp_path}/old/{ENGINE}.timing.json"
    )
    assert "note: no layer Metadata (TensorRT before 8.6): ONNX nodes read from the layer names" in lines
    head = next(line for line in lines if line.startswith(f"{ENGINE}: end to end "))
    assert head.endswith(f" against {old}") and "(+0.0" in head
    assert_slowed_first(out)
    assert all(row[5].endswith("(within noise)") for row in groups(out)[1:])


def test_the_artifact_folder_names_of_the_trtexec_backend(harness, tmp_path):
    old = write_engine(tmp_path / "old" / "mobilenet-int8-b1" / "profile", ARTIFACTS)
    new = write_engine(tmp_path / "new" / "mobilenet-int8-b1" / "profile", ARTIFACTS, slower=4.0)
    status, out, err = harness("explain", new.parent, "--baseline", old)  # a folder stands for its profile.json
    assert status == 0, err
    assert out.splitlines()[0] == (
        f"files: {new}, layer info {new.parent}/layer_info.json, times {new.parent}/times.json; "
        f"baseline {old}, layer info {old.parent}/layer_info.json, times {old.parent}/times.json"
    )
    assert "\nmobilenet-int8-b1: end to end " in out
    assert_slowed_first(out)


def test_a_profile_alone_maps_layers_by_their_fused_names_and_says_so(harness, tmp_path):
    old, new = tmp_path / "old.json", tmp_path / "new.json"  # names no companion is looked for beside
    shutil.copy(write_engine(tmp_path / "a", TREX, f"{ENGINE}."), old)
    shutil.copy(write_engine(tmp_path / "b", TREX, f"{ENGINE}.", slower=4.0), new)
    status, out, err = harness("explain", new, "--baseline", old)
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0] == f"files: {new}; baseline {old}"
    for path in (new, old):
        side = "current" if path == new else "baseline"
        assert (
            f"note: {side}: {path}: no layer information (trtexec --exportLayerInfo; none found beside it by name, "
            "pass it with --layer-info / --baseline-layer-info): layers map to ONNX nodes through their fused names "
            "only"
        ) in lines
    assert "note: end to end from the layers' totals (no per-inference times (--exportTimes)): nothing is left " in out
    assert_slowed_first(out)
    assert groups(out)[0][4] == "100%"  # layer totals on both sides: the layers explain all of it
    unattributed = next(line.split() for line in lines if line.startswith("  unattributed "))
    assert unattributed[1:4] == ["0.00", "0.00", "+0.00"]


def test_end_to_end_times_of_different_kinds_are_not_compared(harness, tmp_path):
    """One engine with per-inference times, the other with only TREx's profiling summary: medians of different
    runs, so both sides fall back to their layers' totals."""
    old = write_engine(tmp_path / "old", TREX, f"{ENGINE}.")
    new = write_engine(tmp_path / "new", TREX, f"{ENGINE}.", slower=4.0)
    new.with_name(f"{ENGINE}.timing.json").unlink()
    shutil.copy(EXPORTS / f"{ENGINE}.profile.metadata.json", new.parent)
    status, out, err = harness("explain", new, "--baseline", old)
    assert status == 0, err
    assert f", end to end from {new.parent}/{ENGINE}.profile.metadata.json; baseline " in out.splitlines()[0]
    assert (
        "note: end to end from the layers' totals: the current's is from a profiling summary, the baseline's from "
        "per-inference times, not the same measure"
    ) in out.splitlines()
    assert_slowed_first(out)
    assert groups(out)[0][4] == "100%"


def test_a_file_against_its_exact_copy_names_no_group(harness, tmp_path):
    old = write_engine(tmp_path / "old", TREX, f"{ENGINE}.")
    new = write_engine(tmp_path / "new", TREX, f"{ENGINE}.")
    status, out, err = harness("explain", new, "--baseline", old, "--top", "80")
    assert status == 0, err
    rows = groups(out)
    assert len(rows) == 72 and all(row[3] == "+0.00" and row[5] == "unchanged (within noise)" for row in rows)
    assert out.splitlines()[-1] == "  where: no group changed beyond its noise"
    assert "(+0.00 ms, +0.0%)" in out


# A TensorRT 10.x engine's files: Myelin names its layers itself, so only their Metadata names the ONNX nodes.
MYELIN_LAYERS = {
    "__myl_ConvRelu_myl0_0": ("/stem/conv/Conv", "/stem/act/Relu"),
    "__myl_ConvAddRelu_myl0_1": ("/block/conv/Conv", "/block/add/Add", "/block/act/Relu"),
    "__myl_GlobAvgGemm_myl0_2": ("/head/pool/GlobalAveragePool", "/head/fc/Gemm"),
}


def write_tensorrt_10(folder: Path, slower: float = 1.0) -> tuple[Path, Path]:
    """A 10.x ``--exportProfile`` and ``--exportLayerInfo`` (detailed: ``Bindings``, ``Metadata`` entries separated
    by \\x1f); ``slower`` multiplies the block's layer time."""
    folder.mkdir(parents=True, exist_ok=True)
    times = {"__myl_ConvRelu_myl0_0": 0.05, "__myl_ConvAddRelu_myl0_1": 0.2 * slower, "__myl_GlobAvgGemm_myl0_2": 0.03}
    total = sum(times.values())
    profile = [{"count": 500}] + [
        {"name": n, "timeMs": t * 500, "averageMs": t, "medianMs": t, "percentage": 100 * t / total}
        for n, t in times.items()
    ]
    tensor = {"Name": "x", "Location": "Device", "Dimensions": [1, 16, 32, 32], "Format/Datatype": "Half"}
    layers = [
        {
            "Name": name,
            "LayerType": "kgen",
            "Inputs": [tensor],
            "Outputs": [tensor],
            "TacticValue": "0x0000000000000000",
            "Metadata": "\x1f".join(f"[ONNX Layer: {node}]" for node in nodes),
        }
        for name, nodes in MYELIN_LAYERS.items()
    ]
    info = {"Layers": layers, "Bindings": ["input", "logits"]}
    (folder / "prof.json").write_text(json.dumps(profile))
    (folder / "engine-info.json").write_text(json.dumps(info))
    return folder / "prof.json", folder / "engine-info.json"


def test_tensorrt_10_metadata_names_the_nodes_of_made_up_layer_names(harness, tmp_path):
    old, old_info = write_tensorrt_10(tmp_path / "trt-10.8")
    new, new_info = write_tensorrt_10(tmp_path / "trt-10.13", slower=4.0)
    args = ("explain", new, "--baseline", old, "--layer-info", new_info, "--baseline-layer-info", old_info)
    status, out, err = harness(*args)
    assert status == 0, err
    assert out.splitlines()[0] == f"files: {new}, layer info {new_info}; baseline {old}, layer info {old_info}"
    assert "fused names only" not in out
    first = groups(out)[0]
    assert first[0] == "__myl_ConvAddRelu_myl0_1" and first[3] == "+0.600" and first[4] == "100%"
    assert "  __myl_ConvAddRelu_myl0_1: ONNX nodes /block/act/Relu, /block/add/Add, /block/conv/Conv" in out
    assert out.splitlines()[-1] == "  where: __myl_ConvAddRelu_myl0_1 +0.60 ms (100% of the change)"


@pytest.fixture
def runs(tmp_path):
    """A run of the old engine whose results keep its profile (and another profiled case), and the new engine's
    files."""
    old = write_engine(tmp_path / "old", TREX, f"{ENGINE}.")
    profile = profile_from_files(
        old, old.with_name(f"{ENGINE}.graph.json"), times=old.with_name(f"{ENGINE}.timing.json")
    )
    results = tmp_path / "results.json"
    RunResults(environment={}, cases=[record("mobilenet-int8-b1", profile=profile), record("other")]).write(results)
    return results, old, write_engine(tmp_path / "new", TREX, f"{ENGINE}.", slower=4.0)


def test_a_trtexec_profile_against_one_case_of_a_results_file(harness, runs):
    results, _old, new = runs
    status, out, err = harness("explain", new, "--baseline", results, "--case", "mobilenet-*")
    assert status == 0, err
    assert out.splitlines()[0].endswith(f"; baseline {results} case 'mobilenet-int8-b1'")
    assert_slowed_first(out)


def test_a_results_case_against_a_trtexec_profile(harness, runs, tmp_path):
    _results, old, new = runs
    profile = profile_from_files(
        new, new.with_name(f"{ENGINE}.graph.json"), times=new.with_name(f"{ENGINE}.timing.json")
    )
    current = tmp_path / "current.json"
    RunResults(environment={}, cases=[record("mobilenet-int8-b1", profile=profile), record("other")]).write(current)
    status, out, err = harness("explain", current, "--baseline", old, "--case", "mobilenet-int8-b1")
    assert status == 0, err
    assert out.splitlines()[0].startswith(f"files: {current} case 'mobilenet-int8-b1'; baseline {old}, layer info ")
    assert "\nmobilenet-int8-b1 (regressed): end to end " in out
    assert_slowed_first(out)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{new}"], "{new}: --baseline is required for a trtexec profile: pass the other engine's --exportProfile"),
        (
            ["{new}", "--baseline", "{results}"],
            "--baseline {results}: 2 cases have a layer profile; pick the one to compare with the trtexec profile "
            "{new} with --case (mobilenet-int8-b1, other)",
        ),
        (
            ["{new}", "--baseline", "{results}", "--case", "bert-*"],
            "--case bert-*: no case of {results} with a layer profile has this id or matches it; cases with one: ",
        ),
        (
            ["{results}", "--baseline", "{old}"],
            "--baseline {old} is one engine's trtexec profile: pick the one case of {results} to compare with it "
            "with --case (mobilenet-int8-b1, other)",
        ),
        (
            ["{new}", "--baseline", "{old}", "--case", "x"],
            "--case picks a case of a results or baseline file; {new} and {old} are trtexec profiles",
        ),
        (["{new}", "--baseline", "{old}", "--layer-info", "{missing}"], "{missing}: no such file; run trtexec with "),
        (["{graph}", "--baseline", "{old}"], "{graph}: this is trtexec --exportLayerInfo output; pass the "),
        (["{results}", "--layer-info", "{graph}"], "--layer-info applies to a trtexec profile; {results} is a results"),
        (["{results}", "--baseline-layer-info", "{graph}"], "--baseline-layer-info belongs to a --baseline trtexec "),
        (
            ["{new}", "--baseline", "{empty}"],
            "--baseline {empty}: this folder holds no trtexec profile (profile.json, one X.profile.json) and no "
            "baseline file; pass the other engine's --exportProfile file, or a baseline file and --case",
        ),
    ],
)
def test_mistakes_are_one_line_and_exit_2(harness, runs, tmp_path, args, message):
    results, old, new = runs
    where = {
        "results": results,
        "old": old,
        "new": new,
        "graph": new.with_name(f"{ENGINE}.graph.json"),
        "missing": tmp_path / "missing.graph.json",
        "empty": tmp_path / "empty",
    }
    where["empty"].mkdir()
    status, out, err = harness("explain", *[a.format(**where) for a in args])
    assert status == 2 and out == ""
    assert err.startswith("harness explain: error: " + message.format(**where)), err
    assert len(err.strip().splitlines()) == 1


def test_an_unreadable_companion_found_by_name_is_named(harness, runs):
    _results, old, new = runs
    graph = new.with_name(f"{ENGINE}.graph.json")
    graph.write_text("{not json")
    status, out, err = harness("explain", new, "--baseline", old)
    assert status == 2 and out == ""
    assert err.strip() == (
        f"harness explain: error: {graph}: not valid JSON (line 1): Expecting property name enclosed in double "
        f"quotes (found by its name beside {new})"
    )


def test_the_inspectors_one_line_text_beside_the_profile(harness, tmp_path):
    """TensorRT-RTX's layer information as its build log prints it, found as ``X.layers.txt``."""
    text = (EXPORTS / "rtx.resnet-block.layers.txt").read_text()
    names = ["__myl_Move_myl0_0", "/stem/Conv_myl0_1", "__myl_CorrAdd_myl0_2", "__myl_AddMoveMean_myl0_4"]
    for side, slower in (("old", 1.0), ("new", 4.0)):
        times = {name: 0.1 * (slower if name == "__myl_CorrAdd_myl0_2" else 1.0) for name in names}
        profile = [{"count": 100}] + [{"name": n, "averageMs": t, "medianMs": t} for n, t in times.items()]
        (tmp_path / side).mkdir()
        (tmp_path / side / "rtx.profile.json").write_text(json.dumps(profile))
        (tmp_path / side / "rtx.layers.txt").write_text(text)
    # a folder stands for the one X.profile.json it holds
    status, out, err = harness("explain", tmp_path / "new", "--baseline", tmp_path / "old")
    assert status == 0, err
    assert f", layer info {tmp_path}/new/rtx.layers.txt; baseline " in out.splitlines()[0]
    assert groups(out)[0][:5] == ["__myl_CorrAdd_myl0_2", "0.100", "0.400", "+0.300", "100%"]
    nodes = "/layer1/layer1.0/Add, /layer1/layer1.0/act/Relu, /layer1/layer1.0/conv/Conv"
    assert f"  __myl_CorrAdd_myl0_2: ONNX nodes {nodes}" in out.splitlines()
