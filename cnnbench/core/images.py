"""The one image-mode rule: which PIL images count as greyscale, and what to convert them to.

An image folder decides its channel count from its first training image with it, and
``cnnbench predict`` checks each input image against the checkpoint's channels with it.

Example:
    >>> image_channels("L"), image_channels("RGBA"), convert_mode(1)
    (1, 3, 'L')
"""

from __future__ import annotations

#: PIL modes holding one channel of intensity (``LA``: with alpha, dropped on conversion)
GREYSCALE_MODES = frozenset({"1", "L", "LA", "I", "I;16", "F"})


def image_channels(mode: str) -> int:
    """1 for a greyscale PIL mode, else 3 (colour, palette and CMYK images are read as RGB)."""
    return 1 if mode in GREYSCALE_MODES else 3


def convert_mode(channels: int) -> str:
    """The PIL mode that gives ``channels`` channels: ``L`` for 1, ``RGB`` for 3."""
    return "L" if channels == 1 else "RGB"
