"""trtexec files and the trtexec backend. The files are read in the exact text form trtexec writes; the backend runs
end to end against a stand-in ``trtexec`` script (no TensorRT here) that answers like the real binary and records
the command lines it was given, so the flags for 10.x and 11.x are checked."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from harness.backends.trtexec import (
    TrtexecOptions,
    command,
    parse_version,
    read_layer_info,
    read_profile,
    read_times,
    write_profile,
    write_times,
)
from harness.core.errors import HarnessError
from harness.suite.schema import MeasureSpec

pytest_plugins = ["pytester"]

# Written the way sampleReporting.cpp writes them: a separator at the start of every entry after the first.
TIMES_TEXT = """[
  { "startEnqMs" : 0.10, "endEnqMs" : 0.12, "startH2dMs" : 0.2, "endH2dMs" : 0.2, "startComputeMs" : 0.2, \
"endComputeMs" : 1.2, "startD2hMs" : 1.2, "endD2hMs" : 1.2, "h2dMs" : 0, "computeMs" : 1.0, "d2hMs" : 0, \
"latencyMs" : 1.0, "endToEndMs" : 1.0 }
, { "startEnqMs" : 300.0, "endEnqMs" : 300.05, "startH2dMs" : 300.1, "endH2dMs" : 300.3, "startComputeMs" : 300.3, \
"endComputeMs" : 301.5, "startD2hMs" : 301.5, "endD2hMs" : 301.6, "h2dMs" : 0.2, "computeMs" : 1.2, "d2hMs" : 0.1, \
"latencyMs" : 1.5, "endToEndMs" : 1.5 }
, { "startEnqMs" : 301.6, "endEnqMs" : 301.64, "startH2dMs" : 301.7, "endH2dMs" : 301.9, "startComputeMs" : 301.9, \
"endComputeMs" : 303.0, "startD2hMs" : 303.0, "endD2hMs" : 303.1, "h2dMs" : 0.2, "computeMs" : 1.1, "d2hMs" : 0.1, \
"latencyMs" : 1.4, "endToEndMs" : 1.4 }
]
"""
PROFILE_TEXT = """[
  { "count" : 10 }
, { "name" : "conv1 + relu1", "timeMs" : 5.0, "averageMs" : 0.5, "percentage" : 62.5 }
, { "name" : "fc", "timeMs" : 3.0, "averageMs" : 0.3, "percentage" : 37.5 }
]
"""


def test_times_file_in_trtexec_form_is_read_without_the_warm_up(tmp_path):
    path = tmp_path / "times.json"
    path.write_text(TIMES_TEXT)
    times = read_times(path, warmup_ms=200)
    assert times.latency_ms == [1.5, 1.4]
    assert times.gpu_compute_ms == [1.2, 1.1]
    assert times.h2d_ms == [0.2, 0.2] and times.d2h_ms == [0.1, 0.1]
    assert times.enqueue_ms == pytest.approx([0.05, 0.04])
    assert times.wall_ms == pytest.approx(303.1 - 300.1)
    assert set(times.extra()) == {"gpu_compute_ms", "enqueue_ms", "h2d_ms", "d2h_ms"}


def test_profile_and_layer_info_files_are_read(tmp_path):
    (tmp_path / "profile.json").write_text(PROFILE_TEXT)
    count, layers = read_profile(tmp_path / "profile.json")
    assert count == 10
    assert [(layer["name"], layer["averageMs"]) for layer in layers] == [("conv1 + relu1", 0.5), ("fc", 0.3)]
    (tmp_path / "layers.json").write_text(json.dumps({"Layers": ["conv1"], "Bindings": ["x", "y"]}))
    assert read_layer_info(tmp_path / "layers.json")["Bindings"] == ["x", "y"]


def test_our_files_are_in_trtexec_form(tmp_path):
    trace = [
        {"startComputeMs": 1.0, "endComputeMs": 2.0, "computeMs": 1.0, "latencyMs": 1.0, "startEnqMs": 0.5},
        {"startComputeMs": 3.0, "endComputeMs": 4.5, "computeMs": 1.5, "latencyMs": 1.5, "endEnqMs": 2.9},
    ]
    write_times(tmp_path / "times.json", trace)
    rows = json.loads((tmp_path / "times.json").read_text())
    assert list(rows[0]) == [
        "startEnqMs", "endEnqMs", "startH2dMs", "endH2dMs", "startComputeMs", "endComputeMs", "startD2hMs",
        "endD2hMs", "h2dMs", "computeMs", "d2hMs", "latencyMs", "endToEndMs",
    ]  # fmt: skip
    assert read_times(tmp_path / "times.json").gpu_compute_ms == [1.0, 1.5]
    write_profile(tmp_path / "profile.json", [{"name": "fc", "timeMs": 2.0, "averageMs": 0.2, "percentage": 100}], 10)
    assert read_profile(tmp_path / "profile.json") == (
        10,
        [{"name": "fc", "timeMs": 2.0, "averageMs": 0.2, "percentage": 100}],
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not a valid trtexec times file"),
        ('{"a": 1}', "expected a list of per-iteration objects"),
        ('[{"startComputeMs": 1}]', "lack \\['computeMs', 'latencyMs'\\]"),
    ],
)
def test_broken_times_files_are_refused(tmp_path, text, message):
    (tmp_path / "t.json").write_text(text)
    with pytest.raises(HarnessError, match=message):
        read_times(tmp_path / "t.json")
    with pytest.raises(HarnessError, match="no times file"):
        read_times(tmp_path / "absent.json")


def test_version_banner():
    assert parse_version("&&&& RUNNING TensorRT.trtexec [TensorRT v101300] # trtexec --help") == (10, 13, 0)
    assert parse_version("[TensorRT v110002]") == (11, 0, 2)
    assert parse_version("something else") is None


SHAPES = {"x": ((1, 3, 8, 8), (4, 3, 8, 8), (8, 3, 8, 8))}


def test_build_flags_differ_between_10_and_11(tmp_path):
    typed = TrtexecOptions(workspace_bytes=256 * 2**20, tf32=False)
    ten = command("trtexec", 10, Path("m.onnx"), SHAPES, "fp16", typed, Path("e.plan"), build_only=True)
    assert "--stronglyTyped" in ten
    assert "--minShapes=x:1x3x8x8" in ten and "--optShapes=x:4x3x8x8" in ten and "--maxShapes=x:8x3x8x8" in ten
    assert "--memPoolSize=workspace:268435456B" in ten
    assert "--noTF32" in ten and "--skipInference" in ten and "--fp16" not in ten
    eleven = command("trtexec", 11, Path("m.onnx"), SHAPES, "fp16", typed, Path("e.plan"), build_only=True)
    assert "--stronglyTyped" not in eleven  # always on in 11.x
    flags = TrtexecOptions(precision_mode="flags")
    assert "--fp16" in command("trtexec", 10, Path("m.onnx"), SHAPES, "fp16", flags, Path("e"), build_only=True)
    with pytest.raises(HarnessError, match=r"trtexec 11\.x has no precision flags"):
        command("trtexec", 11, Path("m.onnx"), SHAPES, "fp16", flags, Path("e"), build_only=True)


def test_measure_flags(tmp_path):
    exports = {k: tmp_path / f"{k}.json" for k in ("times", "profile", "layer_info")}
    spec = MeasureSpec(warmup_ms=200, min_duration_ms=1500, min_iterations=50)
    cmd = command("trtexec", 10, Path("m"), SHAPES, "fp32", TrtexecOptions(), Path("e.plan"), False, spec, exports)
    assert cmd[:2] == ["trtexec", "--loadEngine=e.plan"]
    assert "--shapes=x:4x3x8x8" in cmd
    assert {"--warmUp=200", "--duration=1.5", "--iterations=50", "--useCudaGraph", "--useSpinWait"} <= set(cmd)
    assert "--noDataTransfers" in cmd and "--separateProfileRun" in cmd
    assert f"--exportTimes={exports['times']}" in cmd and f"--exportLayerInfo={exports['layer_info']}" in cmd
    with_copies = command("t", 10, Path("m"), SHAPES, "fp32", TrtexecOptions(transfers=True), Path("e"), False, spec)
    assert "--noDataTransfers" not in with_copies


# -- the backend, end to end, with a stand-in binary ---------------------------------------------------------------
FAKE = r"""
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_TRTEXEC_LOG"], "a") as log:
    log.write(json.dumps(args) + "\n")
version = os.environ.get("FAKE_TRTEXEC_VERSION", "101300")
print(f"&&&& RUNNING TensorRT.trtexec [TensorRT v{version}] # trtexec " + " ".join(args))
opts = dict(a[2:].split("=", 1) if "=" in a else (a[2:], "") for a in args if a.startswith("--"))
if "help" in opts:
    sys.exit(0)
if version.startswith("11") and {"fp16", "int8", "stronglyTyped"} & set(opts):
    print("[E] Unknown option"); sys.exit(1)
if "saveEngine" in opts:
    with open(opts["saveEngine"], "wb") as f:
        f.write(b"plan-for-" + opts["onnx"].encode() + b"-" + opts.get("optShapes", "").encode())
    sys.exit(0)
if "loadEngine" in opts:
    n = max(int(opts.get("iterations", 10)), 1)
    warm = float(opts.get("warmUp", 0))
    rows, t = [], 0.0
    for i in range(n + 3):
        start = t
        rows.append({"startEnqMs": start, "endEnqMs": start + 0.02, "startH2dMs": start, "endH2dMs": start,
                     "startComputeMs": start, "endComputeMs": start + 2.0, "startD2hMs": start + 2.0,
                     "endD2hMs": start + 2.0, "h2dMs": 0, "computeMs": 2.0, "d2hMs": 0,
                     "latencyMs": 2.0, "endToEndMs": 2.0})
        t = start + (warm + 1 if i == 2 else 2.5)
    text = "[\n" + "\n, ".join(json.dumps(r) for r in rows) + "\n]\n"
    open(opts["exportTimes"], "w").write(text)
    profile = [{"count": 5}, {"name": "conv", "timeMs": 10, "averageMs": 2, "percentage": 100}]
    open(opts["exportProfile"], "w").write(json.dumps(profile))
    open(opts["exportLayerInfo"], "w").write('{"Layers": ["conv"], "Bindings": ["data_0"]}')
    sys.exit(0)
print("[E] nothing to do"); sys.exit(2)
"""


@pytest.fixture
def fake_trtexec(tmp_path, monkeypatch):
    binary = tmp_path / "bin" / "trtexec"
    binary.parent.mkdir()
    binary.write_text(f"#!{sys.executable}\n{FAKE}")
    binary.chmod(binary.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "trtexec.log"
    monkeypatch.setenv("FAKE_TRTEXEC_LOG", str(log))
    return binary, log


def calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_backend_builds_measures_and_caches_through_trtexec(pytester, fake_trtexec):
    binary, log = fake_trtexec
    pytester.makepyfile(test_bench="def test_case(harness_case, harness_check):\n    harness_check(harness_case)\n")
    suite = pytester.path / "suite.yaml"
    suite.write_text(
        "suite: tx\nmodels:\n  - name: squeezenet\n    onnx_zoo: light_squeezenet\n"
        "batch_sizes: [1, 4]\nmeasure: {warmup_ms: 50, min_duration_ms: 10, min_iterations: 12, trials: 1}\n"
    )
    root = pytester.path
    args = [
        "-p", "harness.pytest_plugin", "--backend", "trtexec", "--backend-option", f"binary={binary}",
        "--suite", str(suite), "--baseline-dir", str(root / "b"), "--report-dir", str(root / "r"),
        "--harness-cache", str(root / "c"), "-p", "no:cacheprovider", "--no-reports",
    ]  # fmt: skip
    pytester.runpytest_subprocess(*args).assert_outcomes(passed=2)
    results = json.loads((root / "r" / "results.json").read_text())
    assert results["environment"]["backend"] == {
        "name": "trtexec",
        "version": "10.13.0",
        "settings": results["environment"]["backend"]["settings"],
    }
    case = next(c for c in results["cases"] if c["id"] == "squeezenet-fp32-b4")
    assert case["samples"]["latency_ms"] == [2.0] * 12  # the warm-up iterations are dropped, as trtexec does
    assert case["stats"]["gpu_compute_ms"]["median"] == 2.0
    assert case["metrics"]["throughput_sps"] == pytest.approx(4 * 12 / (11 * 2.5 + 2.0) * 1e3)
    assert case["build"]["cache_hit"] is False
    assert set(case["build"]["artifacts"]) == {"times", "profile", "layer_info"}
    builds = [c for c in calls(log) if any(a.startswith("--saveEngine") for a in c)]
    assert len(builds) == 2 and all("--stronglyTyped" in c for c in builds)
    assert any("--optShapes=data_0:4x3x224x224" in c for c in builds)
    runs = [c for c in calls(log) if any(a.startswith("--loadEngine") for a in c)]
    assert all("--useCudaGraph" in c and "--noDataTransfers" in c for c in runs)

    log.write_text("")
    pytester.runpytest_subprocess(*args).assert_outcomes(passed=2)
    assert not [c for c in calls(log) if any(a.startswith("--saveEngine") for a in c)]  # served from the cache
    again = json.loads((root / "r" / "results.json").read_text())
    assert all(c["build"]["cache_hit"] for c in again["cases"])
    assert len(list((root / "c" / "engines").glob("*.engine"))) == 2  # one copy per engine, in the cache
    assert not list((root / "c" / "scratch").iterdir())  # the build's temporary output is gone


def test_backend_without_a_binary_says_what_to_do(monkeypatch):
    from harness.backends.base import get_backend

    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(HarnessError, match="no trtexec binary found on PATH"):
        get_backend("trtexec", {})


def test_trtexec_11_refuses_legacy_flags(fake_trtexec, monkeypatch):
    from harness.backends.base import get_backend

    binary, _ = fake_trtexec
    monkeypatch.setenv("FAKE_TRTEXEC_VERSION", "110000")
    backend = get_backend("trtexec", {"binary": str(binary)})
    assert backend.version() == "11.0.0"
    with pytest.raises(HarnessError, match=r"needs trtexec 10\.x"):
        get_backend("trtexec", {"binary": str(binary), "precision_mode": "flags"})
    assert os.access(binary, os.X_OK)


def test_trtexec_keeps_engines_and_writes_files_where_its_context_says(fake_trtexec, tmp_path, monkeypatch):
    from harness.backends.base import BackendContext, get_backend
    from harness.models.sources import prepare
    from harness.suite.load import load_suite

    binary, _ = fake_trtexec
    monkeypatch.chdir(tmp_path)  # a backend that ignored its context would write ./.harness-cache here
    (tmp_path / "s.yaml").write_text("suite: tx\nmodels:\n  - name: squeezenet\n    onnx_zoo: light_squeezenet\n")
    (case,) = load_suite(tmp_path / "s.yaml").cases()
    context = BackendContext(tmp_path / "run-cache", tmp_path / "reports" / "artifacts")
    backend = get_backend("trtexec", {"binary": str(binary)}, context)
    assert backend.context is context and backend.uses_gpu and backend.takes_typed_models
    engine = backend.build(prepare(case.model, tmp_path / "models"), case)
    assert engine.path.parent == tmp_path / "run-cache" / "engines"
    measured = engine.runner({}).measure(MeasureSpec(warmup_ms=0, min_duration_ms=1, min_iterations=3), 1)
    assert measured is not None and measured.latency_ms
    folder = tmp_path / "reports" / "artifacts" / case.id
    assert engine.build.details["artifacts"]["times"] == str(folder / "times.json")
    assert not (tmp_path / ".harness-cache").exists()


def test_trtexec_with_legacy_flags_builds_the_fp32_model(fake_trtexec):
    from harness.backends.base import get_backend

    binary, _ = fake_trtexec
    assert get_backend("trtexec", {"binary": str(binary), "precision_mode": "flags"}).takes_typed_models is False
