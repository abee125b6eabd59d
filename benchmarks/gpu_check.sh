#!/usr/bin/env bash
# One prepared GPU session (run through the device tool): fit-loop overhead and precision
# speed-ups, then a small CIFAR-10 grid. Outputs go to $OUT (text files and one tarball).
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 CNNBENCH_TRACEBACK=1
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
quiet() { grep -v -E "Warning|warn|Tip|LOCAL_RANK|available|Seed set|estimate|max_epochs|━|^ *$|^\s+train/" ; }
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import torch, lightning; print('torch', torch.__version__, 'lightning', lightning.__version__, torch.cuda.get_device_name(0))"; } > "$OUT/env.txt" 2>&1
mkdir -p /tmp/cifar && tar xzf .scratch/cifar10-jpeg.tar.gz -C /tmp/cifar &
timeout 100 python3 benchmarks/bench_fit.py --device cuda --model lenet5 --data synthetic --batch-sizes 128 512 --rounds 3 2>&1 | quiet > "$OUT/bench_fit_lenet5.txt"
timeout 150 python3 benchmarks/bench_fit.py --device cuda --model alexnet_cifar --data synthetic --batch-sizes 512 --precision 32-true bf16-mixed --rounds 2 2>&1 | quiet > "$OUT/bench_fit_alexnet.txt"
wait
timeout 290 python3 -m cnnbench bench benchmarks/grids/cifar10-gpu.yaml --out /tmp/cifar-grid --no-wandb --workers 3 > "$OUT/cifar_grid.txt" 2>&1
tar czf "$OUT/cifar_grid.tgz" -C /tmp/cifar-grid results REPORT.md results.csv summary.csv accuracy.png shift.png throughput.png logs 2>/dev/null
ls -la "$OUT"
