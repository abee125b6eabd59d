"""The one-line error for a batch a model cannot take: wrong rank, channels or size.

:meth:`ImageClassifier.check_input <cnnbench.models.base.ImageClassifier.check_input>` calls
:func:`check_new_input` for each input shape it has not seen yet, so a 28×28 digit given to
LeNet-5 is named as such, not as torch's matrix-size mismatch three layers later, and says how
to fix it (convert, pad or resize the images, or build the model for them).

Example:
    >>> import torch
    >>> from cnnbench.models import create_model
    >>> try:
    ...     check_new_input(create_model("lenet5"), torch.zeros(1, 32, 32), set())
    ... except InputShapeError as err:
    ...     print(err)
    lenet5 expects a batch of images (N, 1, 32, 32), got a tensor of shape (1, 32, 32); add the batch dimension with x.unsqueeze(0)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from cnnbench.models.geometry import GeometryError, InputShapeError, format_shape, infer_shapes
from cnnbench.models.registry import MODELS

if TYPE_CHECKING:
    from cnnbench.models.base import ImageClassifier

Shape = tuple[int, int, int]


def check_new_input(model: ImageClassifier, x: torch.Tensor, accepted: set[Shape]) -> set[Shape]:
    """``accepted`` plus the (C, H, W) of ``x`` if ``model`` takes it, else a one-line :class:`InputShapeError`.

    ``accepted``: the shapes already checked (empty: only the shape the model was built for is known).
    """
    name = MODELS.name_of(model) or type(model).__name__
    expected = model.input_shape
    accepted = accepted or {expected}
    if x.ndim != 4:
        hint = "; add the batch dimension with x.unsqueeze(0)" if x.ndim == 3 else ""
        raise InputShapeError(
            f"{name} expects a batch of images (N, {', '.join(map(str, expected))}), "
            f"got a tensor of shape {tuple(x.shape)}{hint}"
        )
    given = (int(x.shape[1]), int(x.shape[2]), int(x.shape[3]))
    problem = _problem(model, given, expected)
    if problem:
        # a failed geometry check says which layer runs out of pixels
        detail = "" if problem.startswith("wrong ") else f" ({problem.rstrip('.')})"
        raise InputShapeError(
            f"{name} expects {format_shape(expected)} images, got {format_shape(given)}{detail}; "
            + "; ".join(_fixes(model, given, expected))
        )
    return accepted | {given}


def _problem(model: ImageClassifier, given: Shape, expected: Shape) -> str:
    """What is wrong with images of shape ``given`` (``""``: nothing)."""
    if given[0] != expected[0]:
        return "wrong number of channels"
    if model.flexible_input and hasattr(model, "features"):
        try:
            infer_shapes(model.features, given)  # type: ignore[arg-type]
        except GeometryError as err:
            return str(err)
        return ""
    return "wrong size" if given != expected else ""


def _fixes(model: ImageClassifier, given: Shape, expected: Shape) -> list[str]:
    """How to give ``model`` images it takes, one clause per fix."""
    fixes = []
    if given[0] != expected[0]:
        fixes.append(f"convert them to {expected[0]} channel(s) or build the model with in_channels={given[0]}")
    if given[1:] == expected[1:]:
        return fixes
    if model.input_hint and min(given[1:]) <= 64:
        fixes.append(model.input_hint)  # small images: the variant built for them, or resizing
    elif model.flexible_input:
        fixes.append(f"resize them, e.g. to {expected[1]}×{expected[2]} (data modules: image_size={expected[1]})")
    else:
        size = given[1] if given[1] == given[2] else given[1:]
        fixes.append(
            f"pad or resize them to {expected[1]}×{expected[2]} (data modules: image_size={expected[1]}) "
            f"or build the model with input_size={size}"
        )
    return fixes
