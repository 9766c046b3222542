"""TensorRT backend: real engine builds with whatever TensorRT flavour is installed (CI installs TensorRT-RTX, which
builds on a CPU-only machine), the engine cache, parser errors, options, and the flavour probing."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper
from suite_runner import tensorrt_missing

from harness.backends.base import BackendContext, get_backend
from harness.backends.engine_cache import EngineCache, cache_key
from harness.core.errors import HarnessError
from harness.core.units import format_size, parse_size
from harness.models.sources import prepare
from harness.suite.load import load_suite
from harness.trt import compat as trt_compat

needs_trt = pytest.mark.skipif(tensorrt_missing() is not None, reason=f"no TensorRT here: {tensorrt_missing()}")


def _suite(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(body, encoding="utf-8")
    return path


SQUEEZENET = """
suite: trt-test
models:
  - name: squeezenet
    onnx_zoo: light_squeezenet
precisions: [fp32]
batch_sizes: [1, 8]
"""


def _backend(tmp_path: Path, **options: object):
    return get_backend("tensorrt", dict(options), BackendContext(tmp_path / "cache"))


def _cases(tmp_path: Path, body: str = SQUEEZENET):
    suite = load_suite(_suite(tmp_path, body))
    return suite.cases()


# -- flavour probing ---------------------------------------------------------------------------------------------
def test_an_empty_tensorrt_namespace_does_not_count_as_tensorrt():
    # tensorrt-stubs installs exactly this: a ``tensorrt`` package without any of the API.
    assert not trt_compat._has_builder(types.ModuleType("tensorrt"))


def test_asking_for_full_tensorrt_without_it_says_what_to_install():
    code = "from harness.trt import compat as trt_compat\ntrt_compat.find('tensorrt')\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    try:
        import tensorrt

        real = hasattr(tensorrt, "Builder")
    except ImportError:
        real = False
    if real:
        assert done.returncode == 0
    else:
        assert done.returncode != 0
        assert "no usable tensorrt found (a module with a Builder)" in done.stderr
        assert "pip install" in done.stderr


@needs_trt
def test_flavour_by_module_name():
    api = trt_compat.find("auto")
    assert trt_compat.find(api.flavour.replace("-", "_")) is api


def test_unknown_flavour_is_refused():
    with pytest.raises(HarnessError, match="flavour must be one of"):
        trt_compat.find("tensorrt-llm")


@needs_trt
def test_loaded_flavour_facts():
    api = trt_compat.find("auto")
    assert api.label.startswith(("tensorrt-", "tensorrt-rtx-"))
    if api.flavour == trt_compat.TENSORRT_RTX:
        assert not api.has_precision_flags  # strongly typed
        assert not api.uses_timing_cache  # no effect there, and it would need a GPU
        assert api.targets_compute_capabilities


# -- building ------------------------------------------------------------------------------------------------------
@needs_trt
def test_builds_both_batch_sizes_with_one_dynamic_profile_and_caches(tmp_path):
    backend = _backend(tmp_path)
    cases = _cases(tmp_path)
    model = prepare(cases[0].model, tmp_path / "cache")
    first = [backend.build(model, case) for case in cases]
    for case, engine in zip(cases, first, strict=True):
        assert engine.build.cache_hit is False
        assert engine.build.engine_bytes == len(engine.plan) > 100_000
        assert engine.build.build_time_ms > 0
        (profile,) = engine.build.details["config"]["profiles"]
        (low, opt, high) = profile["data_0"]
        assert (low[0], opt[0], high[0]) == (1, case.batch_size, 8)  # one profile spans the suite, opt = case
    assert len(list((tmp_path / "cache" / "engines").glob("*.engine"))) == 2

    # A fresh backend (a second run) is served from the cache: same bytes, recorded build time, a fast build phase.
    again = _backend(tmp_path)
    second = [again.build(model, case) for case in cases]
    for a, b in zip(first, second, strict=True):
        assert b.build.cache_hit is True
        assert b.plan == a.plan
        assert b.build.build_time_ms == pytest.approx(a.build.build_time_ms)
    phase_first = sum(e.build.details["build_phase_ms"] for e in first)
    phase_second = sum(e.build.details["build_phase_ms"] for e in second)
    assert phase_second * 10 <= phase_first, (phase_first, phase_second)


@needs_trt
def test_profile_per_case_pins_the_shape(tmp_path):
    backend = _backend(tmp_path, profile="case")
    case = _cases(tmp_path)[1]
    engine = backend.build(prepare(case.model, tmp_path / "cache"), case)
    (profile,) = engine.build.details["config"]["profiles"]
    assert profile["data_0"] == [[8, 3, 224, 224]] * 3


@needs_trt
def test_options_change_the_cache_key(tmp_path):
    case = _cases(tmp_path)[0]
    model = prepare(case.model, tmp_path / "cache")
    plain = _backend(tmp_path).build(model, case)
    other = _backend(tmp_path, optimization_level=2, tf32=False, workspace="256M").build(model, case)
    assert other.build.cache_hit is False
    assert other.build.details["cache_key"] != plain.build.details["cache_key"]
    assert other.build.details["config"]["workspace_bytes"] == 256 * 2**20
    assert other.build.details["config"]["optimization_level"] == 2


@needs_trt
def test_workspace_axis_gives_one_case_and_engine_per_size(tmp_path):
    body = SQUEEZENET.replace("batch_sizes: [1, 8]", "batch_sizes: [1]\nworkspaces: [256M, 1G]")
    cases = _cases(tmp_path, body)
    assert [c.id for c in cases] == ["squeezenet-fp32-b1-ws256M", "squeezenet-fp32-b1-ws1G"]
    backend = _backend(tmp_path, workspace="64M")  # the axis wins over the option
    model = prepare(cases[0].model, tmp_path / "cache")
    engines = [backend.build(model, c) for c in cases]
    assert [e.build.details["config"]["workspace_bytes"] for e in engines] == [256 * 2**20, 2**30]
    assert cases[0].params()["workspace_bytes"] == 256 * 2**20


@needs_trt
@pytest.mark.parametrize("precision", ["fp16", "bf16", "int8", "fp8"])
def test_typed_precisions_build_from_the_recipe(tmp_path, precision):
    from harness.core.results import CaseResult
    from harness.run.precision import typed_for_case

    (case,) = _cases(tmp_path, SQUEEZENET.replace("[fp32]", f"[{precision}]").replace("[1, 8]", "[1]"))
    backend = _backend(tmp_path)
    assert backend.takes_typed_models is True
    model = prepare(case.model, tmp_path / "cache")
    # An fp32 model is refused: the backend applies no recipe of its own, so it cannot make a second typed model.
    with pytest.raises(HarnessError, match=f"does not carry {precision}.*precision stage"):
        backend.build(model, case)
    result = CaseResult(id=case.id, params=case.params())
    typed_model = typed_for_case(case, backend, model, tmp_path / "cache", result)
    engine = backend.build(typed_model, case)
    assert engine.build.engine_bytes > 100_000
    recipe = result.recipe
    assert recipe["precision"] == precision
    assert engine.build.details["config"]["strongly_typed"] is True
    # One recipe path: the engine was built from exactly the precision stage's typed file.
    assert engine.build.details["model_sha256"] == typed_model.sha256 == recipe["sha256"]
    assert "recipe" not in engine.build.details
    # The typed model the recipe made carries the precision in its graph.
    typed = onnx.load(recipe["path"], load_external_data=False)
    element = {"fp16": TensorProto.FLOAT16, "bf16": TensorProto.BFLOAT16, "int8": TensorProto.INT8}
    assert any(i.data_type == element.get(precision, TensorProto.FLOAT8E4M3FN) for i in typed.graph.initializer)
    if precision in ("int8", "fp8"):
        assert any(n.op_type == "DequantizeLinear" for n in typed.graph.node)


@needs_trt
def test_legacy_precision_flags_are_refused_on_strongly_typed_tensorrt():
    api = trt_compat.find("auto")
    if api.has_precision_flags:
        pytest.skip(f"{api.label} is weakly typed: precision_mode flags is allowed there")
    with pytest.raises(HarnessError, match=r"precision_mode 'flags' needs weakly typed TensorRT 10\.x"):
        get_backend("tensorrt", {"precision_mode": "flags"})


@needs_trt
def test_bad_options_are_one_line_errors():
    with pytest.raises(HarnessError, match="unknown option 'optimisation_level'; did you mean 'optimization_level'"):
        get_backend("tensorrt", {"optimisation_level": 3})
    with pytest.raises(HarnessError, match="optimization_level must be between 0 and 5"):
        get_backend("tensorrt", {"optimization_level": 7})
    with pytest.raises(HarnessError, match="profile must be one of"):
        get_backend("tensorrt", {"profile": "global"})


@needs_trt
def test_compute_capabilities_are_checked(tmp_path):
    api = trt_compat.find("auto")
    if not api.targets_compute_capabilities:
        with pytest.raises(HarnessError, match="compute_capabilities needs TensorRT-RTX"):
            get_backend("tensorrt", {"compute_capabilities": ["SM89"]})
        return
    case = _cases(tmp_path)[0]
    backend = _backend(tmp_path, compute_capabilities=["SM89"])
    engine = backend.build(prepare(case.model, tmp_path / "cache"), case)
    assert engine.build.details["target"] == "aot:SM89"
    with pytest.raises(HarnessError, match="compute capability 'SM42' is unknown"):
        _backend(tmp_path, compute_capabilities=["SM42"]).build(prepare(case.model, tmp_path / "cache"), case)


# -- errors --------------------------------------------------------------------------------------------------------
def _custom_op_model(path: Path) -> Path:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    node = helper.make_node("FooBarOp", ["x"], ["y"], name="weird_node", domain="custom.ops")
    graph = helper.make_graph([node], "custom", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("custom.ops", 1)])
    onnx.save(model, path)
    return path


@needs_trt
def test_an_unsupported_op_names_the_node_and_the_op(tmp_path):
    model_path = _custom_op_model(tmp_path / "custom.onnx")
    body = f"suite: t\nmodels: [{{name: custom, path: {model_path}}}]\nbatch_sizes: [2]\n"
    (case,) = _cases(tmp_path, body)
    model = prepare(case.model, tmp_path / "cache")
    with pytest.raises(HarnessError) as info:
        _backend(tmp_path).build(model, case)
    message = str(info.value)
    assert "custom.onnx" in message
    assert "node 0 'weird_node' (op FooBarOp)" in message
    assert "\n" not in message


@needs_trt
def test_a_truncated_onnx_file_is_reported_as_such(tmp_path):
    from harness.trt.backend import parse_onnx
    from harness.trt.log import tensorrt_log

    source = prepare(_cases(tmp_path)[0].model, tmp_path / "cache").path
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(source.read_bytes()[: source.stat().st_size // 3])
    api = trt_compat.find("auto")
    builder = api.module.Builder(tensorrt_log().logger)
    parser = api.module.OnnxParser(builder.create_network(0), builder.logger)
    with pytest.raises(HarnessError, match="not a complete ONNX model \\(the file is truncated or damaged\\)"):
        parse_onnx(parser, truncated, api)
    # Through the session the harness refuses it even earlier, with the same advice.
    body = f"suite: t\nmodels: [{{name: broken, path: {truncated}}}]\n"
    (case,) = _cases(tmp_path, body)
    with pytest.raises(HarnessError, match="not a readable ONNX model"):
        prepare(case.model, tmp_path / "cache")


# -- the engine cache ---------------------------------------------------------------------------------------------
def test_sizes_parse_and_format():
    assert parse_size("256M") == 256 * 2**20
    assert parse_size("1.5G") == 3 * 2**29
    assert parse_size("512MiB") == 512 * 2**20
    assert parse_size(4096) == 4096
    assert format_size(256 * 2**20) == "256M"
    assert format_size(2**30) == "1G"
    assert format_size(1536 * 2**20) == "1536M"
    with pytest.raises(HarnessError, match="expected a size such as 256M"):
        parse_size("lots")


def test_cache_key_depends_on_every_input():
    base = cache_key("m", {"a": 1}, "tensorrt-rtx-1.7", "no-gpu")
    assert base == cache_key("m", {"a": 1}, "tensorrt-rtx-1.7", "no-gpu")
    assert (
        len(
            {
                base,
                *(
                    cache_key(*args)
                    for args in [
                        ("m2", {"a": 1}, "tensorrt-rtx-1.7", "no-gpu"),
                        ("m", {"a": 2}, "tensorrt-rtx-1.7", "no-gpu"),
                        ("m", {"a": 1}, "tensorrt-10.13", "no-gpu"),
                        ("m", {"a": 1}, "tensorrt-rtx-1.7", "H100 sm9.0"),
                    ]
                ),
            }
        )
        == 5
    )


def test_cache_round_trip_damage_and_eviction(tmp_path):
    cache = EngineCache(tmp_path, max_bytes=2500)
    cache.put("a", b"x" * 1000, {"build_time_ms": 5.0})
    got = cache.get("a")
    assert got is not None and got.plan == b"x" * 1000 and got.meta["build_time_ms"] == 5.0
    # A damaged plan is never served.
    (tmp_path / "engines" / "a.engine").write_bytes(b"y" * 1000)
    assert cache.get("a") is None
    cache.put("a", b"x" * 1000, {"build_time_ms": 5.0})
    time.sleep(0.01)
    cache.put("b", b"b" * 1000, {"build_time_ms": 1.0})
    os.utime(tmp_path / "engines" / "a.json", (time.time() + 5, time.time() + 5))  # "a" used last
    cache.put("c", b"c" * 1000, {"build_time_ms": 1.0})  # over 2500 bytes: the least recently used goes
    assert cache.get("b") is None
    assert cache.get("a") is not None and cache.get("c") is not None
    assert cache.total_bytes() <= 2500
    assert not list((tmp_path / "engines").glob(".*.tmp"))  # atomic writes leave no temporaries


def test_disabled_cache_never_hits(tmp_path):
    cache = EngineCache(tmp_path, enabled=False)
    cache.put("a", b"plan", {"build_time_ms": 1.0})
    assert cache.get("a") is None
    assert not (tmp_path / "engines").exists()


def test_workspaces_in_a_suite_are_validated(tmp_path):
    body = SQUEEZENET + "workspaces: [256M, lots]\n"
    with pytest.raises(HarnessError, match=r"workspaces\[1\]: expected a size such as 256M"):
        load_suite(_suite(tmp_path, body))


def test_the_backend_is_registered_and_its_absence_is_explained(monkeypatch):
    from harness.backends.base import REGISTRY

    assert REGISTRY["tensorrt"] == "harness.trt.backend:create"
    monkeypatch.setattr(trt_compat, "_loaded", None)
    monkeypatch.setattr(trt_compat, "_import", lambda name: None)
    with pytest.raises(HarnessError, match="tensorrt-rtx-cu13-libs"):
        get_backend("tensorrt", {})


def test_case_ids_without_workspaces_are_unchanged(tmp_path):
    cases = _cases(tmp_path)
    assert [c.id for c in cases] == ["squeezenet-fp32-b1", "squeezenet-fp32-b8"]
    assert "workspace_bytes" not in cases[0].params()
    assert dataclasses.replace(cases[0], workspace_bytes=2**28).id == "squeezenet-fp32-b1-ws256M"


# -- the timing cache (full TensorRT only; driven through a stand-in builder config) ----------------------------------
class _TimingCache:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def serialize(self) -> bytes:
        return self.data + b"+tactics"


class _Config:
    """The timing-cache part of IBuilderConfig: a cache made from foreign bytes is refused, as TensorRT does."""

    def __init__(self) -> None:
        self.cache: _TimingCache | None = None

    def create_timing_cache(self, data: bytes) -> _TimingCache:
        return _TimingCache(bytes(data))

    def set_timing_cache(self, cache: _TimingCache, ignore_mismatch: bool) -> bool:
        if cache.data.startswith(b"foreign"):
            return False
        self.cache = cache
        return True

    def get_timing_cache(self) -> _TimingCache | None:
        return self.cache


def _full_tensorrt_backend(tmp_path: Path):
    from harness.trt.backend import TensorRTBackend

    module = types.SimpleNamespace(IBuilderConfig=_Config, BuilderFlag=types.SimpleNamespace(FP16=1))
    api = trt_compat.TrtApi(module=module, flavour=trt_compat.TENSORRT, import_name="tensorrt", version="10.13.0.35")
    backend = TensorRTBackend(api, BackendContext(tmp_path))
    backend._target = "NVIDIA H100 sm9.0"
    return backend


def test_timing_cache_is_persisted_and_reused_across_builds(tmp_path):
    backend = _full_tensorrt_backend(tmp_path)
    first = _Config()
    facts = backend._attach_timing_cache(first)
    assert facts == {"used": True, "label": "tensorrt-10.13.0.35-NVIDIA H100 sm9.0", "loaded_bytes": 0}
    backend._save_timing_cache(first, facts)
    stored = backend.cache.read_timing(facts["label"])
    assert stored == b"+tactics" and facts["saved_bytes"] == len(stored)

    second = _Config()
    again = backend._attach_timing_cache(second)
    assert again["loaded_bytes"] == len(stored) and second.cache.data == stored  # the next build starts from it

    backend.cache.write_timing(facts["label"], b"foreign GPU's cache")
    third = _Config()
    assert backend._attach_timing_cache(third)["loaded_bytes"] == 0  # refused: the build starts afresh
    assert third.cache is not None and third.cache.data == b""


@needs_trt
def test_no_timing_cache_where_it_has_no_effect(tmp_path):
    backend = _backend(tmp_path)
    facts = backend._attach_timing_cache(_Config())
    if backend.api.flavour == trt_compat.TENSORRT_RTX:
        assert facts == {"used": False, "reason": "tensorrt-rtx does not use a timing cache"}
    assert _backend(tmp_path, timing_cache=False)._attach_timing_cache(_Config())["used"] is False


@needs_trt
def test_hardware_compatibility_is_refused_on_tensorrt_rtx():
    api = trt_compat.find("auto")
    if api.flavour != trt_compat.TENSORRT_RTX:
        pytest.skip("full TensorRT supports hardware compatibility levels")
    with pytest.raises(HarnessError, match="hardware_compatibility is not supported by TensorRT-RTX"):
        get_backend("tensorrt", {"hardware_compatibility": "ampere_plus"})


@needs_trt
def test_without_a_gpu_it_can_run_on_the_case_is_skipped_with_the_reason(tmp_path, monkeypatch):
    from harness.core.errors import CaseSkipped
    from harness.machine import cuda
    from harness.models.inputs import generate_inputs

    case = _cases(tmp_path)[0]
    model = prepare(case.model, tmp_path / "cache")
    engine = _backend(tmp_path).build(model, case)
    feeds = generate_inputs(model, case)
    monkeypatch.setattr(cuda, "available", lambda: "no CUDA GPU: the CUDA runtime sees 0 devices")
    with pytest.raises(CaseSkipped, match=r"cannot run the engine here: no CUDA GPU.*use --build-only"):
        engine.runner(feeds)
    if engine.api.flavour == trt_compat.TENSORRT_RTX:
        # An H100 (9.0) is not among the GPU generations TensorRT-RTX lists.
        monkeypatch.setattr(cuda, "available", lambda: None)
        monkeypatch.setattr(cuda, "device_info", lambda index=0: {"compute_capability": "9.0", "name": "NVIDIA H100"})
        with pytest.raises(CaseSkipped, match=r"does not run on compute capability 9\.0 \(NVIDIA H100\)"):
            engine.runner(feeds)
        assert engine.api.runs_on("8.9") is True


@needs_trt
def test_a_failed_build_quotes_tensorrt_s_error(tmp_path):
    from harness.trt.backend import Profile

    case = _cases(tmp_path)[0]
    model = prepare(case.model, tmp_path / "cache")
    upside_down = Profile({"data_0": ((8, 3, 224, 224), (4, 3, 224, 224), (1, 3, 224, 224))})
    with pytest.raises(HarnessError) as info:
        _backend(tmp_path)._build_plan(model, case, [upside_down])
    message = str(info.value)
    assert message.startswith("squeezenet-fp32-b1: tensorrt")
    assert "could not build an engine from" in message and "optimization profile" in message
