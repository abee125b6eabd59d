"""The shared helpers of ``cnnbench.core``: one atomic write, one "which arguments", one close match,
and vocabularies that match what the factories build."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from torch import nn

from cnnbench.core.atomic import write_atomic, write_json_atomic
from cnnbench.core.choices import check_choice, did_you_mean
from cnnbench.core.signature import accepted_kwargs
from cnnbench.core.vocab import LINKED_ARGUMENTS, POOL_KINDS, VOCABULARIES


def test_a_failed_write_leaves_the_previous_file_and_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "result.json"
    write_json_atomic(path, {"test_acc": 0.5})
    before = path.read_bytes()

    def half_then_crash(fh: object) -> None:
        fh.write(b'{"test_acc": 0.9')  # type: ignore[attr-defined]
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError, match="mid-write"):
        write_atomic(path, half_then_crash)
    assert path.read_bytes() == before  # a reader sees the old file whole, never half of the new one
    assert sorted(os.listdir(tmp_path)) == ["result.json"]


def test_the_file_appears_only_once_written(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "report.md"
    seen: list[bool] = []
    write_atomic(path, lambda fh: (seen.append(path.exists()), fh.write(b"# report\n")))
    assert seen == [False] and path.read_text() == "# report\n"


class _Base(nn.Module):
    def __init__(self, lr: float = 0.1, *, momentum: float = 0.9, **kwargs: object) -> None:
        super().__init__(**kwargs)


class _Net(_Base):
    def __init__(self, pool: str = "max", **kwargs: object) -> None:
        super().__init__(**kwargs)


def test_accepted_kwargs_follows_kwargs_up_the_class_chain() -> None:
    # _Net's **kwargs reach _Base (lr, keyword-only momentum); nn.Module's adds no name
    assert accepted_kwargs(_Net) == {"pool", "lr", "momentum"}

    def builder(num_classes: int = 10, /, width: int = 4) -> None: ...

    def any_kwargs(num_classes: int = 10, **kwargs: object) -> None: ...

    assert accepted_kwargs(builder) == {"width"}  # positional-only cannot be given by keyword
    assert accepted_kwargs(any_kwargs) is None  # a function taking **kwargs takes anything


def test_one_close_match_hint_and_choice_check() -> None:
    assert did_you_mean("paddign", ["padding", "pool"]) == " Did you mean 'padding'?"
    assert did_you_mean("lr", ["lr_x"], prefix="--model.") == " Did you mean '--model.lr_x'?"
    assert did_you_mean("zzz", ["padding"]) == ""
    with pytest.raises(ValueError, match=r"^Unknown pool 'maxx'; valid: max, avg\. Did you mean 'max'\?$"):
        check_choice("maxx", ("max", "avg"), "pool")
    with pytest.raises(ValueError, match=r"^Unknown pool 'q'; valid: max, avg$"):
        check_choice("q", ("max", "avg"), "pool")


def test_the_vocabularies_are_what_the_factories_build() -> None:
    from cnnbench.models.pooling import POOLS

    assert tuple(POOLS) == POOL_KINDS
    assert VOCABULARIES["pool"] is POOL_KINDS
    assert LINKED_ARGUMENTS == ("num_classes", "in_channels", "input_size")
