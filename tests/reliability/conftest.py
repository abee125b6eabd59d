"""Shared set-up of the fault-injection suite: fake data, and subprocesses that cannot
reach the network (tests/netguard/sitecustomize.py) and can import the fault injectors."""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    from fakes import write_fake_mnist

    write_fake_mnist(tmp_path / "data", n_train=1100, n_test=200)
    return tmp_path / "data"
