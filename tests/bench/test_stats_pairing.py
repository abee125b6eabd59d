"""Pairing by seed and the multiple-comparison adjustments, on data built to expose shortcuts.

The arms list their seeds in different orders and one arm lacks a seed, so pairing by
position gives other differences than pairing by seed value; the p-values are chosen so
that Benjamini–Hochberg's step-up pass (the running minimum from the largest p down) and
Holm's step-down pass (the running maximum) change the adjusted values.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from cnnbench.bench.family import comparisons, family
from cnnbench.bench.stats import benjamini_hochberg, holm, paired

# seed → accuracy; A lists 2, 0, 3, 1 and B lists 1, 3, 0 (no seed 2)
ARM_A = {2: 0.950, 0: 0.910, 3: 0.970, 1: 0.930}
ARM_B = {1: 0.926, 3: 0.967, 0: 0.908}
BY_SEED = [0.910 - 0.908, 0.930 - 0.926, 0.970 - 0.967]  # seeds 0, 1, 3: 0.002, 0.004, 0.003


def test_paired_differences_pair_by_seed_value_not_by_position() -> None:
    comp = paired("a", ARM_A, "b", ARM_B)
    assert comp is not None and comp.diff.n == 3  # seed 2 has no partner
    assert comp.diff.mean == pytest.approx(0.003)
    assert comp.diff.std == pytest.approx(0.001)  # sample std of 0.002, 0.004, 0.003
    assert comp.diff.ci95 == pytest.approx(4.303 * 0.001 / math.sqrt(3))
    # by position the "differences" would be 0.950-0.926, 0.910-0.967, 0.970-0.908: mean 0.0097, std 0.06
    reversed_b = dict(reversed(list(ARM_B.items())))
    again = paired("a", ARM_A, "b", reversed_b)
    assert again is not None and again.diff == comp.diff  # the order seeds are listed in changes nothing


def _row(pool: str, seed: int, acc: float | None, context: str = "zeros", status: str = "ok") -> dict[str, Any]:
    run_id = f"lenet5-{pool}-same-{context}-32-true-d1-augnone-s{seed}"  # as results.csv spells it
    return {
        "run_id": run_id,
        "model_label": "lenet5",
        "pool": pool,
        "padding": "same",
        "padding_mode": context,
        "precision": "32-true",
        "devices": 1,
        "augment": "none",
        "seed": seed,
        "status": status,
        "test_acc": acc,
    }


def test_report_comparisons_pair_rows_by_seed_with_shuffled_and_missing_seeds() -> None:
    rows = [_row("max", s, v) for s, v in ARM_B.items()]
    rows += [_row("avg", s, v) for s, v in ARM_A.items()]
    rows.insert(1, _row("max", 2, None, status="failed"))  # seed 2 failed in B: not a partner either
    (row,) = comparisons(rows, "pool")
    assert (row.comp.a, row.comp.b) == ("avg", "max")  # "other − reference"
    assert row.comp.diff.n == 3
    assert row.comp.diff.mean == pytest.approx(sum(BY_SEED) / 3)
    assert row.comp.diff.std == pytest.approx(0.001)


def test_benjamini_hochberg_step_up_pass_changes_q_values() -> None:
    p = [0.041, 0.01, math.nan, 0.04, 0.012]
    # m = 4; sorted 0.01, 0.012, 0.04, 0.041 → m·p/rank = 0.04, 0.024, 0.0533, 0.041
    # running minimum from the top: 0.041, 0.041, 0.024, 0.024 (ranks 4, 3, 2, 1)
    q = benjamini_hochberg(p)
    assert [q[i] for i in (0, 1, 3, 4)] == pytest.approx([0.041, 0.024, 0.041, 0.024])
    assert math.isnan(q[2])
    # Holm: (m - rank + 1)·p = 0.04, 0.036, 0.08, 0.041 → running maximum 0.04, 0.04, 0.08, 0.08
    h = holm(p)
    assert [h[i] for i in (0, 1, 3, 4)] == pytest.approx([0.08, 0.04, 0.08, 0.04])
    assert math.isnan(h[2])
    assert benjamini_hochberg([0.5, 2.0 / 3.0]) == pytest.approx([2.0 / 3.0, 2.0 / 3.0])  # capped by the top p


def _arms_with_t(context: str, t: float) -> list[dict[str, Any]]:
    """Three seeds whose differences avg − max are 0.01 + s·(-1, 0, 1): paired t = 0.01·√3 / s."""
    s = 0.01 * math.sqrt(3) / t
    rows = []
    for seed, step in zip((5, 6, 7), (-1, 0, 1)):
        rows += [_row("max", seed, 0.9, context), _row("avg", seed, 0.9 + 0.01 + s * step, context)]
    return rows


def test_report_family_adjusts_with_holm_and_bh_step_passes() -> None:
    # printed t-table quantiles with df = 2: 9.925 → p = 0.01 (two-sided), 1.886 → p = 0.2
    rows = _arms_with_t("zeros", 9.925) + _arms_with_t("reflect", 9.925) + _arms_with_t("circular", 1.886)
    fam = family(rows, ["pool"], ["test_acc"])
    by_context = {r.context["padding_mode"]: r for r in fam}
    assert [by_context[c].comp.p for c in ("zeros", "reflect", "circular")] == pytest.approx(
        [0.01, 0.01, 0.2], abs=3e-4
    )
    # BH: 3·0.01/1 = 0.03, 3·0.01/2 = 0.015, 3·0.2/3 = 0.2 → step-up gives both 0.01s the 0.015
    assert [by_context[c].bh_p for c in ("zeros", "reflect", "circular")] == pytest.approx(
        [0.015, 0.015, 0.2], abs=1e-3
    )
    # Holm: 3·0.01 = 0.03, 2·0.01 = 0.02 → step-down gives both 0.03; 1·0.2
    assert [by_context[c].holm_p for c in ("zeros", "reflect", "circular")] == pytest.approx(
        [0.03, 0.03, 0.2], abs=1e-3
    )


def test_report_family_draws_each_interval_at_its_holm_level_for_the_given_alpha() -> None:
    # p = 0.01, 0.01, 0.2 (as above). Holm at alpha = 0.2: 0.01 < 0.2/3 and 0.01 < 0.2/2 are rejected
    # and 0.2 is tested at 0.2/1: levels 0.2/3, 0.2/2, 0.2 (the default alpha 0.05 gives 0.05/3, 0.05/2, 0.05)
    rows = _arms_with_t("zeros", 9.925) + _arms_with_t("reflect", 9.925) + _arms_with_t("circular", 1.886)
    levels = sorted(r.level for r in family(rows, ["pool"], ["test_acc"], alpha=0.2))
    assert levels == pytest.approx([0.2 / 3, 0.2 / 2, 0.2])
    levels = sorted(r.level for r in family(rows, ["pool"], ["test_acc"]))
    assert levels == pytest.approx([0.05 / 3, 0.05 / 2, 0.05])


def test_a_pair_without_common_seeds_does_not_hide_the_other_pairs_of_its_context() -> None:
    # max and avg share no seed; min shares both of max's: min − max is still compared
    rows = [_row("max", 0, 0.90), _row("max", 1, 0.91), _row("avg", 2, 0.5), _row("avg", 3, 0.5)]
    rows += [_row("min", 0, 0.80), _row("min", 1, 0.83)]
    (row,) = comparisons(rows, "pool")
    assert (row.comp.a, row.comp.b) == ("min", "max") and row.comp.diff.mean == pytest.approx(-0.09)


def test_a_skipped_cell_is_left_out_on_either_side_and_each_arm_keeps_its_own_size() -> None:
    rows = [{**_row("max", s, v), "params": 61706, "macs": 1} for s, v in ARM_B.items()]
    rows += [{**_row("avg", s, v), "params": 136586, "macs": 2} for s, v in ARM_A.items()]
    (row,) = comparisons(rows, "pool")
    assert (row.size_a, row.size_b) == ((136586, 2), (61706, 1))  # avg's and max's, not swapped or lost
    max_cell = "lenet5-max-same-zeros-32-true-d1-augnone"  # near chance: left out as the reference (B) too
    assert comparisons(rows, "pool", skip={max_cell}) == []
    assert comparisons(rows, "pool", skip={max_cell.replace("max", "avg")}) == []
