#!/usr/bin/env bash
# Runs the GPU evidence on a machine with an NVIDIA GPU, from a checkout (no registry access needed).
#
#   bash benchmarks/perf/gpu_evidence.sh OUT_DIR STAGE...
#
# Stages: tests (the gpu-marked tests), fidelity (benchmarks/perf/gpu_fidelity.py), suite (the GPU suite on the
# torch backend twice: the first run records baselines under baselines/, the second gives the between-run spread),
# contrast (ONNX Runtime CPU on the same exported models, recorded as baselines too; torch eager and torch.compile
# on a subset), smoke (a short suite run), attribution (tests/test_e2e_attribution_gpu.py: one block made heavier is
# named, an A/A names none), gate (the GPU suite against baselines another process recorded: A/A, then +5% simulated
# on two cases; docs/evidence/gpu-gate-h200-fresh-process.md), calibrate (harness calibrate on those two cases, 8
# runs of one process each, at the suite's 2%), ort-gpu (tests/test_backends_onnxruntime_gpu.py), ort-gate (the gate's
# record, A/A and +5% on the same two cases as ONNX exports on ONNX Runtime's CUDA provider) and ort-calibrate (the
# calibration of those); the ort stages need onnxruntime-gpu importable and the CUDA libraries it loads on the loader
# path. Logs and results land in OUT_DIR; OUT_DIR/gpu-evidence.tar.gz holds all.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
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
# onnxruntime-gpu dlopens the CUDA and cuDNN libraries; where they come as pip packages (torch's nvidia-* wheels) they
# are on no loader path, so the ort stages put those folders on it.
nvidia_libs() {
  local sites
  read -r -a sites <<<"$(python3 -c "import site; print(*site.getsitepackages())")"
  find "${sites[@]}" -path '*nvidia*' -name 'lib*.so*' -printf '%h\n' 2>/dev/null | sort -u | paste -sd:
}
for stage in "$@"; do
  case "$stage" in
    ort-*) libs="$(nvidia_libs)"; export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ;;
  esac
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
    attribution)
      python3 -m pytest tests/test_e2e_attribution_gpu.py -m gpu -rs -v -p no:cacheprovider \
        2>&1 | tee "$out/attribution-gpu.log" | grep -E "PASSED|FAILED|ERROR|SKIPPED|where:|passed|failed" | tail -30 ;;
    gate)
      # the profile pass is left out: it runs after the judged trials and changes no verdict, only the run's length
      run_suite gate-record --backend torch --baseline-dir "$out/gate-baselines" --update-baselines --no-profile
      run_suite gate-aa --backend torch --baseline-dir "$out/gate-baselines" --no-profile
      run_suite gate-slowdown --backend torch --baseline-dir "$out/gate-baselines" --no-profile \
        --simulate-slowdown 1.05 --slowdown-cases torch-resnet50-fp16-b1 --slowdown-cases torch-bert-base-fp16-b8 ;;
    calibrate)
      python3 -m harness.cli calibrate "$suite" --backend torch --cases torch-bert-base-fp16-b8 \
        --cases torch-resnet50-fp16-b1 --runs 8 --tolerance 2% --json "$out/calibrate-torch.json" \
        2>&1 | tee "$out/calibrate.log" | tail -24 ;;
    ort-gpu)
      python3 -m pytest tests/test_backends_onnxruntime_gpu.py -m gpu -rs -v -p no:cacheprovider \
        2>&1 | tee "$out/ort-gpu-tests.log" | grep -E "PASSED|FAILED|ERROR|SKIPPED|passed|failed" | tail -12 ;;
    ort-gate)
      ort=(--backend onnxruntime --backend-option "providers=[CUDAExecutionProvider]" --no-profile
           -k "torch-resnet50-fp16-b1 or torch-bert-base-fp16-b8")
      run_suite ort-record "${ort[@]}" --baseline-dir "$out/ort-baselines" --update-baselines
      run_suite ort-aa "${ort[@]}" --baseline-dir "$out/ort-baselines"
      run_suite ort-slowdown "${ort[@]}" --baseline-dir "$out/ort-baselines" --simulate-slowdown 1.05 \
        --slowdown-cases torch-resnet50-fp16-b1 --slowdown-cases torch-bert-base-fp16-b8 ;;
    ort-calibrate)
      python3 -m harness.cli calibrate "$suite" --backend onnxruntime --backend-option "providers=[CUDAExecutionProvider]" \
        --cases torch-bert-base-fp16-b8 --cases torch-resnet50-fp16-b1 --runs 8 --tolerance 2% \
        --json "$out/calibrate-ort-cuda.json" 2>&1 | tee "$out/calibrate-ort-cuda.log" | tail -24 ;;
    *) echo "unknown stage $stage" >&2 ;;
  esac
done
cp -r baselines "$out/baselines" 2>/dev/null
tar -czf /tmp/gpu-evidence.tar.gz -C "$out" . && mv /tmp/gpu-evidence.tar.gz "$out/"
