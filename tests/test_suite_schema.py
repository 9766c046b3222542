"""Suite validation and matrix expansion."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from harness.backends.base import REGISTRY
from harness.core.errors import SuiteError
from harness.models.sources import check_sources
from harness.suite.backend_options import BACKEND_OPTIONS
from harness.suite.load import load_suite

MODEL = "  - name: squeezenet\n    onnx_zoo: light_squeezenet\n"


def write(tmp_path: Path, text: str, name: str = "suite.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(path: Path) -> str:
    """The error of loading ``path`` as a run does: the file, then the sources only model preparation can find."""
    with pytest.raises(SuiteError) as info:
        check_sources(load_suite(path))
    message = str(info.value)
    assert "\n" not in message, "suite errors are one line"
    assert message.startswith(str(path)), "suite errors name the file first"
    return message


def test_matrix_expands_in_stable_order_with_readable_ids(tmp_path):
    path = write(tmp_path, f"suite: s\nmodels:\n{MODEL}precisions: [fp32, fp16]\nbatch_sizes: [1, 4]\n")
    cases = load_suite(path).cases()
    assert [c.id for c in cases] == [
        "squeezenet-fp32-b1",
        "squeezenet-fp32-b4",
        "squeezenet-fp16-b1",
        "squeezenet-fp16-b4",
    ]
    assert cases[3].params()["batch_size"] == 4 and cases[3].params()["precision"] == "fp16"


def test_model_overrides_axes_and_shape_sets_join_the_id(tmp_path):
    path = write(
        tmp_path,
        "suite: s\nmodels:\n" + MODEL + "    batch_sizes: [8]\n"
        "    shapes: {small: {h: 112}, big: {h: 448}}\n"
        "  - name: other\n    onnx_zoo: light_vgg19\nbatch_sizes: [1]\n",
    )
    ids = [c.id for c in load_suite(path).cases()]
    assert ids == ["squeezenet-fp32-b8-small", "squeezenet-fp32-b8-big", "other-fp32-b1"]
    assert load_suite(path).cases()[1].dims == {"h": 448}


def test_tolerance_scalar_mapping_and_model_override(tmp_path):
    path = write(
        tmp_path, "suite: s\ntolerance: {default: 10%, p99: 25%}\nmodels:\n" + MODEL + "    tolerance: {latency: 5%}\n"
    )
    model = load_suite(path).models[0]
    assert model.tolerance == {"default": 0.10, "latency_p99_ms": 0.25, "latency_median_ms": 0.05}


def test_relative_model_path_resolves_against_the_suite_file(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "m.onnx").write_bytes(b"x")
    path = write(tmp_path, "suite: s\nmodels:\n  - name: m\n    path: models/m.onnx\n")
    assert load_suite(path).models[0].location == str((tmp_path / "models" / "m.onnx").resolve())


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (f"suite: s\nmodels:\n{MODEL}    pathh: x.onnx\n", "models[0].pathh: unknown key; did you mean 'path'?"),
        (f"suite: s\nmodel:\n{MODEL}", "model: unknown key; did you mean 'models'?"),
        (f"suite: s\nmodels:\n{MODEL}batch_sizes: 4\n", "batch_sizes: expected a non-empty list"),
        (f"suite: s\nmodels:\n{MODEL}batch_sizes: [0]\n", "batch_sizes[0]: expected a positive integer"),
        (f"suite: s\nmodels:\n{MODEL}precisions: [fp61]\n", "precisions[0]: unknown precision 'fp61'; did you mean"),
        (f"suite: s\nmodels:\n{MODEL}precisions: []\n", "precisions: expected a non-empty list"),
        ("suite: s\nmodels:\n  - name: m\n    path: nope.onnx\n", "models[0].path: model file 'nope.onnx' not found"),
        (
            "suite: s\nmodels:\n  - name: m\n    onnx_zoo: light_squeezenett\n",
            "models[0].onnx_zoo: unknown zoo model 'light_squeezenett'; did you mean 'light_squeezenet'?",
        ),
        ("suite: s\nmodels: []\n", "models: list at least one model"),
        (f"suite: s\nmodels:\n{MODEL}{MODEL}", "models[1].name: 'squeezenet' is used twice"),
        (f"suite: s\nmodels:\n{MODEL}tolerance: lots\n", "tolerance: expected a percentage such as 10%"),
        (f"suite: s\nmodels:\n{MODEL}tolerance: {{latncy: 5%}}\n", "tolerance.latncy: unknown metric; did you mean"),
        (
            f"suite: s\nmodels:\n{MODEL}measure: {{min_duraton_ms: 5}}\n",
            "measure.min_duraton_ms: unknown key; did you mean 'min_duration_ms'?",
        ),
        (
            f"suite: s\nmodels:\n{MODEL}    inputs: {{data_0: {{dtype: float23}}}}\n",
            "models[0].inputs.data_0.dtype: unknown dtype 'float23'",
        ),
        ("models: []\n", "suite: give the suite a name"),
        ("", "the file is empty"),
        ("suite: s\nmodels: [\n", "fix the YAML syntax"),
    ],
)
def test_mistakes_give_one_line_naming_key_and_fix(tmp_path, body, expected):
    assert expected in error_of(write(tmp_path, body))


def test_missing_suite_file(tmp_path):
    assert "suite file not found" in error_of(tmp_path / "absent.yaml")


def test_each_model_records_the_line_of_its_source(tmp_path):
    path = write(tmp_path, f"suite: s\nmodels:\n{MODEL}  - {{name: other, onnx_zoo: light_resnet50}}\n")
    suite = load_suite(path)
    assert [m.line for m in suite.models] == [4, 5]
    assert suite.models[0].suite_file == path


def test_a_source_found_missing_after_loading_names_the_file_and_line(tmp_path):
    path = write(tmp_path, f"suite: s\nmodels:\n{MODEL}  - {{name: other, onnx_zoo: light_nope}}\n")
    suite = load_suite(path)  # the zoo is the models stage's to search
    with pytest.raises(SuiteError) as info:
        check_sources(suite)
    assert str(info.value).startswith(f"{path}: line 5: models[1].onnx_zoo: unknown zoo model 'light_nope'; known: ")


def test_loading_a_suite_imports_no_later_stage():
    """The suite layer names what the stages accept; it reads no stage to find out (harness.core only)."""
    code = (
        "import sys, harness.suite.load\n"
        "later = ('models', 'recipes', 'backends', 'trt', 'measure', 'judge', 'run', 'report', 'machine')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[:2][-1] in later and m.startswith('harness.')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_backend_table_and_registry_name_the_same_backends():
    assert set(BACKEND_OPTIONS) == set(REGISTRY)
    for name, target in REGISTRY.items():
        module = importlib.import_module(target.split(":")[0])
        assert module.OPTIONS is BACKEND_OPTIONS[name], f"{target} checks its options against the suite's table"
