"""Edges of a question's answer (``cnnbench.bench.questions``) on data built so right and wrong differ.

- a comparison with exactly two seeds is measured (one seed is not), with the t interval on 1 df;
- intervals ending exactly on 0 or on ±δ, with the module's documented conventions: ``a>b`` is an
  interval *above* 0 (it excludes 0) and equivalent means ``|A − B| < δ``, the interval strictly
  inside ±δ; a closed interval touching the edge is neither;
- contexts: the planned grid adds "no data" comparisons, ``where`` and both arms' keys are fixed,
  an arm matching two cells is an error naming both; a near-chance cell is "left out", not "no data";
- the question's α reaches the Holm levels, a raw metric is not rescaled, n to resolve is given only
  for a not-resolved verdict;
- every verdict and its reason for each expect × results mix.

Intervals are checked against scipy's Student t quantiles (independent of the report's own code).
"""

from __future__ import annotations

import math
import re
from typing import Any

import pytest

from cnnbench.bench.questions import (
    Contrast,
    Outcome,
    Question,
    QuestionError,
    _classify,
    _verdict,
    answer,
)
from cnnbench.bench.stats import Comparison, Summary

scipy_stats = pytest.importorskip("scipy.stats")

COORDS = ("pool", "padding")
MAX_VS_AVG = Contrast({"pool": "max"}, {"pool": "avg"})


def row(pool: str, padding: str, seed: int, value: float, metric: str = "score", **extra: Any) -> dict[str, Any]:
    """One finished run as results.csv holds it (``score``: a raw metric, not a fraction)."""
    run_id = f"lenet5-{pool}-{padding}-s{seed}"
    return {"run_id": run_id, "status": "ok", "pool": pool, "padding": padding, "seed": seed, metric: value, **extra}


def arms(a: list[float], b: list[float], padding: str = "valid", metric: str = "score") -> list[dict[str, Any]]:
    return [row("max", padding, s, v, metric) for s, v in enumerate(a)] + [
        row("avg", padding, s, v, metric) for s, v in enumerate(b)
    ]


def question(
    expect: str = "a>b",
    delta: float = 0.5,
    metric: str = "score",
    contrast: Contrast = MAX_VS_AVG,
    where: dict[str, str] | None = None,
) -> Question:
    return Question("q", "claim", metric, delta, expect, (contrast,), where or {})


def t_half(diffs: list[float], level: float) -> float:
    """Half-width of the two-sided (1 − level) Student t interval of the mean of ``diffs``."""
    n, mean = len(diffs), sum(diffs) / len(diffs)
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    return float(scipy_stats.t.ppf(1 - level / 2, n - 1)) * sd / math.sqrt(n)


# ------------------------------------------------------------------------------------- seeds
def test_two_seeds_measure_a_comparison_with_the_one_df_t_interval() -> None:
    ans = answer(question(), arms([1.0, 1.001], [0.0, 0.0]), COORDS)
    (o,) = ans.outcomes
    assert (o.comp.a, o.comp.b, o.comp.diff.n) == ("a", "b", 2)  # type: ignore[union-attr]
    half = t_half([1.0, 1.001], 0.05)  # 12.706 · 0.000707 / √2 = 0.00635
    assert o.level == 0.05 and o.half == pytest.approx(half, rel=1e-6)
    assert (o.low, o.high) == pytest.approx((1.0005 - half, 1.0005 + half), rel=1e-6)
    assert o.result == "a>b" and o.n_needed is None  # resolved: no n to resolve
    assert (ans.verdict, ans.reason, ans.n_needed) == ("supported", "all 1 comparisons as claimed", None)


def test_two_seeds_whose_interval_spans_zero_are_not_resolved_and_one_seed_cannot_be_measured() -> None:
    (o,) = answer(question(), arms([1.0, 1.2], [0.0, 0.0]), COORDS).outcomes
    assert o.high - o.low == pytest.approx(2 * t_half([1.0, 1.2], 0.05))  # [1.1 − 1.27, 1.1 + 1.27]
    assert o.result == "not resolved" and o.n_needed is not None
    ans = answer(question(), arms([1.0], [0.0, 0.0]), COORDS)
    assert [o.result for o in ans.outcomes] == ["not resolved (n < 2)"]


def test_the_questions_alpha_sets_the_level_of_the_interval() -> None:
    (o,) = answer(question(), arms([1.0, 1.2], [0.0, 0.0]), COORDS, alpha=0.2).outcomes
    assert o.level == 0.2 and o.half == pytest.approx(t_half([1.0, 1.2], 0.2), rel=1e-6)


def test_a_raw_metric_keeps_its_units_for_delta() -> None:
    # mean 0.30005, half 0.00064: inside ±0.5 in the metric's own units (÷100 or ÷2 would make it a>b)
    ans = answer(question(delta=0.5), arms([0.3, 0.3001], [0.0, 0.0]), COORDS)
    assert ans.scale == 1.0 and [o.result for o in ans.outcomes] == ["equivalent"]


# ------------------------------------------------------------------------------- boundaries
def outcome(n: int, low: float, high: float) -> Outcome:
    """An outcome whose interval is exactly [low, high] (binary fractions: no rounding)."""
    mean = (low + high) / 2
    comp = Comparison("a", "b", Summary(n=n, mean=mean, std=1.0, ci95=math.nan))
    return Outcome({}, {}, {}, comp, None, half=(high - low) / 2)


@pytest.mark.parametrize("n", [2, 5])  # two seeds are classified like five
@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (-0.25, 0.25, "equivalent"),
        (0.5, 1.0, "a>b"),
        (-1.0, -0.5, "a<b"),
        (0.25, 0.75, "a>b"),  # above 0 but not inside ±δ: a direction
        (-0.5, 0.25, "not resolved"),  # low on −δ: not strictly inside
        (-0.25, 0.5, "not resolved"),  # high on +δ: not strictly inside
        (0.0, 0.5, "not resolved"),  # low on 0 does not exclude 0, high on δ
        (-0.5, 0.0, "not resolved"),
        (0.0, 0.25, "equivalent"),  # touching 0 but inside ±δ
    ],
)
def test_interval_edges_on_zero_and_on_delta(n: int, low: float, high: float, expected: str) -> None:
    assert _classify(outcome(n, low, high), 0.5) == expected


def test_one_seed_and_missing_comparisons_are_labelled() -> None:
    assert _classify(outcome(1, 0.5, 1.0), 0.5) == "not resolved (n < 2)"
    assert _classify(Outcome({}, {}, {}, None, None), 0.5) == "no data"
    assert _classify(Outcome({}, {}, {}, None, None, note="left out: x"), 0.5) == "left out"


# --------------------------------------------------------------------------------- contexts
def test_a_near_chance_cell_is_left_out_not_missing() -> None:
    rows = [row("max", "valid", 0, 0.9, "consistency_zero")] + [
        row("avg", "valid", s, 0.8, "consistency_zero") for s in (0, 1)
    ]
    ans = answer(question(metric="consistency_zero"), rows, COORDS, skip={"lenet5-max-valid"})
    (o,) = ans.outcomes
    assert (o.comp, o.result, o.note) == (None, "left out", "left out: lenet5-max-valid is near chance accuracy")
    assert (ans.verdict, ans.reason, ans.n_needed) == (
        "not resolved",
        "no comparison has data; 1 of 1 without data",
        None,
    )


def test_planned_cells_that_never_ran_are_listed_with_no_data() -> None:
    rows = arms([1.0, 1.001], [0.0, 0.0])
    planned = [{"run_id": f"lenet5-{p}-{pad}-s{s}", "pool": p, "padding": pad, "seed": s}
               for p in ("max", "avg") for pad in ("valid", "same") for s in (0, 1)]  # fmt: skip
    ans = answer(question(), rows, COORDS, planned=planned)
    got = sorted((o.context["padding"], o.result, o.planned) for o in ans.outcomes)
    assert got == [("same", "no data", 2), ("valid", "a>b", 2)]
    assert ans.reason == "all 1 comparisons as claimed; 1 of 2 without data"
    assert [o.planned for o in answer(question(), rows, COORDS).outcomes] == [None]  # plan unknown


def test_where_restricts_the_contexts() -> None:
    coords = (*COORDS, "augment")
    rows = [{**r, "augment": "standard"} for r in arms([1.0, 1.001], [0.0, 0.0])]
    rows += [{**row("min", "valid", s, 0.5), "augment": "none"} for s in (0, 1)]  # matches where, not a or b
    rows += [{**r, "augment": "none"} for r in arms([1.0, 1.001], [0.0, 0.0], padding="same")]  # a or b, not where
    ans = answer(question(where={"padding": "valid"}), rows, coords)
    assert [(o.context, o.result) for o in ans.outcomes] == [({}, "a>b")]


def test_arms_fixing_different_coordinates_form_one_comparison() -> None:
    rows = [row("max", "valid", s, 1.0 + s / 1000) for s in (0, 1)] + [row("avg", "same", s, 0.0) for s in (0, 1)]
    contrast = Contrast({"pool": "max"}, {"padding": "same"})  # A: max (valid), B: same (avg)
    (o,) = answer(question(contrast=contrast), rows, COORDS).outcomes
    assert (o.context, o.result, o.comp.diff.n) == ({}, "a>b", 2)  # type: ignore[union-attr]


def test_an_arm_matching_two_cells_is_an_error_naming_both() -> None:
    rows = arms([1.0, 1.001], [0.0, 0.0]) + [row("max", "same", s, 0.5) for s in (0, 1)]
    message = "question q: arm {'pool': 'max'} matches several cells (lenet5-max-same, lenet5-max-valid)"
    with pytest.raises(QuestionError, match=re.escape(message)):
        answer(question(), rows, ("pool",))  # padding is no coordinate: nothing splits the two cells


def test_an_unknown_column_names_the_coordinates() -> None:
    q = question(contrast=Contrast({"pooling": "max"}, {"pooling": "avg"}))
    with pytest.raises(
        QuestionError, match=re.escape("'pooling' is not a results.csv column (coordinates: pool, padding)")
    ):
        answer(q, arms([1.0, 1.001], [0.0, 0.0]), COORDS)


def test_n_to_resolve_only_for_a_not_resolved_verdict() -> None:
    # valid: equivalent (mean 0.0005, tight); same: diffs +1, −1, open. The claim a>b is refuted.
    rows = arms([1.0, 1.0], [1.0, 0.999]) + arms([1.0, 0.0], [0.0, 1.0], padding="same")
    ans = answer(question(), rows, COORDS)
    results = {o.context["padding"]: o for o in ans.outcomes}
    assert (results["valid"].result, results["same"].result) == ("equivalent", "not resolved")
    assert results["same"].n_needed is not None and results["valid"].n_needed is None
    assert (ans.verdict, ans.n_needed) == ("refuted", None)
    rows = arms([1.0, 1.0], [], padding="valid")  # B never ran: no data at all
    ans = answer(question(), rows, COORDS)
    assert (ans.verdict, ans.n_needed, [o.result for o in ans.outcomes]) == ("not resolved", None, ["no data"])


# ---------------------------------------------------------------------------------- verdicts
VERDICTS = [
    ("a>b", ["a>b"], "supported", "all 1 comparisons as claimed"),
    ("a>b", ["a>b", "no data"], "supported", "all 1 comparisons as claimed; 1 of 2 without data"),
    ("a>b", ["left out"], "not resolved", "no comparison has data; 1 of 1 without data"),
    ("a>b", ["no data", "left out"], "not resolved", "no comparison has data; 2 of 2 without data"),
    ("a>b", ["a>b", "left out"], "supported", "all 1 comparisons as claimed; 1 of 2 without data"),
    ("a>b", ["a<b", "a>b"], "refuted", "the opposite direction in 1 of 2 comparisons; 1 as claimed"),
    (
        "a>b",
        ["equivalent", "a>b"],
        "refuted",
        "practically equivalent in 1 of 2 comparisons (adjusted CI inside ±δ); 1 as claimed",
    ),
    (
        "a>b",
        ["equivalent", "a<b", "a>b", "no data"],
        "refuted",
        "practically equivalent in 1 and the opposite direction in 1 of 3 comparisons (adjusted CI inside ±δ); "
        "1 as claimed; 1 of 4 without data",
    ),
    (
        "a>b",
        ["a>b", "not resolved", "not resolved (n < 2)", "no data"],
        "not resolved",
        "1 of 3 comparisons as claimed, 2 not resolved; 1 of 4 without data",
    ),
    ("a<b", ["a<b", "a<b"], "supported", "all 2 comparisons as claimed"),
    ("a<b", ["a>b"], "refuted", "the opposite direction in 1 of 1 comparisons; 0 as claimed"),
    ("a<b", ["a<b", "not resolved"], "not resolved", "1 of 2 comparisons as claimed, 1 not resolved"),
    ("differs", ["a>b", "a<b"], "supported", "all 2 comparisons as claimed"),
    ("differs", ["a<b", "not resolved"], "not resolved", "1 of 2 comparisons as claimed, 1 not resolved"),
    (
        "differs",
        ["equivalent", "a<b"],
        "refuted",
        "practically equivalent in 1 of 2 comparisons (adjusted CI inside ±δ); 1 as claimed",
    ),
]


@pytest.mark.parametrize(("expect", "results", "verdict", "reason"), VERDICTS)
def test_verdict_and_reason(expect: str, results: list[str], verdict: str, reason: str) -> None:
    assert _verdict(expect, results) == (verdict, reason)
