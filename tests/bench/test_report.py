"""`cnnbench report` on known synthetic results: paired differences, intervals, p-values and
adjusted verdicts against values computed by hand here (t quantile and p-values from tables)."""

from __future__ import annotations

import json
import math
import shutil
import statistics
from pathlib import Path
from typing import Any

import pytest

from cnnbench.cli import main

SEEDS = [0, 1, 2, 3, 4]
T975_DF4 = 2.776  # Student's t, two-sided 95%, df = 4 (printed tables)
SIZES = {"valid": (61_706, 421_000), "same": (136_586, 901_800)}

# test accuracy per (pool, padding), seed by seed
MAX_VALID = [0.9800, 0.9810, 0.9790, 0.9805, 0.9795]
AVG_VALID = [m + d for m, d in zip(MAX_VALID, [-0.0100, -0.0102, -0.0098, -0.0101, -0.0099])]
MAX_SAME = [m + d for m, d in zip(MAX_VALID, [0.004, 0.002, 0.006, 0.001, 0.005])]
AVG_SAME = [m + d for m, d in zip(AVG_VALID, [0.010, -0.012, 0.015, -0.008, 0.003])]
ACC = {("max", "valid"): MAX_VALID, ("avg", "valid"): AVG_VALID, ("max", "same"): MAX_SAME, ("avg", "same"): AVG_SAME}
BASE = [0.90, 0.91, 0.89, 0.905, 0.895]
CONS = {
    ("max", "valid"): BASE,
    ("avg", "valid"): [b + d for b, d in zip(BASE, [0.001, -0.001, 0.0005, 0.0, -0.0005])],
    ("max", "same"): [b + d for b, d in zip(BASE, [0.0005, 0.0, -0.0005, 0.001, 0.0])],
    ("avg", "same"): BASE,
}
# (table, context, A, B) → two-sided p of the paired t-test with df = 4, from scipy.stats.t.sf computed once
P = {
    ("pool: test acc", "lenet5, valid", "avg", "max"): 1.4995001312178416e-08,
    ("pool: test acc", "lenet5, same", "avg", "max"): 0.0528773,
    ("padding: test acc", "lenet5, max", "same", "valid"): 0.0178113,
    ("padding: test acc", "lenet5, avg", "same", "valid"): 0.771301,
    ("pool: consistency (zero)", "lenet5, valid", "avg", "max"): 1.0,
    ("pool: consistency (zero)", "lenet5, same", "avg", "max"): 0.476621,
    ("padding: consistency (zero)", "lenet5, max", "same", "valid"): 0.476621,
    ("padding: consistency (zero)", "lenet5, avg", "same", "valid"): 1.0,
    # the edge probe is 0.5 in every run: differences all 0 with no spread, p = 1 by definition
    ("pool: edge acc", "lenet5, valid", "avg", "max"): 1.0,
    ("pool: edge acc", "lenet5, same", "avg", "max"): 1.0,
    ("padding: edge acc", "lenet5, max", "same", "valid"): 1.0,
    ("padding: edge acc", "lenet5, avg", "same", "valid"): 1.0,
}
EDGE = dict.fromkeys(ACC, [0.5] * 5)


def result(pool: str, padding: str, seed: int) -> dict[str, Any]:
    acc, cons = ACC[(pool, padding)][seed], CONS[(pool, padding)][seed]
    params, macs = SIZES[padding]
    return {
        "run_id": f"lenet5-{pool}-{padding}-zeros-32-true-d1-s{seed}",
        "grid": "synthetic-grid",
        "model": "lenet5",
        "model_args": {},
        "model_label": "lenet5",
        "pool": pool,
        "padding": padding,
        "padding_mode": "zeros",
        "precision": "32-true",
        "devices": 1,
        "seed": seed,
        "augment": "standard",
        "status": "ok",
        "params": params,
        "macs": macs,
        "test_acc": acc,
        "images_per_s": 1000.0 + seed,
        "robustness": {
            "acc": acc,
            "definition": "zhang2019",
            "copies": 4,
            "pairs": 6,
            "seed": 0,
            "images": 100,
            "shift": {"zero": {"consistency": {"1": cons, "2": cons}, "acc": {"1": acc - 0.01, "2": acc - 0.02}}},
            "edge": {"acc": {"left": 0.5}, "acc_mean": 0.5, "lost_ink": 0.0, "mean_shift_px": {"left": 4.0}},
        },
    }


def write_results(out: Path) -> None:
    (out / "results").mkdir(parents=True)
    for (pool, padding), _ in ACC.items():
        for seed in SEEDS:
            r = result(pool, padding, seed)
            (out / "results" / f"{r['run_id']}.json").write_text(json.dumps(r))


def tables(report: str) -> dict[tuple[str, str, str, str], list[str]]:
    """Comparison rows by (table title, context, A, B)."""
    rows, title = {}, ""
    for line in report.splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().split(" (A − B")[0]
        elif line.startswith("| ") and " (A − B" not in title and title.startswith(("pool:", "padding:")):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if cells[0] != "context":
                rows[(title, cells[0], cells[1], cells[2])] = cells
    return rows


def by_hand(a: list[float], b: list[float]) -> tuple[float, float]:
    d = [x - y for x, y in zip(a, b)]
    return statistics.mean(d) * 100, T975_DF4 * statistics.stdev(d) / math.sqrt(len(d)) * 100


def holm_by_hand(p: dict[Any, float]) -> dict[Any, float]:
    out, running = {}, 0.0
    for rank, key in enumerate(sorted(p, key=p.__getitem__)):
        running = max(running, min(1.0, (len(p) - rank) * p[key]))
        out[key] = running
    return out


def bh_by_hand(p: dict[Any, float]) -> dict[Any, float]:
    keys = sorted(p, key=p.__getitem__)
    out, running = {}, 1.0
    for rank in range(len(keys), 0, -1):
        running = min(running, len(keys) * p[keys[rank - 1]] / rank)
        out[keys[rank - 1]] = running
    return out


def holm_level_by_hand(p: dict[Any, float]) -> dict[Any, float]:
    """α/(m − i) for the i-th smallest p, held at the first rank Holm does not reject."""
    out, stop = {}, None
    for rank, key in enumerate(sorted(p, key=p.__getitem__)):
        if stop is None and p[key] > 0.05 / (len(p) - rank):
            stop = rank
        out[key] = 0.05 / (len(p) - (rank if stop is None else stop))
    return out


def test_report_paired_cis_and_adjusted_verdicts_equal_hand_computation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scipy_t = pytest.importorskip("scipy.stats").t
    out = tmp_path / "grid"
    write_results(out)
    assert main(["report", str(out)]) == 0
    report = (out / "REPORT.md").read_text()
    rows = tables(report)
    assert set(rows) == set(P)  # one family of 12: 2 axes × 2 contexts × 3 metrics, reference (max, valid) as B
    assert "one family of 12" in report and report.startswith("# Ablation report: synthetic-grid")
    holm, bh = holm_by_hand(P), bh_by_hand(P)
    level = holm_level_by_hand(P)
    sources = {"test acc": ACC, "consistency (zero)": CONS, "edge acc": EDGE}
    for key, cells in rows.items():
        title, context, a, b = key
        data = sources[title.split(": ", 1)[1]]
        where = context.split(", ")[1]
        arms = ((a, where), (b, where)) if title.startswith("pool") else ((where, a), (where, b))
        mean, half = by_hand(data[arms[0]], data[arms[1]])
        assert cells[4] == "5"
        assert float(cells[5]) == pytest.approx(mean, abs=0.006), key
        low, high = (float(v) for v in cells[6].strip("[]").split(","))
        assert low == pytest.approx(mean - half, abs=0.006) and high == pytest.approx(mean + half, abs=0.006), key
        # the Holm CI: t at the comparison's Holm level (scipy's quantile as the independent reference)
        sd = statistics.stdev([x - y for x, y in zip(data[arms[0]], data[arms[1]])]) * 100
        h_half = scipy_t.ppf(1 - level[key] / 2, 4) * sd / math.sqrt(5)
        if cells[7] != "–":
            low, high = (float(v) for v in cells[7].strip("[]").split(","))
            assert low == pytest.approx(mean - h_half, abs=0.006) and high == pytest.approx(mean + h_half, abs=0.006)
        assert float(cells[8].replace("<", "")) == pytest.approx(P[key], abs=1e-4), key
        assert float(cells[9].replace("<", "")) == pytest.approx(holm[key], abs=1e-4), key
        assert float(cells[10].replace("<", "")) == pytest.approx(bh[key], abs=1e-4), key
    verdicts = {k: v[11] for k, v in rows.items()}
    assert verdicts[("pool: test acc", "lenet5, valid", "avg", "max")] == "differs"
    assert verdicts[("padding: test acc", "lenet5, max", "same", "valid")] == "uncorrected only"  # p 0.018, Holm 0.12
    assert verdicts[("pool: test acc", "lenet5, same", "avg", "max")] == "not resolved"  # CI [-2.42, +0.02]
    assert verdicts[("padding: test acc", "lenet5, avg", "same", "valid")] == "not resolved"
    assert {v for k, v in verdicts.items() if "consistency" in k[0] or "edge" in k[0]} == {"within ±0.5"}
    # sizes beside every comparison whose arms differ, and next to every cell's accuracy
    assert rows[("padding: test acc", "lenet5, max", "same", "valid")][3] == "136,586 / 0.90M vs 61,706 / 0.42M"
    assert rows[("pool: test acc", "lenet5, valid", "avg", "max")][3] == "same"
    assert "| lenet5 | max | valid | 61,706 / 0.42M | 5/5 | 98.00 ± 0.10 |" in report  # mean ± 2.776·s/√5
    assert "lost-ink fraction 0.000000" in report and "Absent from these results" not in report
    assert "Not measured by this grid: Zhang 2019 shift consistency (circular)" in report
    assert {p.name for p in out.glob("*.png")} >= {
        "forest_pool_test_acc.png",
        "forest_padding_consistency_zero.png",
        "shift_consistency_zero.png",
        "shift_acc_zero.png",
    }
    assert not (out / "throughput.png").exists()  # one precision, one device count: nothing to compare


def test_report_of_results_csv_written_before_the_new_metrics(tmp_path: Path) -> None:
    out = tmp_path / "old"
    out.mkdir()
    header = "run_id,model_label,pool,padding,padding_mode,precision,devices,model,seed,status,test_acc,params,macs,shift_acc_1,shift_consistency_1,shift_consistency,border_acc,error"
    lines = [header] + [
        f"lenet5-{pool}-valid-zeros-32-true-d1-s{s},lenet5,{pool},valid,zeros,32-true,1,lenet5,{s},ok,{acc},61706,421000,0.9,0.95,0.95,0.2,"
        for pool, values in (("max", MAX_VALID), ("avg", AVG_VALID))
        for s, acc in enumerate(values)
    ]
    (out / "results.csv").write_text("\n".join(lines) + "\n")
    before = (out / "results.csv").read_text()
    assert main(["report", str(out), "--no-plots"]) == 0
    report = (out / "REPORT.md").read_text()
    assert (out / "results.csv").read_text() == before  # the only copy of the data is never rewritten
    assert "Absent from these results" in report and "Zhang 2019 shift consistency (zero-fill)" in report
    assert "legacy diag consistency" in report and "not recorded for 10 runs" in report
    mean, _ = by_hand(AVG_VALID, MAX_VALID)
    row = tables(report)[("pool: test acc", "lenet5, valid", "avg", "max")]
    assert float(row[5]) == pytest.approx(mean, abs=0.006) and row[11] == "differs"


def test_result_json_written_before_the_new_metrics(tmp_path: Path) -> None:
    out = tmp_path / "old-json"
    (out / "results").mkdir(parents=True)
    for pool, values in (("max", MAX_VALID), ("avg", AVG_VALID)):
        for s, acc in enumerate(values):
            r = result(pool, "valid", s)
            del r["augment"]
            r["robustness"] = {
                "acc": acc,
                "shift_acc": {"1": 0.9},
                "shift_consistency": {"1": 0.95, "2": 0.85},
                "border_acc": {"left": 0.2},
                "border_acc_mean": 0.2,
                "border": 8,
                "fill": "zero",
            }
            (out / "results" / f"{r['run_id']}.json").write_text(json.dumps(r))
    assert main(["report", str(out), "--no-plots"]) == 0
    report = (out / "REPORT.md").read_text()
    assert "Absent from these results** (they predate them)" in report and "not recorded for 10 runs" in report
    assert "| lenet5 | max | valid | 61,706 / 0.42M | 5/5 | 98.00 ± 0.10 | 90.00 ± 0.00 | 20.00 ± 0.00 |" in report
    assert report.startswith("# Ablation report: synthetic-grid")  # the name stored in the results


def test_committed_mnist_report_still_loads(tmp_path: Path) -> None:
    committed = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "pooling-padding-mnist"
    out = tmp_path / "mnist"
    shutil.copytree(committed, out)
    assert main(["report", str(out), "--no-plots"]) == 0
    report = (out / "REPORT.md").read_text()
    assert "72 planned; 72 ran: 72 ok" in report and "Absent from these results" in report
    # the independent recomputation: classic LeNet-5, valid padding, max − avg = −0.01 [−0.56, +0.53]
    # (here as avg − max, the reference is max)
    row = tables(report)[("pool: test acc", "lenet5_classic, valid", "avg", "max")]
    assert float(row[5]) == pytest.approx(0.01, abs=0.006)
    assert row[6] == "[-0.53, +0.56]"


def write_variant(
    out: Path, circular_offset: dict[tuple[str, str, int], float], acc: dict[str, float] | None = None
) -> None:
    """The synthetic grid with a circular-fill consistency = zero fill + offset, and optionally a pool's accuracy."""
    (out / "results").mkdir(parents=True)
    (out / "grid.json").write_text(
        json.dumps(
            {
                "name": "variant",
                "data": {"name": "mnist"},
                "models": [{"name": "lenet5", "args": {}}],
                "pool": ["max", "avg"],
                "padding": ["valid", "same"],
                "seeds": SEEDS,
            }
        )
    )
    for (pool, padding), _ in ACC.items():
        for seed in SEEDS:
            r = result(pool, padding, seed)
            zero = r["robustness"]["shift"]["zero"]
            off = circular_offset.get((pool, padding, seed), 0.004)
            r["robustness"]["shift"]["circular"] = {
                "consistency": {k: v + off for k, v in zero["consistency"].items()},
                "acc": dict(zero["acc"]),
            }
            if acc and pool in acc:
                r["test_acc"] = acc[pool] + 0.001 * seed
            (out / "results" / f"{r['run_id']}.json").write_text(json.dumps(r))


def test_a_fill_equal_to_zero_fill_on_every_run_is_reported_once(tmp_path: Path) -> None:
    same = tmp_path / "same"
    write_variant(same, {})  # circular = zero + 0.4 points everywhere: within the 1-point tolerance
    assert main(["report", str(same)]) == 0
    report = (same / "REPORT.md").read_text()
    assert "**circular fill equals zero fill** within 1 point(s) on every run" in report
    assert "largest difference 0.40 points" in report
    assert "consistency (circular)" not in report and "Shift consistency (circular)" not in report
    assert "one family of 12" in report  # not 16: the duplicate is not tested again
    assert not list(same.glob("*circular*")) and (same / "shift_consistency_zero.png").exists()

    differs = tmp_path / "differs"
    write_variant(differs, {("avg", "same", 2): 0.02})  # one run 2 points apart: a different metric
    assert main(["report", str(differs), "--no-plots"]) == 0
    report = (differs / "REPORT.md").read_text()
    assert "fill equals" not in report and "| consistency (circular) |" in report.replace(" | edge acc", "")
    assert "one family of 16" in report


def test_cells_near_chance_are_flagged_and_left_out_of_consistency_comparisons(tmp_path: Path) -> None:
    out = tmp_path / "chance"
    write_variant(out, {}, acc={"avg": 0.15})  # avg at 15-15.4%: within 10 points of MNIST's 10% chance
    (out / "questions.yaml").write_text(
        "questions:\n  - {id: c, claim: c, metric: consistency_zero, delta: 1, expect: a>b, contrasts: [{a: {pool: avg}, b: {pool: max}}]}\n"
        "  - {id: acc, claim: a, metric: test_acc, delta: 1, expect: a<b, contrasts: [{a: {pool: avg}, b: {pool: max}}]}\n"
    )
    assert main(["report", str(out), "--no-plots"]) == 0
    report = (out / "REPORT.md").read_text()
    assert "Chance accuracy is 10%. Cells within 10 points of it are marked *near chance*" in report
    assert "| lenet5 | avg | valid | 61,706 / 0.42M | 5/5 ⚠ near chance |" in report
    assert "| lenet5 | max | valid | 61,706 / 0.42M | 5/5 |" in report
    rows = tables(report)
    assert not [k for k in rows if k[0] == "pool: consistency (zero)"]  # avg − max left out
    assert [k for k in rows if k[0] == "pool: test acc"]  # accuracy is still compared
    assert "left out (left out: lenet5-avg-valid-zeros-32-true-d1 is near chance accuracy)" in report
    assert "### acc: a\n\n**supported**" in report
    assert main(["report", str(out), "--no-plots", "--chance-margin", "2"]) == 0  # 15% is 5 points above chance
    assert "near chance" not in (out / "REPORT.md").read_text().split("## Cells")[1]


def test_metric_columns_of_newer_cells_are_reported_generically(tmp_path: Path) -> None:
    """A cell's ``metrics`` block (per-stride consistency, border placement, a metric this report has never
    heard of) becomes columns, tables and answerable question metrics; the border penalty's A − B is the
    difference in differences, checked by hand."""
    out = tmp_path / "newer"
    (out / "results").mkdir(parents=True)
    penalty = {"max": [0.050, 0.060, 0.040, 0.055, 0.045], "avg": [0.030, 0.035, 0.025, 0.040, 0.020]}
    for pool in ("max", "avg"):
        for seed in SEEDS:
            r = result(pool, "valid", seed)
            centred = 0.99 - 0.001 * seed
            r["metrics"] = {
                "consistency_zero_below_stride": 0.9 + 0.01 * seed,
                "consistency_zero_from_stride": 0.5,
                "total_stride": 4,
                "acc_centred": centred,
                "acc_border": centred - penalty[pool][seed],
                "border_penalty": penalty[pool][seed],
                "acc_left": 0.9,
                "wobble_index": 3.5 + seed,
            }
            (out / "results" / f"{r['run_id']}.json").write_text(json.dumps(r))
    (out / "questions.yaml").write_text(
        "questions:\n  - {id: bp, claim: c, metric: border_penalty, delta: 0.5, expect: a<b, contrasts: [{a: {pool: avg}, b: {pool: max}}]}\n"
    )
    assert main(["report", str(out), "--no-plots"]) == 0
    report = (out / "REPORT.md").read_text()
    stride = report.split("## Shift consistency below and from the network's total stride")[1].split("\n## ")[0]
    assert "| consistency_zero_below_stride | consistency_zero_from_stride |" in stride
    assert "| lenet5 | max | valid | 92.00 ± 1.96 | 50.00 ± 0.00 |" in stride  # mean 0.92, 2.776·SD/√5
    border = report.split("## Border placement")[1].split("\n## ")[0]
    assert "acc_centred | acc_border | acc_left" in border and "border_penalty" not in border
    cells = report.split("## Cells")[1].split("\n## ")[0]
    assert "| border penalty | wobble index |" in cells and "| 5.00 ± 0.98 | 5.50 ± 1.96 |" in cells
    assert "total_stride" not in report and "| total stride" not in report
    mean, half = by_hand(penalty["avg"], penalty["max"])  # m = 1: the 95% interval
    row = next(line for line in report.split("### bp")[1].splitlines() if line.startswith("| avg | max |"))
    assert f"| {mean:+.2f} | [{mean - half:+.2f}, {mean + half:+.2f}] | 95.00% |" in row and "| a<b |" in row
