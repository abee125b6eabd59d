"""``cnnbench predict``: classify image files with a trained checkpoint.

Each file is read, checked and preprocessed exactly as the training data was (channels,
size, normalization stored in the checkpoint); a file that cannot be used gets its own
error line and the others are still predicted. An image much brighter or darker than
the training images (an inverted digit, a blank page) gets a warning: the model has never
seen such input and its confidence means little.

Example:
    $ cnnbench predict --ckpt_path runs/lenet5/version_0/checkpoints/last.ckpt digit.png more_digits/
    file       class  prob
    digit.png  7      0.9987
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnnbench.core.images import convert_mode, image_channels

if TYPE_CHECKING:
    import torch

# torch, PIL and the model code are imported after parsing: `predict --help` starts at once
MAX_PIXELS = 40_000_000  # larger files are refused before decoding (decompression bombs)
#: warn when an image's mean pixel is this many training standard deviations from the training mean
BRIGHTNESS_TOLERANCE = 1.5
FORMATS = ("table", "csv", "json")


class ImageInputError(ValueError):
    """One input file cannot be classified by this model."""


def expand_inputs(paths: list[str]) -> list[Path]:
    """Files as given, and the image files inside any folder (sorted); a folder holding no
    image file is kept as itself, for its own error line."""
    from cnnbench.data.imagefolder import IMAGE_SUFFIXES

    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES) or [p]
        else:
            out.append(p)
    return out


def load_image(path: Path, data_state: dict[str, Any], convert: bool) -> torch.Tensor:
    """A normalized (C, H, W) float tensor for ``path``, or an :class:`ImageInputError`."""
    return read_image(path, data_state, convert)[0]


def brightness_warning(brightness: float, data_state: dict[str, Any]) -> str | None:
    """A warning when an image's mean pixel (0..1) is far from the training images'.

    Example:
        >>> brightness_warning(0.87, {"mean": [0.1307], "std": [0.3081]})[:38]
        'mean brightness 0.87 is far from the t'
        >>> brightness_warning(0.15, {"mean": [0.1307], "std": [0.3081]}) is None
        True
    """
    means, stds = data_state.get("mean") or [], data_state.get("std") or []
    if not means or not stds:
        return None
    mean, std = sum(means) / len(means), sum(stds) / len(stds)
    if abs(brightness - mean) <= BRIGHTNESS_TOLERANCE * std:
        return None
    hint = "inverted colours?" if (brightness > mean) != (mean > 0.5) else "a very dark or bright image?"
    return (
        f"mean brightness {brightness:.2f} is far from the training images' {mean:.2f} ({hint}); "
        "the prediction may be unreliable"
    )


def read_image(path: Path, data_state: dict[str, Any], convert: bool) -> tuple[torch.Tensor, float]:
    """``(tensor, brightness)``: the normalized (C, H, W) input and the image's mean pixel
    in 0..1 (at the training images' own size, before any padding to the model's input)."""
    import torch
    from PIL import Image, UnidentifiedImageError

    channels, height, width = data_state["image_shape"]
    if not path.is_file():
        raise ImageInputError("no such file")
    try:
        with Image.open(path) as opened:
            img: Image.Image = opened
            if img.width * img.height > MAX_PIXELS:
                raise ImageInputError(f"image is too large ({img.width}×{img.height} > {MAX_PIXELS:,} pixels)")
            has = image_channels(img.mode)
            if has != channels and not convert:
                kind = {1: "greyscale", 3: "colour"}
                raise ImageInputError(
                    f"{kind[has]} image ({has} channel{'s' * (has > 1)}) but the model expects {kind[channels]} "
                    f"({channels} channel{'s' * (channels > 1)}); pass --convert to convert it"
                )
            img = img.convert(convert_mode(channels))
            import numpy as np

            brightness: float | None = None
            source = data_state.get("source_size")
            if source and img.size != (width, height):
                # digits: scale to the original field, then pad to the model's input like training;
                # the training mean is that of the unpadded field
                img = img.resize((source, source), Image.Resampling.BILINEAR)
                brightness = float(np.asarray(img, dtype=np.float32).mean()) / 255.0
                canvas = Image.new(img.mode, (width, height))
                canvas.paste(img, ((width - source) // 2, (height - source) // 2))
                img = canvas
            elif img.size != (width, height):
                img = img.resize((width, height), Image.Resampling.BILINEAR)
            arr = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy())
            if brightness is None:
                brightness = float(arr.float().mean()) / 255.0
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as err:
        raise ImageInputError(f"not a readable image ({type(err).__name__})") from None
    x = arr[None].float() if arr.ndim == 2 else arr.permute(2, 0, 1).float()
    mean = torch.tensor(data_state["mean"])[:, None, None]
    std = torch.tensor(data_state["std"])[:, None, None]
    return (x / 255.0 - mean) / std, brightness


def build_parser() -> argparse.ArgumentParser:
    """The ``cnnbench predict`` argument parser (no heavy imports)."""
    parser = argparse.ArgumentParser(
        prog="cnnbench predict",
        description="Classify image files with a cnnbench checkpoint. Images are converted, resized and "
        "normalized as the training data was; folders are searched for image files.",
        allow_abbrev=False,
    )
    parser.add_argument(
        "--ckpt_path", required=True, help="checkpoint written by `cnnbench fit` (last.ckpt or best-*.ckpt)"
    )
    parser.add_argument(
        "--top_k", type=int, default=1, help="classes printed per image, most likely first (default: 1)"
    )
    parser.add_argument("--convert", action="store_true", help="convert greyscale↔colour to what the model expects")
    parser.add_argument(
        "--device", default="cpu", help="torch device to run the model on: cpu, cuda, cuda:1, mps (default: cpu)"
    )
    parser.add_argument("--batch_size", type=int, default=256, help="images classified per forward pass (default: 256)")
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="table",
        help="output: an aligned table, CSV or JSON; table and CSV start with a header (default: table)",
    )
    parser.add_argument("inputs", nargs="+", help="image files or folders")
    return parser


def _rows(results: list[tuple[Path, list[tuple[str, float]]]], top_k: int) -> tuple[list[str], list[list[str]]]:
    head = ["file"] + [
        c for k in range(top_k) for c in ((f"class_{k + 1}", f"prob_{k + 1}") if top_k > 1 else ("class", "prob"))
    ]
    rows = [[str(path)] + [c for cls, p in top for c in (cls, f"{p:.4f}")] for path, top in results]
    return head, rows


def write_results(results: list[tuple[Path, list[tuple[str, float]]]], top_k: int, fmt: str, out: Any = None) -> None:
    """Print predictions as ``table``, ``csv`` (both with a header) or ``json``."""
    out = out or sys.stdout
    if fmt == "json":
        import json

        items = [{"file": str(p), "top": [{"class": c, "prob": round(v, 6)} for c, v in top]} for p, top in results]
        out.write(json.dumps(items, indent=1, ensure_ascii=False) + "\n")
        return
    head, rows = _rows(results, top_k)
    if fmt == "csv":
        import csv

        writer = csv.writer(out, lineterminator="\n")
        writer.writerows([head, *rows])
        return
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for row in [head, *rows]:
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() + "\n")


def _model_and_data(path: str, device: str) -> tuple[Any, dict[str, Any]]:
    """The checkpoint's model (in eval mode, on ``device``) and its data statistics.

    The file is checked and read once (:func:`cnnbench.checkpoint.read_checkpoint`) and the
    model is rebuilt from what was read, as :func:`cnnbench.checkpoint.load_from_checkpoint` does.
    """
    from cnnbench.checkpoint import CheckpointError, checkpoint_info, model_from_checkpoint, read_checkpoint

    stored = read_checkpoint(path)
    data_state = checkpoint_info(stored).get("data_state")
    if not data_state:
        raise CheckpointError(f"{path} has no data statistics (written by an older cnnbench?)")
    return model_from_checkpoint(stored, path).to(device).eval(), data_state


def _prepare_inputs(inputs: list[str], data_state: dict[str, Any], convert: bool) -> tuple[list[Any], int]:
    """``([(path, tensor), ...], failures)``: every usable input, an error line for each other one."""
    from cnnbench.data.imagefolder import IMAGE_SUFFIXES

    failures = 0
    ready: list[tuple[Path, torch.Tensor]] = []
    for path in expand_inputs(inputs):
        if path.is_dir():
            print(
                f"{path}: error: no image files in this folder ({', '.join(sorted(IMAGE_SUFFIXES))})", file=sys.stderr
            )
            failures += 1
            continue
        try:
            x, brightness = read_image(path, data_state, convert)
        except ImageInputError as err:
            print(f"{path}: error: {err}", file=sys.stderr)
            failures += 1
            continue
        warning = brightness_warning(brightness, data_state)
        if warning:
            print(f"{path}: warning: {warning}", file=sys.stderr)
        ready.append((path, x))
    return ready, failures


def _classify(
    model: Any, ready: list[tuple[Path, torch.Tensor]], classes: list[Any], args: argparse.Namespace
) -> list[tuple[Path, list[tuple[str, float]]]]:
    """The ``top_k`` classes and probabilities of each input, ``batch_size`` inputs per forward pass."""
    import torch

    results: list[tuple[Path, list[tuple[str, float]]]] = []
    for start in range(0, len(ready), args.batch_size):
        chunk = ready[start : start + args.batch_size]
        with torch.no_grad():
            probs = model(torch.stack([x for _, x in chunk]).to(args.device)).softmax(-1).cpu()
        for (path, _), p in zip(chunk, probs):
            top = p.topk(min(args.top_k, len(p)))
            results.append((path, [(str(classes[int(i)]), float(v)) for v, i in zip(top.values, top.indices)]))
    return results


def run(argv: list[str]) -> int:
    """``cnnbench predict --ckpt_path CKPT [--top_k K] [--convert] [--device D] [--format F] FILES/FOLDERS...``.

    Returns 1 when an input could not be classified (the others are still printed).
    """
    args = build_parser().parse_args(argv)
    if args.top_k < 1 or args.batch_size < 1:
        bad = "--top_k" if args.top_k < 1 else "--batch_size"
        raise ValueError(f"{bad} must be a positive integer, got {getattr(args, bad[2:])}")
    model, data_state = _model_and_data(args.ckpt_path, args.device)
    classes = data_state["classes"]
    ready, failures = _prepare_inputs(args.inputs, data_state, args.convert)
    results = _classify(model, ready, classes, args)
    if results or not failures:  # nothing but errors: no empty table
        write_results(results, min(args.top_k, len(classes)), args.format)
    return 1 if failures else 0
