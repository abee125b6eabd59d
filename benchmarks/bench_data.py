"""Images/second delivered to the training loop: tensor path vs torchvision's per-sample path.

Both paths apply the standard augmentation and normalization; both at batch size 128.
They run alternately in one process (``--rounds`` times each) and the medians are
compared. LeNet-5's own training speed on the same machine is measured too, to check that
data is never what the trainer waits on.

    python benchmarks/bench_data.py --mnist ../shared/data --cifar-folder /tmp/cifar10-jpeg
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import torch

from cnnbench.data import ImageFolderDataModule, MNISTDataModule
from cnnbench.models import create_model


def images_per_second(dm: Any, batches: int) -> float:
    """Iterate the training loader as a plain loop does and count images/s.

    Outside a Trainer the loader yields batches ready for the model (augmented,
    normalized): the same work as the raw loader plus ``on_after_batch_transfer`` in a fit.
    """
    loader = dm.train_dataloader()
    it = iter(loader)
    next(it)  # warm-up: workers start, caches fill
    seen, start = 0, time.perf_counter()
    for _ in range(batches):
        try:
            x, _ = next(it)
        except StopIteration:
            it = iter(loader)
            x, _ = next(it)
        seen += len(x)
    return seen / (time.perf_counter() - start)


def lenet_training_images_per_second(shape: tuple[int, int, int], steps: int = 60, batch: int = 128) -> float:
    model = create_model("lenet5", in_channels=shape[0], input_size=shape[1])
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.randn(batch, *shape), torch.randint(0, 10, (batch,))
    for i in range(steps + 10):
        if i == 10:
            start = time.perf_counter()
        loss = model.loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return steps * batch / (time.perf_counter() - start)


def compare(name: str, make: Any, batches: int, rounds: int) -> dict[str, float]:
    tensor_dm, classic_dm = make("tensor"), make("torchvision")
    tensor_dm.setup()
    classic_dm.setup()
    rates: dict[str, list[float]] = {"tensor": [], "torchvision": []}
    for _ in range(rounds):
        rates["torchvision"].append(images_per_second(classic_dm, batches))
        rates["tensor"].append(images_per_second(tensor_dm, batches * 4))
    tensor, classic = statistics.median(rates["tensor"]), statistics.median(rates["torchvision"])
    lenet = lenet_training_images_per_second(tensor_dm.image_shape)
    print(
        f"{name:9s} tensor {tensor:10,.0f} img/s | torchvision {classic:8,.0f} img/s | ratio {tensor / classic:5.1f}x | "
        f"LeNet-5 trains at {lenet:7,.0f} img/s -> data/consumption {tensor / lenet:5.1f}x"
    )
    return {"tensor": tensor, "torchvision": classic, "lenet": lenet}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mnist", default="../shared/data", help="root holding MNIST/raw")
    parser.add_argument(
        "--cifar-folder", default=None, help="CIFAR-10 as train/<class>/ and test/<class>/ image folders"
    )
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the torchvision path")
    args = parser.parse_args()
    print(
        f"torch threads: {torch.get_num_threads()}, batch size 128, standard augmentation, median of {args.rounds} rounds"
    )
    common = {"batch_size": 128, "augment": "standard", "num_workers": args.workers, "download": False}
    compare(
        "MNIST", lambda loader: MNISTDataModule(root=args.mnist, loader=loader, **common), args.batches, args.rounds
    )
    if args.cifar_folder:
        compare(
            "CIFAR-10",
            lambda loader: ImageFolderDataModule(root=args.cifar_folder, loader=loader, val_size=5000, **common),
            args.batches,
            args.rounds,
        )


if __name__ == "__main__":
    main()
