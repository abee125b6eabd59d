"""cnnbench's training loop vs a hand-written PyTorch loop, side by side in one process.

Same model, same data as in-memory tensors, same batch size, optimizer and schedule, no
augmentation. cnnbench runs a real ``Trainer`` with its default callbacks (Rich progress
bar, CSV logging, checkpoints, throughput, divergence guard). The two alternate
``--rounds`` times (one epoch each); the ratio reported is the median of the per-round
ratios (each round pairs runs made seconds apart, which cancels most of the drift of a
shared machine), next to the medians of images/s. ``--profile`` adds Lightning's
SimpleProfiler table of per-step hook costs in microseconds.

    python benchmarks/bench_fit.py --data-root ../shared/data                  # LeNet-5, CPU, batch 128 and 256
    python benchmarks/bench_fit.py --data-root ../shared/data --time-to-accuracy 0.99
    python benchmarks/bench_fit.py --data-root ../shared/data --batch-sizes 128 --rounds 1 --profile
    python benchmarks/bench_fit.py --device cuda --model alexnet_cifar --data synthetic --batch-sizes 512 --precision 32-true bf16-mixed
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.profilers import SimpleProfiler

from cnnbench.data import create_data
from cnnbench.models import create_model
from cnnbench.training import Throughput, trainer_extras


def make_data(args: argparse.Namespace, batch: int) -> Any:
    if args.data == "synthetic":
        shape = {"lenet5": (1, 32), "lenet5_classic": (1, 32)}.get(args.model, (3, 32))
        return create_data(
            "synthetic", channels=shape[0], size=shape[1], batch_size=batch, train_images=args.images, on_device=True
        )
    return create_data(args.data, root=args.data_root, download=False, batch_size=batch, augment="none")


def build_model(args: argparse.Namespace, dm: Any) -> Any:
    c, h, _ = dm.image_shape
    return create_model(args.model, num_classes=dm.num_classes, in_channels=c, input_size=h)


def hand_loop(
    args: argparse.Namespace, batch: int, epochs: int = 1, target: float | None = None
) -> tuple[float, float | None]:
    """(steady-state images/s, seconds to reach ``target`` test accuracy or None)."""
    dm = make_data(args, batch)
    dm.setup()
    device = torch.device(args.device)
    model = build_model(args, dm).to(device)
    x_all, y_all = (t.to(device) for t in dm.splits["train"])
    opt = model.configure_optimizers()  # same optimizer (no trainer: no schedule) ...
    steps_per_epoch = len(y_all) // batch
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=model.hparams.lr, total_steps=steps_per_epoch * epochs, pct_start=0.15
    )
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision_now == "bf16-mixed")
    seen, timed, reached = 0, 0.0, None
    elapsed = 0.0
    for epoch in range(epochs):
        order = torch.randperm(len(y_all), generator=torch.Generator().manual_seed(epoch)).to(device)
        start = last = time.perf_counter()
        for i in range(steps_per_epoch):
            idx = order[i * batch : (i + 1) * batch]
            x = dm.normalize(x_all[idx].float())
            with autocast:
                loss = F.cross_entropy(model(x), y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            now = time.perf_counter()
            if i >= 10:
                seen, timed = seen + batch, timed + now - last
            last = now
        elapsed += time.perf_counter() - start
        if target is not None and reached is None and test_accuracy(model, dm, device) >= target:
            reached = elapsed
    return seen / timed, reached


@torch.no_grad()
def test_accuracy(model: Any, dm: Any, device: torch.device) -> float:
    model.eval()
    x, y = dm.splits["test"]
    correct = sum(
        int((model(dm.normalize(x[i : i + 1000].to(device).float())).argmax(-1) == y[i : i + 1000].to(device)).sum())
        for i in range(0, len(y), 1000)
    )
    model.train()
    return correct / len(y)


class _TimeToAccuracy(L.Callback):
    def __init__(self, target: float) -> None:
        self.target, self.elapsed, self.reached = target, 0.0, None

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.elapsed += time.perf_counter() - self._start
        if self.reached is None and test_accuracy(pl_module, trainer.datamodule, pl_module.device) >= self.target:
            self.reached = self.elapsed


def cnnbench_loop(
    args: argparse.Namespace, batch: int, epochs: int = 1, target: float | None = None, profile: bool = False
) -> tuple[float, float | None]:
    dm = make_data(args, batch)
    model = build_model(args, dm)
    with tempfile.TemporaryDirectory() as run_dir:
        extras = trainer_extras(run_dir, args.model, 0)
        if profile:
            extras["profiler"] = SimpleProfiler(dirpath=run_dir, filename="profile")  # its full report: a file
        tta = _TimeToAccuracy(target) if target is not None else None
        if tta:
            extras["callbacks"].append(tta)
        trainer = L.Trainer(
            max_epochs=epochs, accelerator=args.device, devices=1, precision=args.precision_now,
            limit_val_batches=0, num_sanity_val_steps=0, enable_model_summary=False, **extras,
        )  # fmt: skip
        trainer.fit(model, dm)
    if profile:
        print_step_costs(extras["profiler"], trainer.global_step)
    throughput = next(c for c in trainer.callbacks if isinstance(c, Throughput))  # type: ignore[attr-defined]
    return throughput.total_images / throughput.total_time, tta.reached if tta else None


def print_step_costs(profiler: SimpleProfiler, steps: int) -> None:
    """Mean microseconds per training step of every action Lightning timed on each step."""
    print(f"per-step costs over {steps} steps (SimpleProfiler; it adds ~2 us to each entry):")
    rows = [(sum(d) / len(d) * 1e6, a) for a, d in profiler.recorded_durations.items() if len(d) >= steps]
    for mean_us, action in sorted(rows, reverse=True)[:25]:
        print(f"  {mean_us:9.1f} us  {action[:110]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="lenet5")
    parser.add_argument("--data", default="mnist", help="mnist, cifar10 or synthetic")
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--precision", nargs="+", default=["32-true"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--images", type=int, default=50_000, help="synthetic data size")
    parser.add_argument(
        "--time-to-accuracy", type=float, default=None, help="also time both loops to this test accuracy"
    )
    parser.add_argument("--epochs", type=int, default=8, help="epochs for --time-to-accuracy")
    parser.add_argument("--profile", action="store_true", help="print per-step hook costs (one extra epoch)")
    args = parser.parse_args()
    name = torch.cuda.get_device_name(0) if args.device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"{args.model} on {args.data}, {name}; medians of {args.rounds} alternating rounds")
    for precision in args.precision:
        args.precision_now = precision
        for batch in args.batch_sizes:
            rates: dict[str, list[float]] = {"hand": [], "cnnbench": []}
            for _ in range(args.rounds):
                rates["hand"].append(hand_loop(args, batch)[0])
                rates["cnnbench"].append(cnnbench_loop(args, batch)[0])
            hand, ours = statistics.median(rates["hand"]), statistics.median(rates["cnnbench"])
            ratios = [o / h for o, h in zip(rates["cnnbench"], rates["hand"])]
            ratio = statistics.median(ratios)
            overhead_us = (1 / ratio - 1) / hand * batch * 1e6
            print(
                f"{precision:11s} batch {batch:4d}: hand {hand:9,.0f} img/s | cnnbench {ours:9,.0f} img/s | "
                f"ratio {ratio:.3f} (rounds: {' '.join(f'{r:.2f}' for r in ratios)}) | overhead {overhead_us:+.0f} us/step"
            )
            if args.profile:
                cnnbench_loop(args, batch, profile=True)
    if args.time_to_accuracy:
        args.precision_now = args.precision[0]
        batch = args.batch_sizes[0]
        hand_t = hand_loop(args, batch, args.epochs, args.time_to_accuracy)[1]
        ours_t = cnnbench_loop(args, batch, args.epochs, args.time_to_accuracy)[1]
        fmt = lambda t: "not reached" if t is None else f"{t:.1f} s"  # noqa: E731
        ratio = f"{ours_t / hand_t:.3f}" if hand_t and ours_t else "n/a"
        print(
            f"time to {args.time_to_accuracy:.1%} test accuracy ({args.epochs} epochs max, batch {batch}): hand {fmt(hand_t)} | cnnbench {fmt(ours_t)} | ratio {ratio}"
        )


if __name__ == "__main__":
    main()
