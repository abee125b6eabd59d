"""`cnnbench report` answering a questions file: per-question Holm adjustment, the interval at each
comparison's Holm level, verdicts, n to resolve and n ok / n planned, against a hand computation on
a small synthetic grid with a missing seed, a failed cell, an equivalence case and a case that is
equivalent only without adjustment. Student-t quantiles and p-values come from scipy (independent
of the report's own incomplete-beta code)."""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cnnbench.cli import main

scipy_stats = pytest.importorskip("scipy.stats")

SEEDS = [0, 1, 2, 3]
GRID = {
    "name": "q-grid",
    "data": {"name": "mnist"},
    "models": [{"name": "lenet5", "args": {}}],
    "pool": ["max", "avg", "min"],
    "padding": ["valid", "same"],
    "padding_mode": ["zeros"],
    "precision": ["32-true"],
    "devices": [1],
    "seeds": SEEDS,
    "trainer": {},
    "robustness": {},
    "augment": ["standard"],
    "description": "",
}
Z = [v / math.sqrt(20 / 3) for v in (-3, -1, 1, 3)]  # mean 0, SD 1 exactly
ACC = {
    ("max", "valid"): [0.9900, 0.9910, 0.9890, 0.9905],
    ("max", "same"): [0.9880, 0.9890, 0.9870, 0.9885],
}
ACC[("avg", "valid")] = [m - d for m, d in zip(ACC[("max", "valid")], [0.010, 0.012, 0.008])]  # seed 3 never ran
ACC[("avg", "same")] = [m - d for m, d in zip(ACC[("max", "same")], [0.0005, -0.0005, 0.0010, 0.0])]  # equivalent
ACC[("min", "valid")] = [m - d for m, d in zip(ACC[("max", "valid")], [0.020, 0.025, 0.015, 0.022])]
CONS = {
    ("max", "valid"): [0.80, 0.82, 0.78, 0.81],
    ("max", "same"): [0.70, 0.72, 0.71, 0.69],
    ("min", "valid"): [0.60, 0.62, 0.58, 0.61],
}
CONS[("avg", "valid")] = [m + d for m, d in zip(CONS[("max", "valid")], [0.02, -0.03, 0.04])]  # noisy: not resolved
# mean +0.3, SD 0.4 points: the 95% CI [-0.34, +0.94] lies inside ±1, the Holm-level (97.5%) one does not
CONS[("avg", "same")] = [m + (0.3 + 0.4 * z) / 100 for m, z in zip(CONS[("max", "same")], Z)]
QUESTIONS = """
questions:
  - id: max-vs-avg
    claim: "Max pooling gives higher accuracy than average pooling"
    metric: test_acc
    delta: 0.5
    expect: a>b
    contrasts:
      - {a: {pool: max}, b: {pool: avg}}
    conditions: "synthetic"
  - id: min-worst
    claim: "Min pooling is less accurate than max pooling"
    metric: test_acc
    delta: 0.5
    expect: a<b
    contrasts:
      - {a: {pool: min}, b: {pool: max}}
  - id: avg-consistency
    claim: "Average pooling is more shift-consistent than max pooling"
    metric: consistency_zero
    delta: 1.0
    expect: a>b
    contrasts:
      - {a: {pool: avg}, b: {pool: max}}
  - id: max-vs-avg-valid-only
    claim: "Max beats average with valid padding"
    metric: test_acc
    delta: 0.5
    expect: a>b
    where: {padding: valid}
    contrasts:
      - {a: {pool: max}, b: {pool: avg}}
"""


def result(pool: str, padding: str, seed: int) -> dict[str, Any]:
    run = {
        "run_id": f"lenet5-{pool}-{padding}-zeros-32-true-d1-s{seed}",
        "grid": "q-grid",
        "model": "lenet5",
        "model_label": "lenet5",
        "pool": pool,
        "padding": padding,
        "padding_mode": "zeros",
        "precision": "32-true",
        "devices": 1,
        "seed": seed,
        "augment": "standard",
        "params": 61_706,
        "macs": 421_000,
    }
    if (pool, padding) == ("min", "same"):
        return {**run, "status": "failed", "error": "RuntimeError: boom"}
    cons = CONS[(pool, padding)][seed]
    return {
        **run,
        "status": "ok",
        "test_acc": ACC[(pool, padding)][seed],
        "robustness": {"shift": {"zero": {"consistency": {"1": cons}, "acc": {"1": 0.9}}}},
    }


def write_folder(out: Path) -> None:
    (out / "results").mkdir(parents=True)
    (out / "grid.json").write_text(json.dumps(GRID))
    (out / "questions.yaml").write_text(QUESTIONS)
    for pool in GRID["pool"]:
        for padding in GRID["padding"]:
            for seed in SEEDS:
                if (pool, padding, seed) == ("avg", "valid", 3):
                    continue  # planned, never ran
                r = result(pool, padding, seed)
                (out / "results" / f"{r['run_id']}.json").write_text(json.dumps(r))


def answers(report: str) -> dict[str, dict[str, Any]]:
    """Per question: verdict line and table rows keyed by (A, B, context)."""
    out: dict[str, dict[str, Any]] = {}
    section = report.split("## Answers", 1)[1].split("\n## ", 1)[0]
    current: dict[str, Any] = {}
    for line in section.splitlines():
        if line.startswith("### "):
            current = out.setdefault(line[4:].split(":")[0], {"rows": {}})
        elif line.startswith("**") and current is not None:
            current["verdict"] = line
        elif line.startswith("| ") and not line.startswith("| A |") and current:  # not the summary table
            cells = [c.strip() for c in line.strip("|").split("|")]
            current["rows"][(cells[0], cells[1], cells[2])] = cells
    return out


def hand(a: list[float], b: list[float], level: float) -> tuple[float, float, float, float]:
    """mean, interval at two-sided ``level`` (points) and the paired t-test's p (scipy)."""
    d = [(x - y) * 100 for x, y in zip(a, b)]
    n, mean, sd = len(d), statistics.mean(d), statistics.stdev(d)
    half = scipy_stats.t.ppf(1 - level / 2, n - 1) * sd / math.sqrt(n)
    p = 2 * scipy_stats.t.sf(abs(mean) / (sd / math.sqrt(n)), n - 1)
    return mean, mean - half, mean + half, p


def n_by_hand(a: list[float], b: list[float], delta: float, alpha: float) -> int:
    d = [(x - y) * 100 for x, y in zip(a, b)]
    mean, sd = statistics.mean(d), statistics.stdev(d)
    n = 2
    while scipy_stats.t.ppf(1 - alpha / 2, n - 1) * sd / math.sqrt(n) >= max(abs(mean), delta - abs(mean)):
        n += 1
    return n


def check_row(row: list[str], mean: float, low: float, high: float, p: float, level: float) -> None:
    assert float(row[4]) == pytest.approx(mean, abs=0.006), row
    lo, hi = (float(v) for v in row[5].strip("[]").split(","))
    assert lo == pytest.approx(low, abs=0.006) and hi == pytest.approx(high, abs=0.006), row
    assert row[6] == f"{(1 - level) * 100:.2f}%", row
    assert float(row[7].replace("<", "")) == pytest.approx(p, abs=1e-4), row


def test_answers_adjust_within_each_question_and_equal_a_hand_computation(tmp_path: Path) -> None:
    out = tmp_path / "grid"
    write_folder(out)
    assert main(["report", str(out), "--no-plots"]) == 0
    report = (out / "REPORT.md").read_text()
    assert report.index("## What did not run") < report.index("## Answers") < report.index("## Cells")
    got = answers(report)

    # max-vs-avg: valid (3 common seeds: seed 3 of avg never ran) and same; Holm over these 2 only
    v = hand(ACC[("max", "valid")][:3], ACC[("avg", "valid")], 0.05 / 2)  # smallest p: first Holm step, α/2
    assert v[3] < 0.05 / 2  # rejected, so the next step is at α/1
    s = hand(ACC[("max", "same")], ACC[("avg", "same")], 0.05 / 1)
    rows = got["max-vs-avg"]["rows"]
    check_row(rows[("max", "avg", "padding valid")], *v, level=0.025)
    check_row(rows[("max", "avg", "padding same")], *s, level=0.05)
    assert rows[("max", "avg", "padding valid")][3] == "3/4" and rows[("max", "avg", "padding same")][3] == "4/4"
    assert rows[("max", "avg", "padding valid")][8] == "a>b"
    assert s[1] > -0.5 and s[2] < 0.5 and rows[("max", "avg", "padding same")][8] == "equivalent"
    assert got["max-vs-avg"]["verdict"].startswith("**refuted**: practically equivalent")
    summary = next(line for line in report.splitlines() if line.startswith("| [max-vs-avg](#max-vs-avg)"))
    assert f"padding valid: {v[0]:+.2f} [{v[1]:+.2f}, {v[2]:+.2f}]" in summary and "| **refuted** (" in summary

    # min-worst: the same-padding min cell failed on every seed: no data, the valid comparison alone decides
    rows = got["min-worst"]["rows"]
    assert rows[("min", "max", "padding same")][3] == "0/4" and rows[("min", "max", "padding same")][8] == "no data"
    m = hand(ACC[("min", "valid")], ACC[("max", "valid")], 0.05)
    check_row(rows[("min", "max", "padding valid")], *m, level=0.05)  # m = 1: unadjusted
    assert got["min-worst"]["verdict"] == "**supported**: all 1 comparisons as claimed; 1 of 2 without data."

    # avg-consistency: the smaller p is not rejected at α/2, so Holm stops at its first step and both intervals
    # are drawn at 97.5%; the same-padding one is inside ±1 only at 95%
    noisy = hand(CONS[("avg", "valid")], CONS[("max", "valid")][:3], 0.025)
    near = hand(CONS[("avg", "same")], CONS[("max", "same")], 0.025)
    unadjusted = hand(CONS[("avg", "same")], CONS[("max", "same")], 0.05)
    assert min(noisy[3], near[3]) > 0.025
    assert unadjusted[1] > -1 and unadjusted[2] < 1 and near[2] > 1  # the trap for an unadjusted equivalence test
    rows = got["avg-consistency"]["rows"]
    check_row(rows[("avg", "max", "padding valid")], *noisy, level=0.025)
    check_row(rows[("avg", "max", "padding same")], *near, level=0.025)
    assert rows[("avg", "max", "padding same")][8] == "not resolved"
    n_valid = n_by_hand(CONS[("avg", "valid")], CONS[("max", "valid")][:3], 1.0, 0.05 / 2)
    n_same = n_by_hand(CONS[("avg", "same")], CONS[("max", "same")], 1.0, 0.05 / 2)
    assert rows[("avg", "max", "padding valid")][9] == str(n_valid)
    assert rows[("avg", "max", "padding same")][9] == str(n_same)
    verdict = got["avg-consistency"]["verdict"]
    assert verdict.startswith("**not resolved**") and f"About n = {max(n_valid, n_same)} seeds" in verdict

    # where fixes padding: one comparison, m = 1, the unadjusted interval
    rows = got["max-vs-avg-valid-only"]["rows"]
    assert list(rows) == [("max", "avg", "–")]
    check_row(rows[("max", "avg", "–")], *hand(ACC[("max", "valid")][:3], ACC[("avg", "valid")], 0.05), level=0.05)
    assert "Holm over m = 1" in report and "Holm over m = 2" in report


def test_report_says_what_ran_per_cell_and_lists_what_did_not(tmp_path: Path) -> None:
    out = tmp_path / "grid"
    write_folder(out)
    assert main(["report", str(out), "--no-plots"]) == 0
    report = (out / "REPORT.md").read_text()
    assert (
        report.splitlines()[2]
        == "24 planned; 23 ran: 19 ok, 4 failed; 1 never ran; seeds 0, 1, 2, 3; read from `results`."
    )
    top = report.split("## Answers")[0]
    assert "| `lenet5-avg-valid-zeros-32-true-d1` | 3/4 | s3 | – |" in top
    assert "| `lenet5-min-same-zeros-32-true-d1` | 0/4 | – | failed s0, failed s1, failed s2, failed s3 |" in top
    assert "2 planned cells have fewer ok runs than planned." in top
    assert "| lenet5 | avg | valid | 61,706 / 0.42M | 3/4 |" in report
    assert "| lenet5 | min | same | 61,706 / 0.42M | 0/4 (failed) |" in report
    assert "| lenet5 | max | valid | 61,706 / 0.42M | 4/4 |" in report


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("questions: []", "questions: give a non-empty list of questions"),
        (
            "questions:\n  - {id: q, claim: c, metric: test_acc, delta: 0.5, expect: 'a>=b', contrasts: [{a: {pool: max}, b: {pool: avg}}]}",
            "q.expect: unknown value 'a>=b'; valid: a>b, a<b, differs",
        ),
        (
            "questions:\n  - {id: q, claim: c, metric: test_acc, delta: 0.5, expect: a>b, contrast: []}",
            "q.contrast: unknown key; valid keys: id, claim, metric, delta, expect, where, contrasts, conditions",
        ),
        (
            "questions:\n  - {id: q, claim: c, metric: test_acc, delta: 0, expect: a>b, contrasts: [{a: {pool: max}, b: {pool: avg}}]}",
            "q.delta: a positive number",
        ),
        (
            "questions:\n  - {id: q, claim: c, metric: top1, delta: 1, expect: a>b, contrasts: [{a: {pool: max}, b: {pool: avg}}]}",
            "question q: metric 'top1' is not a results.csv column",
        ),
        (
            "questions:\n  - {id: q, claim: c, metric: test_acc, delta: 1, expect: a>b, contrasts: [{a: {pooling: max}, b: {pooling: avg}}]}",
            "question q: 'pooling' is not a results.csv column",
        ),
    ],
)
def test_a_bad_questions_file_is_one_line(tmp_path: Path, text: str, message: str) -> None:
    out = tmp_path / "grid"
    write_folder(out)
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    proc = subprocess.run(
        [sys.executable, "-m", "cnnbench", "report", str(out), "--no-plots", "--questions", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and message in proc.stderr, proc.stderr


def test_every_fraction_the_border_metrics_return_is_shown_and_judged_in_points() -> None:
    # blank{b}_drop was once read as a raw fraction: a 2-point drop (0.02) passed as "inside ±0.5"
    import torch

    from cnnbench.bench.metrics import is_fraction
    from cnnbench.bench.robustness import border_metrics

    images = torch.zeros(16, 1, 8, 8, dtype=torch.uint8)
    images[:, :, 3:5, 3:5] = 255
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    out = border_metrics(model, images, torch.zeros(16, dtype=torch.long), torch.arange(16) % 9, lambda x: x / 255)
    scalars = {k for k, v in out.items() if isinstance(v, float)}
    assert {"border_penalty", "blank1_drop", "blank2_drop", "acc_border_blank1"} <= scalars
    assert all(is_fraction(k) for k in scalars), sorted(k for k in scalars if not is_fraction(k))
