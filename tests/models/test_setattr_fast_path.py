"""``ImageClassifier.__setattr__`` stores plain values directly (for speed); parameters and modules
must still register as torch registers them."""

from __future__ import annotations

import torch
from torch import nn

from cnnbench.models import create_model


def test_plain_attribute_fast_path_still_registers_parameters_and_modules() -> None:
    model = create_model("lenet5")
    model.note = "a"
    model.note = 3  # a plain value over a plain attribute: stored directly
    assert model.note == 3 and "note" not in dict(model.named_parameters())
    model.note = nn.Parameter(torch.zeros(2))  # still becomes a parameter
    assert "note" in dict(model.named_parameters()) and "note" not in model.__dict__
    model.extra = 1
    model.extra = nn.Linear(1, 1)  # and a module a submodule
    assert "extra" in dict(model.named_children())
