import subprocess
import sys

import cnnbench


def test_import_is_cheap_and_side_effect_free(tmp_path) -> None:  # type: ignore[no-untyped-def]
    code = "import cnnbench, sys; print(sorted(m for m in ('torch', 'wandb', 'lightning', 'matplotlib') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True).stdout
    assert out.strip() == "[]"
    assert list(tmp_path.iterdir()) == []


def test_public_api() -> None:
    assert cnnbench.__version__
    for name in cnnbench.__all__:
        assert getattr(cnnbench, name) is not None
    assert "lenet5" in cnnbench.list_models() and "mnist" in cnnbench.list_data()
