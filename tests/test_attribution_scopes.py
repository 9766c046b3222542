"""harness.attribution.scopes: the module each node of a torch.export-based ONNX export came from, read from the
file's own node metadata, and put on the layers of a real ONNX Runtime profile, so a changed block is named by its
module path where the exporter's node names (node_conv2d_1) say nothing."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

from harness.attribution.diff import diff_profiles
from harness.attribution.record import LayerProfile, LayerTime
from harness.attribution.scopes import common_module, module_scopes, node_module, with_modules
from harness.cli.main import main
from harness.core.results import RunResults
from harness.run.config import RunConfig
from harness.run.session import HarnessSession
from harness.suite.load import load_suite

pytest.importorskip("onnxscript", reason="torch.onnx.export(dynamo=True) needs onnxscript (the dev extra has it)")


def export(path: Path, kernel: int = 3) -> None:
    """Two blocks (a conv + ReLU in a Sequential, then a conv), exported the way PyTorch 2.9+ does by default;
    ``kernel`` 7 makes block2 about five times the work."""
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.block1 = nn.Sequential(nn.Conv2d(16, 32, 3, padding=1), nn.ReLU())
            self.block2 = nn.Conv2d(32, 32, kernel, padding=kernel // 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.block2(self.block1(x)).relu()

    torch.manual_seed(0)
    program = torch.onnx.export(Net().eval(), (torch.randn(1, 16, 40, 40),), dynamo=True, verbose=False)
    program.save(str(path))


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("dynamo")
    export(folder / "net.onnx")
    export(folder / "wider.onnx", kernel=7)
    return folder


def test_the_exporters_scopes_give_each_node_its_module(models: Path) -> None:
    model = onnx.load(str(models / "net.onnx"))
    scopes = module_scopes(model)
    by_op = {
        node.op_type: [scopes.get(node.name) for node in model.graph.node if node.op_type == op]
        for op in ("Conv", "Relu")
        for node in model.graph.node
        if node.op_type == op
    }
    assert by_op["Conv"] == ["block1.0", "block2"]
    assert by_op["Relu"] == ["block1.1", ""]  # .relu() in the model's own forward: the model itself
    assert all(not name.startswith("/") for name in scopes)  # node names carry no path, so only the scopes say


@pytest.mark.parametrize(
    ("props", "module"),
    [
        ({"pkg.torch.onnx.name_scopes": "['', 'encoder', 'encoder.layer.0', 'linear_5']"}, "encoder.layer.0"),
        ({"pkg.torch.onnx.name_scopes": "['', 'add']"}, ""),
        ({"namespace": ": m.Net/block2: torch.nn.modules.conv.Conv2d/conv2d_1: aten.conv2d.default"}, "block2"),
        ({"pkg.torch.onnx.name_scopes": "not a list ["}, None),  # unreadable: the namespace fallback, none here
        ({"pkg.torch.onnx.name_scopes": "{'a': 1}"}, None),
        ({"other": "x"}, None),
    ],
)
def test_node_module_reads_both_forms_and_ignores_what_it_cannot(props: dict[str, str], module: str | None) -> None:
    assert node_module(props) == module


def test_a_fused_layer_belongs_to_the_deepest_module_its_nodes_share() -> None:
    assert common_module(["enc.layer.0.attn.q", "enc.layer.0.attn.k"]) == "enc.layer.0.attn"
    assert common_module(["enc.layer.0", "enc.layer.1"]) == "enc.layer"  # the ModuleList holding both
    assert common_module(["block1", ""]) == "" and common_module([]) == ""
    scopes = {"a": "enc.layer.0.attn.q", "b": "enc.layer.0.attn.k", "c": "", "d": "head"}
    profile = LayerProfile.of(
        "onnxruntime",
        [
            # the recipe's Cast has no scope, the model's own Add (c) is glue: neither moves the layer to the top
            LayerTime("fused", ("a", "b", "c", "cast_added"), "MatMul", 1.0),
            LayerTime("top", ("c",), "Add", 0.5),  # the model itself: no module to name
            LayerTime("head_op", ("d",), "Gemm", 0.2),
            LayerTime("unknown", ("z",), "Relu", 0.1),
        ],
    )
    labelled = {layer.name: layer for layer in with_modules(profile, scopes).layers}
    assert labelled["fused"].label == "enc.layer.0.attn (fused)"
    assert labelled["top"].module is None and labelled["top"].label == "top"
    assert labelled["head_op"].label == "head (head_op)" and labelled["unknown"].module is None
    assert with_modules(profile, {}) is profile
    back = LayerProfile.from_dict(with_modules(profile, scopes).to_dict())  # results.json and baselines keep it
    assert {layer.name: layer.module for layer in back.layers} == {k: v.module for k, v in labelled.items()}
    assert "module" not in LayerTime("x", ("x",), "Relu", 1.0).to_dict()  # absent when unknown: files stay as before


def profile_of(models: Path, tmp_path: Path, name: str) -> LayerProfile:
    """The layer profile a run takes of ``name`` on ONNX Runtime CPU (one thread), as results.json keeps it."""
    (tmp_path / "net.onnx").write_bytes((models / name).read_bytes())
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "suite: s\nmodels:\n  - name: net\n    path: net.onnx\nbackends:\n  onnxruntime: {intra_op_threads: 1}\n"
        "measure: {warmup_ms: 20, min_duration_ms: 50, min_iterations: 5, trials: 1}\n"
    )
    (case,) = load_suite(suite).cases()
    folders = {f: tmp_path / f"run-{name}" / f for f in ("baseline_dir", "report_dir", "cache_dir")}
    result = HarnessSession(RunConfig(backend="onnxruntime", **folders)).run_case(case)
    assert result.profile is not None, result.message
    return LayerProfile.from_dict(result.profile)


def test_a_run_names_the_changed_block_by_its_module(models: Path, tmp_path: Path) -> None:
    before, after = profile_of(models, tmp_path, "net.onnx"), profile_of(models, tmp_path, "wider.onnx")
    modules = {layer.module for layer in before.layers}
    # ORT fuses each Conv with the ReLU after it: block1's two children, and block2 with the model's own .relu()
    assert {"block1", "block2"} <= modules, [layer.to_dict() for layer in before.layers]
    diff = diff_profiles(before, after)
    # the largest change, whatever the noise rule makes of a loaded host (tests/test_e2e_attribution.py judges that)
    top = diff.groups[0]
    assert top.label.startswith("block2 (") and top.delta_ms > 0, top
    assert top.label.removeprefix("block2 (").removesuffix(")") in {layer.name for layer in after.layers}


def write_trtexec_profile(path: Path, times: dict[str, float]) -> Path:
    """A trtexec ``--exportProfile`` file (500 inferences) of layers named as TensorRT names them after the nodes."""
    total = sum(times.values())
    rows = [
        {"name": n, "timeMs": t * 500, "averageMs": t, "medianMs": t, "percentage": 100 * t / total}
        for n, t in times.items()
    ]
    path.write_text(json.dumps([{"count": 500}, *rows]))
    return path


def test_explain_onnx_names_two_engines_layers_by_module(models: Path, tmp_path: Path, capsys) -> None:
    block1, block2 = "node_conv2d + node_relu", "{ForeignNode[node_conv2d_1...node_relu_1]}"
    old = write_trtexec_profile(tmp_path / "old.profile.json", {block1: 0.10, block2: 0.05})
    new = write_trtexec_profile(tmp_path / "new.profile.json", {block1: 0.10, block2: 0.20})
    model = models / "net.onnx"

    assert main(["explain", str(new), "--baseline", str(old), "--onnx", str(model)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].endswith(f"baseline {old}, model {model}")
    assert f"where: block2 ({block2}) +0.15 ms (100% of the change)" in out
    assert f"  block1 ({block1})  " in out  # the unchanged group's row: Conv and ReLU of block1's two children

    assert main(["explain", str(new), "--baseline", str(old)]) == 0  # without the model: the layer names only
    assert f"where: {block2} +0.15 ms" in capsys.readouterr().out

    assert main(["explain", str(new), "--baseline", str(old), "--onnx", str(model), "--by-module", "1"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("  block")]
    assert ["block2", "0.0500", "0.200", "+0.150", "100%"] in rows and [
        "block1",
        "0.100",
        "0.100",
        "+0.00",
        "0%",
    ] in rows


@pytest.mark.parametrize(
    ("onnx_arg", "message"),
    [
        ("missing.onnx", "missing.onnx: not found; give the path of an ONNX model file (.onnx)"),
        ("old.profile.json", "old.profile.json: not an ONNX model ("),
    ],
)
def test_explain_onnx_mistakes_are_one_line(tmp_path: Path, capsys, onnx_arg: str, message: str) -> None:
    old = write_trtexec_profile(tmp_path / "old.profile.json", {"a": 0.1})
    assert main(["explain", str(old), "--baseline", str(old), "--onnx", str(tmp_path / onnx_arg)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


def test_explain_onnx_is_refused_for_a_results_file(tmp_path: Path, capsys) -> None:
    RunResults(environment={}, cases=[]).write(tmp_path / "results.json")
    assert main(["explain", str(tmp_path / "results.json"), "--onnx", str(tmp_path / "m.onnx")]) == 2
    assert "--onnx applies to trtexec profiles" in capsys.readouterr().err
