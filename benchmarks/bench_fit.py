"""cnnbench's training loop vs a hand-written PyTorch loop, side by side in one process.

Same model, same data as in-memory tensors, same batch size, optimizer and schedule, no
augmentation. cnnbench runs a real ``Trainer`` with its default callbacks (Rich progress
bar, CSV logging, checkpoints, throughput, divergence guard). The two loops alternate
every ``--chunk`` steps inside one epoch (the hand loop runs from a callback, outside
Lightning's timed steps), so both meet the same machine: on a shared machine whose speed
drifts by 20% within seconds, alternating whole runs cannot resolve a 5% difference.
Steady-state images/s is the batch size over the median step time (bursts of other work
inflate some steps of either loop; the mean over all steps is printed too); the ratio is
the median over ``--rounds`` epochs. ``--floor`` also times a bare Lightning ``Trainer`` (no
logger, callbacks or progress bar: what Lightning itself costs). ``--profile`` adds Lightning's SimpleProfiler table of
per-step hook costs in microseconds.

    python benchmarks/bench_fit.py --data-root ../shared/data                  # LeNet-5, CPU, batch 128 and 256
    python benchmarks/bench_fit.py --data-root ../shared/data --time-to-accuracy 0.99
    python benchmarks/bench_fit.py --data-root ../shared/data --batch-sizes 128 --rounds 1 --profile
    python benchmarks/bench_fit.py --device cuda --model alexnet_cifar --data synthetic --batch-sizes 512 --precision 32-true bf16-mixed
    python benchmarks/bench_fit.py --device cuda --data synthetic --batch-sizes 128 512 --train-step graph eager

``--train-step`` chooses cnnbench's step (``auto``: one CUDA-graph replay per step where that
is safe, see ``cnnbench.training.captured_step``; ``eager``: Lightning's own); several values are measured
one after the other against the same hand loop (always eager: the reference).
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
from cnnbench.training import trainer_extras
from cnnbench.training.captured_step import CapturedStep


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


class HandLoop:
    """Plain PyTorch (index, normalize, forward, backward, step, schedule), advanced a few
    steps at a time so that it can run interleaved with a Lightning fit."""

    def __init__(self, args: argparse.Namespace, batch: int, epochs: int = 1, seed: int = 0) -> None:
        self.dm = make_data(args, batch)
        self.dm.setup()
        self.device = torch.device(args.device)
        torch.manual_seed(seed)  # the same initial weights as the cnnbench fit of this seed
        self.model = build_model(args, self.dm).to(self.device)
        self.x_all, self.y_all = (t.to(self.device) for t in self.dm.splits["train"])
        self.opt = self.model.configure_optimizers()  # same optimizer (no trainer: no schedule) ...
        self.batch, self.steps_per_epoch = batch, len(self.y_all) // batch
        self.loader = self.dm.train_dataloader()
        self.sched = torch.optim.lr_scheduler.OneCycleLR(  # ... and the same schedule
            self.opt, max_lr=self.model.hparams.lr, total_steps=self.steps_per_epoch * epochs, pct_start=0.15
        )
        bf16 = args.precision_now == "bf16-mixed"
        self.autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16)
        self.done = 0

    def steps(self, n: int) -> list[float]:
        """Run ``n`` steps; their durations (no device sync per step: the GPU queue paces the
        loop as it paces Lightning's; one sync at the end)."""
        times, last = [], time.perf_counter()
        for _ in range(n):
            i = self.done % self.steps_per_epoch
            if i == 0:  # the same sample order as cnnbench's loader, so both do the same arithmetic
                self.order = self.loader.indices(self.done // self.steps_per_epoch).to(self.device)
            idx = self.order[i * self.batch : (i + 1) * self.batch]
            x = self.dm.normalize(self.x_all[idx])
            with self.autocast:
                loss = F.cross_entropy(self.model(x), self.y_all[idx])
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            self.sched.step()
            self.done += 1
            now = time.perf_counter()
            times.append(now - last)
            last = now
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return times


class Interleave(L.Callback):
    """After every ``chunk`` Lightning steps, run ``chunk`` hand-loop steps. Both loops then
    see the same machine within a second of each other: on a shared machine whose speed
    drifts by 20% over seconds, alternating whole runs cannot separate a 5% difference.
    The first step of each loop after a switch (cold caches) is not counted, for either."""

    def __init__(self, hand: HandLoop, chunk: int = 50) -> None:
        self.hand, self.chunk = hand, chunk
        self.hand_times: list[float] = []
        self.lightning_times: list[float] = []
        self._last: float | None = None

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.lightning_times.append(now - self._last)
        self._last = now
        if trainer.global_step % self.chunk == 0:
            if pl_module.device.type == "cuda":
                torch.cuda.synchronize()
            self.hand_times += self.hand.steps(self.chunk)[1:]
            self._last = None  # the next Lightning step starts cold: not counted


def steady(times: list[float], batch: int) -> tuple[float, float]:
    """(images/s from the median step, images/s from all steps)."""
    return batch / statistics.median(times), batch * len(times) / sum(times)


def hand_time_to_accuracy(
    args: argparse.Namespace, batch: int, epochs: int, target: float, seed: int = 0
) -> float | None:
    """Seconds of training until the test accuracy after an epoch reaches ``target``."""
    hand, elapsed = HandLoop(args, batch, epochs, seed), 0.0
    for _ in range(epochs):
        elapsed += sum(hand.steps(hand.steps_per_epoch))
        if test_accuracy(hand.model, hand.dm, hand.device) >= target:
            return elapsed
    return None


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
        self.target, self.elapsed = target, 0.0
        self.reached: float | None = None

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.elapsed += time.perf_counter() - self._start
        dm = trainer.datamodule  # type: ignore[attr-defined]
        if self.reached is None and test_accuracy(pl_module, dm, pl_module.device) >= self.target:
            self.reached = self.elapsed


def cnnbench_fit(
    args: argparse.Namespace,
    batch: int,
    epochs: int = 1,
    callback: L.Callback | None = None,
    profile: bool = False,
    bare: bool = False,
    seed: int = 0,
    train_step: str = "auto",
) -> L.Trainer:
    """A cnnbench fit as the CLI runs it: its callbacks, CSV logging, progress bar. With
    ``bare``, Lightning alone (no logger, callbacks, progress bar or checkpoints): the floor."""
    dm = make_data(args, batch)
    torch.manual_seed(seed)
    model = build_model(args, dm)
    with tempfile.TemporaryDirectory() as run_dir:
        extras = trainer_extras(run_dir, args.model, 0, train_step=train_step)
        if bare:
            extras = {
                "logger": False,
                "callbacks": [CapturedStep(train_step)],
                "enable_checkpointing": False,
                "enable_progress_bar": False,
            }
        if callback is not None:
            extras["callbacks"].append(callback)
        if profile:
            extras["profiler"] = SimpleProfiler(dirpath=run_dir, filename="profile")  # its full report: a file
        trainer = L.Trainer(
            max_epochs=epochs,
            accelerator=args.device,
            devices=1,
            precision=args.precision_now,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            enable_model_summary=False,
            **extras,
        )
        trainer.fit(model, dm)
    if profile:
        print_step_costs(extras["profiler"], trainer.global_step)
    return trainer


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
    parser.add_argument("--chunk", type=int, default=25, help="steps of each loop between switches")
    parser.add_argument("--images", type=int, default=50_000, help="synthetic data size")
    parser.add_argument(
        "--time-to-accuracy", type=float, default=None, help="also time both loops to this test accuracy"
    )
    parser.add_argument("--epochs", type=int, default=8, help="epochs for --time-to-accuracy")
    parser.add_argument("--tta-rounds", type=int, default=3, help="alternating rounds of --time-to-accuracy")
    parser.add_argument(
        "--floor", action="store_true", help="also measure a bare Lightning Trainer (no callbacks/logger): the floor"
    )
    parser.add_argument("--profile", action="store_true", help="print per-step hook costs (one extra epoch)")
    parser.add_argument(
        "--train-step",
        nargs="+",
        default=["auto"],
        choices=["auto", "graph", "eager"],
        help="cnnbench step modes to time",
    )
    args = parser.parse_args()
    name = torch.cuda.get_device_name(0) if args.device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"{args.model} on {args.data}, {name}; {args.rounds} rounds, loops alternating every {args.chunk} steps")
    for precision in args.precision if args.rounds > 0 else []:  # --rounds 0: time to accuracy only
        args.precision_now = precision
        for batch, mode in ((b, m) for b in args.batch_sizes for m in args.train_step):
            ratios: dict[str, list[float]] = {"median step": [], "mean (all steps)": [], "bare Lightning": []}
            rates: dict[str, list[float]] = {"hand": [], "cnnbench": []}
            for _ in range(args.rounds):
                interleave = Interleave(HandLoop(args, batch), chunk=args.chunk)
                cnnbench_fit(args, batch, callback=interleave, train_step=mode)
                hand_median, hand_mean = steady(interleave.hand_times, batch)
                ours_median, ours_mean = steady(interleave.lightning_times, batch)
                ratios["median step"].append(ours_median / hand_median)
                ratios["mean (all steps)"].append(ours_mean / hand_mean)
                rates["hand"].append(hand_median)
                rates["cnnbench"].append(ours_median)
                if args.floor:
                    interleave = Interleave(HandLoop(args, batch), chunk=args.chunk)
                    cnnbench_fit(args, batch, callback=interleave, bare=True)
                    bare_median, _ = steady(interleave.lightning_times, batch)
                    ratios["bare Lightning"].append(bare_median / steady(interleave.hand_times, batch)[0])
            hand = statistics.median(rates["hand"])
            print(
                f"{precision:11s} batch {batch:4d} step {mode:5s}: hand {hand:9,.0f} img/s | cnnbench {statistics.median(rates['cnnbench']):9,.0f} img/s (medians of median steps)"
            )
            for label, values in ratios.items():
                if not values:
                    continue
                ratio = statistics.median(values)
                overhead_us = (1 / ratio - 1) / hand * batch * 1e6
                print(
                    f"    ratio by {label:16s} {ratio:.3f} (rounds: {' '.join(f'{r:.2f}' for r in values)}) | overhead {overhead_us:+.0f} us/step"
                )
            if args.profile:
                cnnbench_fit(args, batch, profile=True)
    if args.time_to_accuracy:
        args.precision_now = args.precision[0]
        batch = args.batch_sizes[0]
        fmt = lambda t: "not reached" if t is None else f"{t:.1f} s"  # noqa: E731
        tta_ratios: list[float] = []
        for seed in range(args.tta_rounds):  # same weights and sample order in both loops of a round
            hand_t = hand_time_to_accuracy(args, batch, args.epochs, args.time_to_accuracy, seed)
            tta = _TimeToAccuracy(args.time_to_accuracy)
            cnnbench_fit(args, batch, args.epochs, callback=tta, seed=seed)
            ours_t = tta.reached
            print(
                f"time to {args.time_to_accuracy:.1%} test accuracy ({args.epochs} epochs max, batch {batch}): "
                f"hand {fmt(hand_t)} | cnnbench {fmt(ours_t)}"
                + (f" | ratio {ours_t / hand_t:.3f}" if hand_t and ours_t else "")
            )
            if hand_t and ours_t:
                tta_ratios.append(ours_t / hand_t)
            elif hand_t or ours_t:  # one reached it, the other not: the worst (or best) ratio
                tta_ratios.append(float("inf") if hand_t else 0.0)
        if tta_ratios:  # rounds where neither loop reached the target say nothing
            print(
                f"time to {args.time_to_accuracy:.1%}: median ratio over {len(tta_ratios)} rounds {statistics.median(tta_ratios):.3f}"
            )


if __name__ == "__main__":
    main()
