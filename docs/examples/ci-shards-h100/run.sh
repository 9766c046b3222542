#!/bin/bash
# Device check for issue 8: xdist worker pinning on a real GPU, shards + merge with the torch backend.
set -o pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
P="python3 -m pytest -p harness.pytest_plugin -p no:cacheprovider"
nvidia-smi -L
python3 -c "import xdist, execnet; print('xdist', xdist.__version__)"
mkdir -p /tmp/probe && cat > /tmp/probe/test_probe.py <<'PY'
import os
import torch
def test_gpu(worker_id):
    print(f"\nPROBE {worker_id} CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')} "
          f"count={torch.cuda.device_count()} name={torch.cuda.get_device_name(0)}")
PY
echo "== -n auto: one worker per GPU"
$P /tmp/probe -n auto -s -q --rootdir /tmp/probe 2>&1 | grep -E "PROBE|passed|failed|error|harness"
echo "== -n 2 on one GPU: refused"
$P /tmp/probe -n 2 -q --rootdir /tmp/probe; echo "rc=$?"
echo "== torch suite, 2 shards, each with xdist -n auto"
K="torch-resnet50 and (fp16 or bf16)"
for i in 1 2; do
  $P benchmarks --suite benchmarks/suites/gpu-torch.yaml --backend torch --shard $i/2 -n auto -q -k "$K" \
     --report-dir /tmp/s$i --baseline-dir /tmp/base --min-duration-ms 300 2>&1 | tail -12
done
python3 -m harness.cli merge /tmp/s1 /tmp/s2 --expect-shards 2 --report-dir /tmp/merged --durations-out $OUT/durations.json; echo "merge rc=$?"
cp /tmp/merged/summary.md $OUT/ 2>/dev/null
python3 - <<'PY' > $OUT/merged-runs.json
import json; d = json.load(open("/tmp/merged/results.json"))
print(json.dumps({"runs": d["runs"], "cases": [(c["id"], c["status"], c["verdict"], c["metrics"].get("latency_median_ms")) for c in d["cases"]], "gpus": d["environment"].get("gpus"), "key": d["environment"].get("key")}, indent=1))
PY
ls /tmp/merged
