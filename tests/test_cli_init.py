"""``harness init``: a starter suite read from the model's signature, validated, never written over a user's file."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from harness import __version__
from harness.cli.init import read_starter, shape_label
from harness.cli.main import main
from harness.suite.load import load_suite


def identity_model(path: Path, inputs: dict[str, tuple[int, list[int | str | None]]]) -> Path:
    """An ONNX model whose outputs are its inputs (name -> (element type, shape; str: symbolic, None: unnamed))."""
    graph = helper.make_graph(
        [helper.make_node("Identity", [name], [f"{name}_out"]) for name in inputs],
        "m",
        [helper.make_tensor_value_info(name, dtype, shape) for name, (dtype, shape) in inputs.items()],
        [helper.make_tensor_value_info(f"{name}_out", dtype, shape) for name, (dtype, shape) in inputs.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, str(path))
    return path


@pytest.fixture
def harness(monkeypatch, capsys):
    """``harness ARGS`` in a folder, in this process: (exit status, stdout, stderr)."""

    def run(*args: str, cwd: Path) -> tuple[int, str, str]:
        monkeypatch.chdir(cwd)
        try:
            status = main(list(args))
        except SystemExit as exc:  # argparse's --version and --help
            status = int(exc.code or 0)
        out, err = capsys.readouterr()
        return status, out, err

    return run


ENCODER = {
    "input_ids": (TensorProto.INT64, ["batch_size", "sequence_length"]),
    "attention_mask": (TensorProto.INT64, ["batch_size", "sequence_length"]),
}


def test_a_named_batch_becomes_the_batch_axis_and_the_sequence_a_shape_set(tmp_path):
    starter = read_starter(identity_model(tmp_path / "enc.onnx", ENCODER))
    assert starter.batch_sizes == (1, 8)
    assert starter.shapes == {"sequence_length": 128}
    # The leading name is not 'batch': the suite maps it, so a shape set never fixes the batch behind the case's back.
    assert starter.inputs == {
        "input_ids": ["batch", "sequence_length"],
        "attention_mask": ["batch", "sequence_length"],
    }
    assert shape_label(starter.shapes) == "seq128"


def test_a_fixed_batch_export_runs_at_its_batch(tmp_path):
    starter = read_starter(identity_model(tmp_path / "fixed.onnx", {"x": (TensorProto.FLOAT, [8, 3, 32, 32])}))
    assert starter.batch_sizes == (8,)
    assert starter.inputs == {} and starter.shapes == {}
    assert any("exported at batch 8" in note for note in starter.notes)


def test_unnamed_dynamic_dims_get_sizes_in_the_input_shape(tmp_path):
    starter = read_starter(
        identity_model(tmp_path / "img.onnx", {"pixels": (TensorProto.FLOAT, [None, 3, None, None])})
    )
    assert starter.batch_sizes == (1, 8)
    assert starter.inputs == {"pixels": ["batch", 3, 64, 64]}


def test_inputs_without_a_common_leading_dim_run_batch_1(tmp_path):
    model = identity_model(
        tmp_path / "two.onnx", {"a": (TensorProto.FLOAT, [4, 16]), "b": (TensorProto.FLOAT, ["n", 16])}
    )
    starter = read_starter(model)
    assert starter.batch_sizes == (1,)
    assert starter.shapes == {"n": 64}
    assert any("no leading dimension" in note for note in starter.notes)


def test_init_writes_a_suite_that_validates_and_prints_the_command(tmp_path, harness):
    (tmp_path / "models").mkdir()
    identity_model(tmp_path / "models" / "enc.onnx", ENCODER)
    status, out, err = harness("init", "models/enc.onnx", "-o", "perf/enc.yaml", cwd=tmp_path)
    assert status == 0, err
    assert "wrote perf/enc.yaml: 4 cases of 'enc'" in out
    assert "run it: pytest perf/enc.yaml" in out
    suite = load_suite(tmp_path / "perf" / "enc.yaml")
    assert suite.models[0].location == str((tmp_path / "models" / "enc.onnx").resolve())
    assert [c.id for c in suite.cases()] == [
        "enc-fp32-b1-seq128",
        "enc-fp32-b8-seq128",
        "enc-fp16-b1-seq128",
        "enc-fp16-b8-seq128",
    ]
    assert "path: ../models/enc.onnx" in (tmp_path / "perf" / "enc.yaml").read_text()
    status, out, _ = harness("validate", "perf/enc.yaml", cwd=tmp_path)
    assert status == 0 and "4 cases" in out


def test_init_names_the_backend_in_the_command(tmp_path, harness):
    identity_model(tmp_path / "m.onnx", {"x": (TensorProto.FLOAT, ["batch", 4])})
    status, out, err = harness("init", "m.onnx", "--backend", "tensorrt", cwd=tmp_path)
    assert status == 0, err
    assert "run it: pytest suite.yaml --backend tensorrt" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["init", "missing.onnx"], "missing.onnx: not found; give the path of an ONNX model file"),
        (["init", "notes.txt"], "notes.txt: not an ONNX model (DecodeError); export it to ONNX first"),
        (["init", "."], ".: is a folder; give the path of an ONNX model file"),
        (["init", "m.onnx", "--backend", "onnxrutime"], "unknown backend 'onnxrutime'; did you mean 'onnxruntime'?"),
        (["init", "m.onnx", "-o", "taken.yaml"], "taken.yaml already exists; pass --force to overwrite it"),
    ],
)
def test_mistakes_are_one_line_and_exit_2(tmp_path, harness, args, message):
    identity_model(tmp_path / "m.onnx", {"x": (TensorProto.FLOAT, ["batch", 4])})
    (tmp_path / "notes.txt").write_text("not a model\n")
    (tmp_path / "taken.yaml").write_text("# mine\n")
    status, _, err = harness(*args, cwd=tmp_path)
    assert status == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert (tmp_path / "taken.yaml").read_text() == "# mine\n"
    assert not (tmp_path / "suite.yaml").exists()


def test_force_overwrites(tmp_path, harness):
    identity_model(tmp_path / "m.onnx", {"x": (TensorProto.FLOAT, ["batch", 4])})
    (tmp_path / "suite.yaml").write_text("# old\n")
    status, _, err = harness("init", "m.onnx", "--force", cwd=tmp_path)
    assert status == 0, err
    ids = [c.id for c in load_suite(tmp_path / "suite.yaml").cases()]
    assert ids == ["m-fp32-b1", "m-fp32-b8", "m-fp16-b1", "m-fp16-b8"]


def test_version_and_plain_help(tmp_path, harness):
    status, out, _ = harness("--version", cwd=tmp_path)
    assert status == 0 and out.strip() == f"harness {__version__}"
    status, text, _ = harness("--help", cwd=tmp_path)
    assert status == 0
    assert "init" in text and "validate" in text
    assert "``" not in text and ":data:" not in text and ":func:" not in text
