"""`cnnbench report` figures fit a page: at most 7 in wide at 300 dpi, text of 7 pt or more, in PNG,
PDF or SVG, and with one seed the captions say there is no interval. Sizes are read back from the
written files (PNG header and dpi, PDF MediaBox, SVG width), not from the plotting code."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_questions import GRID, write_folder

from cnnbench.cli import main

MAX_WIDTH_IN = 7.0


@pytest.fixture
def svg_text() -> Iterator[None]:
    """Keep SVG text as text (not paths) so captions and font sizes can be read back."""
    import matplotlib

    old = matplotlib.rcParams["svg.fonttype"]
    matplotlib.rcParams["svg.fonttype"] = "none"
    yield
    matplotlib.rcParams["svg.fonttype"] = old


def width_in(path: Path) -> float:
    if path.suffix == ".png":
        from PIL import Image

        with Image.open(path) as im:
            dpi = im.info["dpi"][0]
            assert round(dpi) == 300, path
            return im.size[0] / 300  # pHYs stores px/m: 299.9994 dpi reads back for 300
    if path.suffix == ".pdf":
        box = re.search(rb"/MediaBox \[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", path.read_bytes())
        assert box, path
        return float(box.group(1)) / 72
    width = re.search(r'<svg[^>]* width="([\d.]+)pt"', path.read_text())
    assert width, path
    return float(width.group(1)) / 72


@pytest.mark.parametrize("fmt", ["png", "pdf", "svg"])
def test_every_figure_is_at_most_7_inches_wide_in_the_asked_format(tmp_path: Path, fmt: str, svg_text: None) -> None:
    out = tmp_path / "grid"
    write_folder(out)
    (out / "forest_pool.png").write_bytes(b"old figure of an earlier report")  # superseded: removed
    assert main(["report", str(out), "--format", fmt]) == 0
    figures = sorted(p for p in out.iterdir() if p.suffix in (".png", ".pdf", ".svg"))
    names = {p.stem for p in figures}
    assert {"answer_max-vs-avg", "answer_avg-consistency", "forest_pool_test_acc", "shift_consistency_zero"} <= names
    assert {p.suffix for p in figures} == {f".{fmt}"}  # only the asked format, the superseded PNG is gone
    for p in figures:
        assert 3.0 < width_in(p) <= MAX_WIDTH_IN, p
        if fmt == "svg":
            sizes = [float(s) for s in re.findall(r"font-size:\s*([\d.]+)px", p.read_text())]
            assert sizes and min(sizes) >= 7.0, p  # points: matplotlib writes 1 px = 1 pt in SVG
    report = (out / "REPORT.md").read_text()
    assert f"(answer_max-vs-avg.{fmt})" in report


def test_one_seed_figures_and_report_say_no_interval(tmp_path: Path, svg_text: None) -> None:
    out = tmp_path / "one"
    write_folder(out)
    for p in (out / "results").glob("*-s[123].json"):
        p.unlink()
    (out / "grid.json").write_text(json.dumps({**GRID, "seeds": [0]}))
    assert main(["report", str(out), "--format", "svg"]) == 0
    report = (out / "REPORT.md").read_text()
    assert "**No interval (1 seed)**" in report
    figures = list(out.glob("*.svg"))
    assert figures
    for p in figures:
        assert "No interval (1 seed)" in p.read_text(), p


def test_forest_names_each_rows_reference_when_contexts_differ(tmp_path: Path, svg_text: None) -> None:
    # padding_mode zeros has valid/same, background only same/full (valid excluded): two references
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cnnbench.bench import analysis, plots

    arms = {
        ("zeros", "valid"): 0.90,
        ("zeros", "same"): 0.92,
        ("background", "same"): 0.93,
        ("background", "full"): 0.95,
    }
    rows = [
        {
            "run_id": f"lenet5-max-{pad}-{mode}-32-true-d1-s{seed}",
            "model_label": "lenet5",
            "pool": "max",
            "padding": pad,
            "padding_mode": mode,
            "precision": "32-true",
            "devices": 1,
            "augment": "none",
            "seed": seed,
            "status": "ok",
            "test_acc": acc + 0.001 * seed * (pad == "same"),
        }
        for (mode, pad), acc in arms.items()
        for seed in range(3)
    ]
    fam = analysis.family(rows, ["padding"], ["test_acc"])
    assert {(r.comp.a, r.comp.b) for r in fam} >= {("same", "valid"), ("full", "same")}
    path = plots.forest(fam, "padding", "test_acc", "test accuracy", tmp_path, "svg", plt)
    assert path is not None
    text = path.read_text()
    assert "same − valid" in text and "full − same" in text and "A − B per row" in text
    assert "against valid" not in text and "against same" not in text
