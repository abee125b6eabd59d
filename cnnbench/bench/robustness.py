"""Do pooling and padding buy translation robustness? Measured on the test set, batched.

* **Shift consistency** as Zhang (2019, "Making Convolutional Networks Shift-Invariant
  Again") defines it: the probability that two copies of an image, each shifted by an
  independent random offset, get the same top-1 class. Offsets are uniform integers in
  ``[-k, k]`` on both axes (both signs), drawn per image and per copy from a seeded
  generator. Each image gets ``copies`` shifted copies and every pair of them counts
  (``copies·(copies-1)/2`` pairs for ``copies`` forward passes; an unbiased estimate of the
  same probability). Two variants: ``zero`` (uncovered pixels are 0) and ``circular``
  (content wraps around, Zhang's choice for CIFAR; on MNIST's empty border it equals zero
  fill, so the MNIST study grids measure zero fill only). Reported per ``k`` and split at
  the network's total stride (:func:`stride_columns`): below it a shift falls between the
  samples of the last feature map, where the pooling operator can matter; from it on the
  head sees whole-pixel moves.
* **Accuracy under shift**: the accuracy of those same shifted copies, per ``k``.
* **Large-translation probe** (formerly "edge probe"): each image moved until the bounding
  box of its nonzero pixels touches an edge or a corner (8 directions; 8.8 px on MNIST on
  average). Nothing leaves the frame (the lost-ink fraction, 0, is recorded). On MNIST it
  measures tolerance to a large translation, not border information: for that, train and
  test on :mod:`cnnbench.data.border` and read :func:`border_metrics`.
* **Border metrics** (data with strata, e.g. ``mnist_border``): accuracy on the centred and
  the border images, their difference (the border penalty), and the border accuracy with
  the outer 1 and 2 pixels set to background.

Example:
    >>> import torch
    >>> x = torch.arange(9.0).reshape(1, 1, 3, 3)
    >>> shift_each(x, torch.tensor([1]), torch.tensor([0]), "zero")[0, 0].tolist()
    [[0.0, 0.0, 0.0], [0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from cnnbench.data.border import EDGE_DIRECTIONS, FILLS, STRATA, edge_offsets, shift_each

__all__ = [
    "EDGE_DIRECTIONS",
    "FILLS",
    "blank_border",
    "border_metrics",
    "edge_offsets",
    "edge_probe",
    "evaluate_robustness",
    "random_offsets",
    "shift_each",
    "stride_columns",
    "translation_probe",
]


def random_offsets(n: int, k: int, copies: int, seed: int) -> torch.Tensor:
    """Offsets ``(copies, n, 2)`` (dy, dx), independent uniform integers in ``[-k, k]``.

    Example:
        >>> o = random_offsets(1000, 2, 3, seed=0)
        >>> o.shape, int(o.min()), int(o.max())
        (torch.Size([3, 1000, 2]), -2, 2)
    """
    gen = torch.Generator().manual_seed(int(seed) * 1009 + int(k))  # a different stream per k
    return torch.randint(-k, k + 1, (copies, n, 2), generator=gen)


def _predict(
    model: torch.nn.Module, x: torch.Tensor, normalize: Callable[[torch.Tensor], torch.Tensor], batch_size: int
) -> torch.Tensor:
    return torch.cat([model(normalize(x[i : i + batch_size])).argmax(-1) for i in range(0, len(x), batch_size)])


@torch.no_grad()
def evaluate_robustness(
    model: torch.nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    normalize: Callable[[torch.Tensor], torch.Tensor],
    shifts: list[int],
    fills: tuple[str, ...] | list[str] = FILLS,
    copies: int = 4,
    seed: int = 0,
    edge: bool = True,
    batch_size: int = 4096,
    strata: torch.Tensor | None = None,
    stride: int | None = None,
) -> dict[str, Any]:
    """Shift consistency, accuracy under shift, the large-translation probe and border metrics.

    Args:
        model: A classifier; evaluated in eval mode on its own device (mode restored).
        images, labels: Pixels 0-255 (N, C, H, W), uint8 or float, any device; classes (N,).
        normalize: Pixels → model input (the data module's ``normalize``).
        shifts: Largest offsets ``k`` to measure (pixels, each axis); may be empty.
        fills: ``zero`` and/or ``circular``.
        copies: Shifted copies per image and ``k`` (≥ 2); all their pairs count.
        seed: Seed of the offsets (the same images get the same offsets in every cell).
        edge, batch_size: Run the large-translation probe (:func:`translation_probe`); images per forward pass.
        strata: Stratum codes (0 centred, 1-8 border; ``data.border.STRATA``): adds :func:`border_metrics`.
        stride: The network's total stride: adds the below/from-stride consistency columns.

    Returns:
        ``{"acc", "definition", "copies", "pairs", "seed", "images", "shift": {fill: {"consistency": {k: p},
        "acc": {k: a}}}, "translation", "border", "columns"}``; ``columns``: the scalars for ``results.csv``.

    Example:
        >>> import torch
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
        >>> x, y = torch.randint(0, 256, (50, 1, 8, 8)).float(), torch.randint(0, 3, (50,))
        >>> r = evaluate_robustness(model, x, y, lambda t: t / 255, shifts=[1, 2], copies=3, stride=2)
        >>> sorted(r["shift"]), sorted(r["shift"]["zero"]["consistency"]), r["columns"]["total_stride"]
        (['circular', 'zero'], [1, 2], 2)
        >>> sorted(k for k in r["columns"] if k.startswith("consistency_zero"))
        ['consistency_zero_below_stride', 'consistency_zero_from_stride']
    """
    if copies < 2:
        raise ValueError(f"copies must be >= 2 (consistency compares pairs), got {copies}")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    x, y = images.to(device).float(), labels.to(device)
    clean = _predict(model, x, normalize, batch_size)
    result = _clean_result(clean, y, copies, seed)
    for fill in fills:
        result["shift"][fill] = shift_metrics(model, x, y, normalize, shifts, fill, copies, seed, batch_size)
    columns = {} if stride is None else _stride_columns(result, stride)
    if edge:
        columns.update(_translation(model, x, y, normalize, batch_size, result))
    if strata is not None:
        columns.update(_border(model, x, y, strata.to(device), normalize, batch_size, clean, result))
    result["columns"] = columns
    model.train(was_training)
    return result


def _stride_columns(result: dict[str, Any], stride: int) -> dict[str, Any]:
    """Each fill's consistency below and from the network's total stride; the stride into ``result``."""
    columns: dict[str, Any] = {}
    for fill, block in result["shift"].items():
        columns.update(stride_columns(block["consistency"], stride, f"consistency_{fill}"))
    result["stride"] = columns["total_stride"] = stride
    return columns


def _clean_result(clean: torch.Tensor, y: torch.Tensor, copies: int, seed: int) -> dict[str, Any]:
    """The result's head: clean accuracy and how consistency is measured (the shifts follow)."""
    return {
        "acc": float((clean == y).float().mean()) if len(y) else float("nan"),
        "definition": "zhang2019",
        "copies": copies,
        "pairs": copies * (copies - 1) // 2,
        "seed": seed,
        "images": len(y),
        "shift": {},
    }


def _translation(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    normalize: Callable[[torch.Tensor], torch.Tensor],
    batch_size: int,
    result: dict[str, Any],
) -> dict[str, float]:
    """The large-translation probe into ``result["translation"]``; its columns."""
    result["translation"] = translation_probe(model, x, y, normalize, batch_size)
    moved = list(result["translation"]["mean_shift_px"].values())
    return {"translation_acc": result["translation"]["acc_mean"], "translation_shift_px": sum(moved) / len(moved)}


def _border(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    strata: torch.Tensor,
    normalize: Callable[[torch.Tensor], torch.Tensor],
    batch_size: int,
    clean: torch.Tensor,
    result: dict[str, Any],
) -> dict[str, float]:
    """The border-placement metrics into ``result["border"]``; their scalar columns and accuracy per direction."""
    result["border"] = border = border_metrics(model, x, y, strata, normalize, batch_size, clean)
    columns = {k: v for k, v in border.items() if not isinstance(v, dict)}
    columns.update({f"acc_{d}": a for d, a in border["acc_by_stratum"].items() if d != "centred"})
    return columns


def shift_metrics(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    normalize: Callable[[torch.Tensor], torch.Tensor],
    shifts: list[int],
    fill: str,
    copies: int,
    seed: int,
    batch_size: int,
) -> dict[str, dict[int, float]]:
    """Zhang 2019 shift consistency and accuracy under shift for one fill, per largest offset ``k``:
    ``copies`` copies of each image, each shifted by its own random offset in [-k, k]², every pair compared."""
    consistency, accuracy = {}, {}
    n = len(y)
    for k in shifts:
        offsets = random_offsets(n, k, copies, seed)
        preds = torch.stack(
            [_predict(model, shift_each(x, o[:, 0], o[:, 1], fill), normalize, batch_size) for o in offsets]
        )  # (copies, N)
        agree = [(preds[i] == preds[j]).float().mean() for i in range(copies) for j in range(i + 1, copies)]
        consistency[k] = float(torch.stack(agree).mean())
        accuracy[k] = float((preds == y[None]).float().mean())
    return {"consistency": consistency, "acc": accuracy}


def stride_columns(consistency: dict[int, float], stride: int, prefix: str) -> dict[str, float]:
    """Mean consistency over the ``k`` below the network's total stride and over those at or above it.

    Example:
        >>> stride_columns({1: 0.9, 2: 0.8, 4: 0.5, 6: 0.3}, 4, "consistency_zero")
        {'consistency_zero_below_stride': 0.8500000000000001, 'consistency_zero_from_stride': 0.4}
    """
    below = [v for k, v in consistency.items() if int(k) < stride]
    above = [v for k, v in consistency.items() if int(k) >= stride]
    out = {}
    if below:
        out[f"{prefix}_below_stride"] = sum(below) / len(below)
    if above:
        out[f"{prefix}_from_stride"] = sum(above) / len(above)
    return out


def blank_border(images: torch.Tensor, width: int) -> torch.Tensor:
    """``images`` (pixels, background 0) with the outer ``width`` rows and columns set to 0.

    Example:
        >>> blank_border(torch.ones(1, 1, 4, 4), 1)[0, 0].tolist()
        [[0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 1.0, 0.0], [0.0, 1.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]]
    """
    out = images.clone()
    out[..., :width, :] = 0
    out[..., -width:, :] = 0
    out[..., :, :width] = 0
    out[..., :, -width:] = 0
    return out


def border_metrics(
    model: torch.nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    strata: torch.Tensor,
    normalize: Callable[[torch.Tensor], torch.Tensor],
    batch_size: int = 4096,
    clean: torch.Tensor | None = None,
    blanks: tuple[int, ...] = (1, 2),
) -> dict[str, Any]:
    """Accuracy by placement stratum, the border penalty and border accuracy with the frame blanked.

    Args:
        strata: Per-image codes, 0 = centred, 1-8 = flush with an edge/corner.
        clean: The model's predictions on ``images`` when already computed (not recomputed).
        blanks: Widths ``b`` of the outer frame set to background for ``acc_border_blank{b}``.

    Returns:
        ``acc_centred``, ``acc_border`` (all 8 directions), ``border_penalty`` = acc_centred −
        acc_border, ``acc_border_blank{b}`` and ``blank{b}_drop`` = acc_border −
        acc_border_blank{b}, ``blank{b}_lost_ink`` (share of the border images' ink removed),
        ``acc_by_stratum`` and ``n_by_stratum``.
    """
    if clean is None:
        clean = _predict(model, images.float(), normalize, batch_size)
    correct = (clean == labels).float()
    border = strata > 0
    out: dict[str, Any] = {
        "acc_centred": float(correct[~border].mean()),
        "acc_border": float(correct[border].mean()),
    }
    out["border_penalty"] = out["acc_centred"] - out["acc_border"]
    x = images[border].float()
    ink = float(x.double().sum())
    for b in blanks:
        blanked = blank_border(x, b)
        pred = _predict(model, blanked, normalize, batch_size)
        out[f"acc_border_blank{b}"] = float((pred == labels[border]).float().mean())
        out[f"blank{b}_drop"] = out["acc_border"] - out[f"acc_border_blank{b}"]
        out[f"blank{b}_lost_ink"] = (ink - float(blanked.double().sum())) / max(ink, 1e-12)
    out["acc_by_stratum"] = {name: float(correct[strata == code].mean()) for code, name in enumerate(STRATA)}
    out["n_by_stratum"] = {name: int((strata == code).sum()) for code, name in enumerate(STRATA)}
    return out


def translation_probe(
    model: torch.nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    normalize: Callable[[torch.Tensor], torch.Tensor],
    batch_size: int = 4096,
) -> dict[str, Any]:
    """Accuracy with each image's content moved onto each edge and corner, no ink lost.

    A large translation (8.8 px on average on MNIST, more than the network's stride), not a
    test of border information: on MNIST it tracks accuracy under random 6 px shifts.

    Returns:
        ``{"acc": {direction: a}, "acc_mean": a, "lost_ink": f, "mean_shift_px": {direction: px}}``
        where ``lost_ink`` is the fraction of the total pixel mass that left the frame (0).
    """
    x = images.float()
    total = float(x.double().sum())  # pixel values are integers: float64 sums are exact
    acc, moved, lost = {}, {}, 0.0
    for name in EDGE_DIRECTIONS:
        offsets = edge_offsets(x, name)
        shifted = shift_each(x, offsets[:, 0], offsets[:, 1], "zero")
        lost = max(lost, (total - float(shifted.double().sum())) / max(total, 1e-12))
        pred = _predict(model, shifted, normalize, batch_size)
        acc[name] = float((pred == labels).float().mean())
        moved[name] = float(offsets.float().norm(dim=1).mean())
    return {
        "acc": acc,
        "acc_mean": sum(acc.values()) / len(acc),
        "lost_ink": lost,
        "mean_shift_px": moved,
    }


#: the former name of :func:`translation_probe`
edge_probe = translation_probe
