"""A resumable, rank-sharded batch loader over tensors held in memory (or on the GPU).

Indexing one uint8 tensor with a batch of indices replaces per-sample ``__getitem__``,
PIL decoding and collation: the loop that dominates LeNet training on a small CPU.

Example:
    >>> import torch
    >>> loader = TensorBatchLoader(torch.zeros(10, 1, 4, 4, dtype=torch.uint8), torch.arange(10), batch_size=4)
    >>> [len(y) for _, y in loader]
    [4, 4, 2]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
import torch.distributed as dist

from cnnbench.data.augment import batch_seed, to_device


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) of the current process group, (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class TensorBatchLoader:
    """Batches of ``(images, labels)`` (plus a per-batch augmentation seed when training).

    Args:
        images: uint8 tensor (N, C, H, W).
        labels: int64 tensor (N,).
        batch_size: Batch size per process.
        shuffle: Reshuffle every epoch with a permutation seeded by (seed, epoch).
        drop_last: Drop a last incomplete batch (training only).
        seed: Base seed for shuffling and augmentation.
        with_seed: Yield ``(images, labels, seed)`` so the batch can be augmented.
        epoch_fn: Returns the current epoch (the trainer's); defaults to counting passes.
        position_fn: Returns how many batches of the current epoch the trainer finished,
            used by :meth:`state_dict` for mid-epoch resume.

    Under ``torch.distributed`` each rank takes an equal, disjoint shard of every epoch's
    permutation (training) or a disjoint stride of the data (evaluation).
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        with_seed: bool = False,
        epoch_fn: Callable[[], int] | None = None,
        position_fn: Callable[[], int] | None = None,
    ) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size must be > 0, got {batch_size}")
        self.images, self.labels = images, labels
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.seed, self.with_seed = seed, with_seed
        self.epoch_fn, self.position_fn = epoch_fn, position_fn
        self._passes, self._epoch, self._yielded = 0, 0, 0
        self._resume: dict[str, int] | None = None

    def indices(self, epoch: int) -> torch.Tensor:
        """The sample order of ``epoch`` on this rank (a function of seed, epoch and rank only)."""
        n = len(self.labels)
        rank, world = rank_and_world()
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            order = torch.randperm(n, generator=gen)
            return order[: n // world * world][rank::world]  # equal shards: DDP steps in lockstep
        return torch.arange(rank, n, world)

    def __len__(self) -> int:
        rank, world = rank_and_world()
        per_rank = len(self.labels) // world if self.shuffle else len(range(rank, len(self.labels), world))
        return per_rank // self.batch_size if self.drop_last else -(-per_rank // self.batch_size)

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        epoch = self.epoch_fn() if self.epoch_fn is not None else self._passes
        self._passes += 1
        order = to_device(self.indices(epoch), self.images.device)
        skip = 0
        if self._resume is not None and self._resume["epoch"] == epoch:
            skip = self._resume["consumed"]
        self._resume = None
        self._epoch, self._yielded = epoch, skip
        rank = rank_and_world()[0]
        for i in range(skip, len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            self._yielded = i + 1
            # index_select copies whole rows; images[idx] goes element by element (~30x slower)
            batch = (self.images.index_select(0, idx), self.labels.index_select(0, idx))
            yield (*batch, batch_seed(self.seed, epoch, i, rank)) if self.with_seed else batch

    # Lightning saves/restores these with the fit loop (mid-epoch resume)
    def state_dict(self) -> dict[str, int]:
        consumed = self.position_fn() if self.position_fn is not None else self._yielded
        return {"epoch": self._epoch, "consumed": int(consumed)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._resume = dict(state)


class ModelInputLoader:
    """A data module's loader for plain PyTorch loops: ``(images, labels)`` as the model sees them.

    Wraps the raw loader (uint8 batches, maybe with an augmentation seed), moves each
    batch to ``device`` and applies the data module's batch transform there (augment,
    normalize, resize): the work Lightning's ``on_after_batch_transfer`` does in a fit.
    Everything else (``len``, ``indices``, ``dataset``, ``state_dict``) is the raw loader's.

    Example:
        >>> import torch
        >>> raw = TensorBatchLoader(torch.zeros(6, 1, 2, 2, dtype=torch.uint8), torch.arange(6), batch_size=4)
        >>> loader = ModelInputLoader(raw, lambda b: (b[0].float() / 255, b[1]), torch.device("cpu"))
        >>> [tuple(x.shape) for x, _ in loader], len(loader)
        ([(4, 1, 2, 2), (2, 1, 2, 2)], 2)
    """

    def __init__(
        self, loader: Iterable[Any], transform: Callable[[Any], Any], device: torch.device | str = "cpu"
    ) -> None:
        self.loader, self.transform, self.device = loader, transform, torch.device(device)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        non_blocking = self.device.type not in ("cpu", "mps")
        for batch in self.loader:
            moved = [t.to(self.device, non_blocking=non_blocking) if isinstance(t, torch.Tensor) else t for t in batch]
            x, y = self.transform(tuple(moved))[:2]
            yield x, y

    def __len__(self) -> int:
        return len(self.loader)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> Any:
        if name == "loader":  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.loader, name)
