#!/usr/bin/env bash
# Runs the GPU evidence on a machine with an NVIDIA GPU, from a checkout (no registry access needed).
#
#   bash benchmarks/perf/gpu_evidence.sh OUT_DIR STAGE...
#
# Stages: tests (the gpu-marked tests), fidelity (benchmarks/perf/gpu_fidelity.py), suite (the GPU suite on the
# torch backend twice: the first run records baselines under baselines/, the second gives the between-run spread),
# contrast (ONNX Runtime CPU on the same exported models, recorded as baselines too; torch eager and torch.compile
# on a subset), smoke (a short suite run). Logs and results land in OUT_DIR; OUT_DIR/gpu-evidence.tar.gz holds all.
set -uo pipefail
cd "$(dirname "$0")/../.."
out="$1"; shift
mkdir -p "$out"
export PYTHONUNBUFFERED=1
# Register the pytest plugin (entry point) without touching a registry.
python3 -m pip install -q --no-deps --no-build-isolation -e . >"$out/install.log" 2>&1 || cat "$out/install.log"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem,power.draw,power.limit,temperature.gpu \
  --format=csv | tee -a "$out/nvidia-smi.csv"
suite=benchmarks/suites/gpu-torch.yaml
run_suite() {  # run_suite NAME ARGS...: one pytest run of the GPU suite, results under $out/NAME/
  local name=$1; shift
  python3 -m pytest benchmarks --suite "$suite" --report-dir "$out/$name" --no-reports -q -rs -p no:cacheprovider "$@" \
    2>&1 | tee "$out/$name.log" | tail -42
}
for stage in "$@"; do
  case "$stage" in
    tests)
      python3 -m pytest tests/test_machine_cuda.py tests/test_machine_telemetry.py tests/test_backends_torch.py -m gpu -rs -v -p no:cacheprovider \
        2>&1 | tee "$out/gpu-tests.log" | grep -E "PASSED|FAILED|ERROR|SKIPPED|passed|failed" | tail -30 ;;
    fidelity)
      python3 benchmarks/perf/gpu_fidelity.py --out "$out/fidelity.json" 2>&1 | tee "$out/fidelity.log" | tail -24 ;;
    suite)
      run_suite torch-run1 --backend torch --update-baselines --baseline-dir baselines
      run_suite torch-run2 --backend torch --baseline-dir "$out/scratch-baselines"
      python3 benchmarks/perf/gpu_fidelity.py --spread "$out/torch-run1/results.json" "$out/torch-run2/results.json" \
        --out "$out/spread.json" | tail -3 ;;
    contrast)
      run_suite onnxruntime-cpu --backend onnxruntime --update-baselines --baseline-dir baselines \
        -k "fp32-b1 or fp32-b8" --min-iterations 10 --min-duration-ms 300 --trials 2
      run_suite torch-eager --backend torch --backend-option mode=eager --baseline-dir "$out/scratch-baselines" \
        -k "fp16 or bf16" --trials 1
      run_suite torch-compile --backend torch --backend-option mode=compile --baseline-dir "$out/scratch-baselines" \
        -k "fp16-b8" --trials 1 ;;
    smoke)
      run_suite smoke --backend torch --baseline-dir "$out/smoke-baselines" --min-duration-ms 100 --trials 1 -k "b8" ;;
    *) echo "unknown stage $stage" >&2 ;;
  esac
done
cp -r baselines "$out/baselines" 2>/dev/null
tar -czf /tmp/gpu-evidence.tar.gz -C "$out" . && mv /tmp/gpu-evidence.tar.gz "$out/"
