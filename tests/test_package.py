import email
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import cnnbench

ROOT = Path(__file__).resolve().parents[1]


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


# ----------------------------------------------------------------------------- wheel and sdist
def _build(kind: str, source: Path, out: Path) -> Path:
    """Build ``kind`` (sdist or wheel) of ``source`` with setuptools' PEP 517 backend, in a
    subprocess and without build isolation (no index, no network)."""
    code = f"from setuptools import build_meta; print(build_meta.build_{kind}({str(out)!r}))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=source, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out / proc.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(sdist, wheel) of a copy of this checkout, the wheel built from the sdist as ``python -m
    build`` does; the copy has one more grid, ``cnnbench/grids/probe.yaml``."""
    setuptools = pytest.importorskip("setuptools")
    if int(setuptools.__version__.split(".")[0]) < 77:
        pytest.skip(f"setuptools {setuptools.__version__} cannot build pyproject's SPDX license (needs >= 77)")
    tmp = tmp_path_factory.mktemp("package")
    source = tmp / "source"
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist", ".*_cache")
    for name in ("cnnbench", "tests", ".ci"):
        shutil.copytree(ROOT / name, source / name, ignore=skip)
    for name in ("pyproject.toml", "README.md", "CHANGELOG.md", "MANIFEST.in"):
        shutil.copy2(ROOT / name, source / name)
    (source / "cnnbench" / "grids").mkdir(exist_ok=True)
    (source / "cnnbench" / "grids" / "probe.yaml").write_text("name: probe\n")
    sdist = _build("sdist", source, tmp / "dist")
    with tarfile.open(sdist) as tar:
        tar.extractall(tmp / "unpacked", filter="data")
    wheel = _build("wheel", tmp / "unpacked" / sdist.name.removesuffix(".tar.gz"), tmp / "dist")
    return sdist, wheel


def _package_files() -> set[str]:
    """What the package needs at run time: its modules, py.typed and every YAML grid it ships."""
    files = {p for pattern in ("*.py", "*.yaml", "py.typed") for p in (ROOT / "cnnbench").rglob(pattern)}
    return {p.relative_to(ROOT).as_posix() for p in files if "__pycache__" not in p.parts}


def test_wheel_has_the_package_and_its_data_and_no_tests(built: tuple[Path, Path]) -> None:
    names = set(zipfile.ZipFile(built[1]).namelist())
    missing = (_package_files() | {"cnnbench/py.typed", "cnnbench/grids/probe.yaml"}) - names
    assert not missing, f"not in the wheel: {sorted(missing)}"
    assert all(n.startswith(("cnnbench/", f"cnnbench-{cnnbench.__version__}.dist-info/")) for n in names), names


def test_sdist_has_the_package_and_its_data_and_no_tests(built: tuple[Path, Path]) -> None:
    with tarfile.open(built[0]) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    expected = _package_files() | {"cnnbench/grids/probe.yaml", "pyproject.toml", "README.md", "PKG-INFO"}
    assert not expected - names, f"not in the sdist: {sorted(expected - names)}"
    shipped_tests = [n for n in names if n.startswith(("tests/", ".ci/")) or n.endswith(".pyc")]
    assert not shipped_tests, shipped_tests


def _requirement(text: str) -> tuple[str, list[str]]:
    """``("lightning", ["<3", ">=2.6"])`` for ``lightning>=2.6,<3`` (setuptools reorders them)."""
    name, specifiers = re.fullmatch(r"([A-Za-z0-9_.\-\[\]]+)(.*)", text.replace(" ", "")).groups()  # type: ignore[union-attr]
    return name.lower(), sorted(specifiers.split(","))


def test_wheel_metadata_declares_the_dependencies_and_true_classifiers(built: tuple[Path, Path]) -> None:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    metadata = email.message_from_bytes(
        zipfile.ZipFile(built[1]).read(f"cnnbench-{cnnbench.__version__}.dist-info/METADATA")
    )
    requires = [r for r in metadata.get_all("Requires-Dist", []) if "extra ==" not in r]
    assert sorted(map(_requirement, requires)) == sorted(map(_requirement, project["dependencies"]))
    classifiers = metadata.get_all("Classifier", [])
    assert "Typing :: Typed" in classifiers and "Framework :: Pytest" not in classifiers
    python = sorted(c for c in classifiers if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c))
    assert python == ["Programming Language :: Python :: 3.11"]  # the versions CI and .ci/oldest run
    assert metadata["License-Expression"] == "MIT"
    assert metadata["Description-Content-Type"] == "text/markdown"
    assert metadata["Requires-Python"] == project["requires-python"]
