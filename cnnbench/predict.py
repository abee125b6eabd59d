"""``cnnbench predict``: classify image files with a trained checkpoint.

Each file is read, checked and preprocessed exactly as the training data was (channels,
size, normalization stored in the checkpoint); a file that cannot be used gets its own
error line and the others are still predicted.

Example:
    $ cnnbench predict --ckpt_path runs/lenet5/version_0/checkpoints/last.ckpt digit.png more_digits/
    digit.png	7	0.9987
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

from cnnbench.data.imagefolder import IMAGE_SUFFIXES

MAX_PIXELS = 40_000_000  # larger files are refused before decoding (decompression bombs)


class ImageInputError(ValueError):
    """One input file cannot be classified by this model."""


def expand_inputs(paths: list[str]) -> list[Path]:
    """Files as given, and the image files inside any folder (sorted)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
        else:
            out.append(p)
    return out


def load_image(path: Path, data_state: dict[str, Any], convert: bool) -> torch.Tensor:
    """A normalized (C, H, W) float tensor for ``path``, or an :class:`ImageInputError`."""
    from PIL import Image, UnidentifiedImageError

    channels, height, width = data_state["image_shape"]
    if not path.is_file():
        raise ImageInputError("no such file")
    try:
        with Image.open(path) as opened:
            img: Image.Image = opened
            if img.width * img.height > MAX_PIXELS:
                raise ImageInputError(f"image is too large ({img.width}×{img.height} > {MAX_PIXELS:,} pixels)")
            has = 1 if img.mode in ("L", "1", "I", "I;16", "F", "LA") else 3
            if has != channels and not convert:
                kind = {1: "greyscale", 3: "colour"}
                raise ImageInputError(
                    f"{kind[has]} image ({has} channel{'s' * (has > 1)}) but the model expects {kind[channels]} "
                    f"({channels} channel{'s' * (channels > 1)}); pass --convert to convert it"
                )
            img = img.convert("L" if channels == 1 else "RGB")
            source = data_state.get("source_size")
            if source and img.size != (width, height):
                # digits: scale to the original field, then pad to the model's input like training
                img = img.resize((source, source), Image.Resampling.BILINEAR)
                canvas = Image.new(img.mode, (width, height))
                canvas.paste(img, ((width - source) // 2, (height - source) // 2))
                img = canvas
            elif img.size != (width, height):
                img = img.resize((width, height), Image.Resampling.BILINEAR)
            import numpy as np

            arr = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy())
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as err:
        raise ImageInputError(f"not a readable image ({type(err).__name__})") from None
    x = arr[None].float() if arr.ndim == 2 else arr.permute(2, 0, 1).float()
    mean = torch.tensor(data_state["mean"])[:, None, None]
    std = torch.tensor(data_state["std"])[:, None, None]
    return (x / 255.0 - mean) / std


def main(argv: list[str]) -> int:
    """``cnnbench predict --ckpt_path CKPT [--top_k K] [--convert] [--device D] FILES/FOLDERS...``."""
    from cnnbench.checkpoint import CheckpointError, checkpoint_info, load_from_checkpoint, read_checkpoint

    parser = argparse.ArgumentParser(prog="cnnbench predict", description="Classify image files with a checkpoint.")
    parser.add_argument("--ckpt_path", required=True, help="a cnnbench checkpoint")
    parser.add_argument("--top_k", type=int, default=1, help="classes printed per image")
    parser.add_argument("--convert", action="store_true", help="convert greyscale↔colour to what the model expects")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("inputs", nargs="+", help="image files or folders")
    args = parser.parse_args(argv)

    info = checkpoint_info(read_checkpoint(args.ckpt_path))
    data_state = info.get("data_state")
    if not data_state:
        raise CheckpointError(f"{args.ckpt_path} has no data statistics (written by an older cnnbench?)")
    model = load_from_checkpoint(args.ckpt_path, map_location=args.device).eval()
    classes = data_state["classes"]

    failures = 0
    ready: list[tuple[Path, torch.Tensor]] = []
    for path in expand_inputs(args.inputs):
        try:
            ready.append((path, load_image(path, data_state, args.convert)))
        except ImageInputError as err:
            print(f"{path}: error: {err}", file=sys.stderr)
            failures += 1
    for start in range(0, len(ready), args.batch_size):
        chunk = ready[start : start + args.batch_size]
        with torch.no_grad():
            probs = model(torch.stack([x for _, x in chunk]).to(args.device)).softmax(-1).cpu()
        for (path, _), p in zip(chunk, probs):
            top = p.topk(min(args.top_k, len(p)))
            print(
                "\t".join([str(path), *(f"{classes[int(i)]}\t{float(v):.4f}" for v, i in zip(top.values, top.indices))])
            )
    return 1 if failures else 0
