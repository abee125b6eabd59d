#!/usr/bin/env bash
# Every GPU measurement of issue 10 in one prepared run (through the device tool), sized for one
# 15-minute lease: the CUDA tests, the captured step vs the hand loop, time to 99% MNIST through the
# CLI, the 12-cell grid and the fork-server fixed cost. The 60-run CIFAR-10 grid is a separate
# lease: `bash benchmarks/gpu_check.sh cifar`.
#   here:   bash ../shared/tools/device-pack.sh
#   device: run(command="source .device-pack/unpack.sh; bash benchmarks/gpu_check.sh", carry=[".device-pack"], timeout_s=560)
# Try it on the CPU first with GPU_CHECK_DRY=1 (every step, tiny sizes, no GPU needed).
set -u
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1 WANDB_MODE=disabled
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
DATA=${CNNBENCH_DATA_DIR:-/tmp/data}
dry=${GPU_CHECK_DRY:-}
acc=gpu; rounds=3; [ -n "$dry" ] && { acc=cpu; rounds=1; }
step() { echo "== $1 ($(date +%T))" | tee -a "$OUT/summary.txt"; }
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null
  python3 -c "import torch, lightning; print('torch', torch.__version__, 'lightning', lightning.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')"; } > "$OUT/env.txt" 2>&1

if [ "${1:-}" = cifar ]; then  # ≤ 10 minutes is the goal for the 60-run grid (alexnet_cifar, bf16-mixed)
  step "cifar10 grid"
  /usr/bin/time -f "%e s wall" timeout 560 python3 -m cnnbench bench cifar10-gpu \
    --out /tmp/cifar-grid --no-wandb --workers 4 > "$OUT/cifar_grid.txt" 2>&1
  python3 -m cnnbench report /tmp/cifar-grid >> "$OUT/cifar_grid.txt" 2>&1
  tar czf "$OUT/cifar_grid.tgz" -C /tmp/cifar-grid . 2>/dev/null; exit 0
fi

step "tests/gpu (skip without CUDA)"
timeout 150 python3 -m pytest -q -ra tests/gpu > "$OUT/gpu_tests.txt" 2>&1; tail -3 "$OUT/gpu_tests.txt" >> "$OUT/summary.txt"

step "bench_fit lenet5 (goal: captured ≥ 4× the eager hand loop)"
timeout 150 python3 benchmarks/bench_fit.py --device "${acc/gpu/cuda}" --model lenet5 --data synthetic --images 20000 \
  --batch-sizes 128 512 --rounds $rounds --train-step graph eager 2>&1 | grep -E "batch|ratio|step:" > "$OUT/bench_fit_lenet5.txt"
cat "$OUT/bench_fit_lenet5.txt" >> "$OUT/summary.txt"

step "bench_fit alexnet_cifar (goal ≥ 0.95×)"
timeout 150 python3 benchmarks/bench_fit.py --device "${acc/gpu/cuda}" --model alexnet_cifar --data synthetic --images 20000 \
  --batch-sizes 512 --precision 32-true bf16-mixed --rounds $(( rounds - 1 > 0 ? rounds - 1 : 1 )) --train-step graph eager 2>&1 \
  | grep -E "batch|ratio|step:" > "$OUT/bench_fit_alexnet.txt"
cat "$OUT/bench_fit_alexnet.txt" >> "$OUT/summary.txt"

step "time to 99% MNIST through the CLI (goal ≤ 15 s wall, ≥ 99.0% test)"
( cd /tmp && /usr/bin/time -f "%e s wall" timeout 90 python3 -m cnnbench fit --model lenet5 --data.root "$DATA" \
  --data.download=false --trainer.accelerator "$acc" --trainer.enable_progress_bar=false --test_after_fit true \
  ${dry:+--trainer.max_steps=5} ) > "$OUT/fit_lenet5.txt" 2>&1
grep -E "test/acc|wall|img_s|best val" "$OUT/fit_lenet5.txt" >> "$OUT/summary.txt"

step "bench_grid: fork-server fixed cost vs bare import (goal ≤ 0.5×)"
timeout 120 python3 benchmarks/bench_grid.py --data-root "$DATA" --accelerator "$acc" --workers 3 --json "$OUT/bench_grid.json" \
  > "$OUT/bench_grid.txt" 2>&1; tail -15 "$OUT/bench_grid.txt" >> "$OUT/summary.txt"

step "12-cell grid (goal ≤ 30 s wall)"
grid=cnnbench/grids/lenet5-gpu-12.yaml  # shipped: `cnnbench bench lenet5-gpu-12`
[ -n "$dry" ] && { sed 's/max_epochs: 3, accelerator: gpu/max_steps: 3, accelerator: cpu/' $grid > /tmp/grid12.yaml; grid=/tmp/grid12.yaml; }
CNNBENCH_DATA_DIR=$DATA /usr/bin/time -f "%e s wall" timeout 120 python3 -m cnnbench bench $grid --out /tmp/grid12 \
  --no-wandb --workers 3 > "$OUT/grid12.txt" 2>&1
tail -4 "$OUT/grid12.txt" >> "$OUT/summary.txt"
python3 - >> "$OUT/summary.txt" 2>&1 <<'PY'
import json, pathlib, statistics
rs = [json.loads(p.read_text()) for p in pathlib.Path("/tmp/grid12/results").glob("*.json")]
train = [r.get("train_time_s", 0) for r in rs]
fixed = [(r["t_first_step"] - r["t_launch"]) + (r["t_exit"] - r["t_eval_end"]) for r in rs if "t_exit" in r]
print(f"grid12: {len(rs)} results, train median {statistics.median(train):.2f} s, fixed median {statistics.median(fixed) if fixed else float('nan'):.2f} s, test_acc {[round(r.get('test_acc') or 0, 4) for r in rs]}")
PY
cat "$OUT/summary.txt"
