"""Questions as data: each claim a grid is run to test, its contrasts, and one verdict.

A questions file (``<grid>.questions.yaml`` beside a grid, ``questions.yaml`` in a results folder)::

    questions:
      - id: max-vs-avg-accuracy
        claim: "Max pooling gives higher test accuracy than average pooling"
        metric: test_acc          # a results.csv column; fractions are shown as percentage points
        delta: 0.5                # resolution in displayed units: |A − B| < delta is practically equivalent
        expect: a>b               # a>b, a<b or differs
        where: {augment: standard}
        contrasts:
          - {a: {pool: max}, b: {pool: avg}}
        conditions: "modern LeNet-5, MNIST, valid padding, 3 epochs"

**Expansion.** A contrast compares the runs matching ``where`` + ``a`` with those matching
``where`` + ``b``, paired by seed. Every other coordinate that varies among those runs and is
fixed by neither ``where`` nor ``a``/``b`` (e.g. padding above) splits the contrast into one
comparison per value ("context"), all other coordinates equal; ``where`` fixes a coordinate to
stop that. Contexts come from the planned grid too, so a comparison whose cells did not run is
listed with "no data".

**Adjustment.** The comparisons of one question form its family (m = their number with n ≥ 2):
Holm at α = 0.05 within the question, never across questions. Each comparison's interval is
drawn at its Holm level (:func:`cnnbench.bench.stats.holm_levels`), so it excludes 0 exactly when
Holm rejects, and the same interval decides practical equivalence (inside ±δ).

**Verdict** (one per question). Each comparison is ``a>b`` (interval above 0), ``a<b`` (below 0),
``equivalent`` (inside ±δ, which wins over a direction smaller than δ) or ``not resolved``. The
claim is *supported* when every comparison with data goes its way (``differs``: either
direction), *refuted* when one is resolved against it (practically equivalent, or the opposite
direction), else *not resolved*, with the seeds n that would resolve every open comparison if
its mean and SD stayed (:func:`cnnbench.bench.stats.seeds_to_resolve`, at level α/m).

Example:
    >>> qs = parse_questions({"questions": [{"id": "q", "claim": "c", "metric": "test_acc", "delta": 0.5,
    ...     "expect": "a>b", "contrasts": [{"a": {"pool": "max"}, "b": {"pool": "avg"}}]}]})
    >>> qs[0].id, qs[0].contrasts[0].a
    ('q', {'pool': 'max'})
"""

from __future__ import annotations

import math
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cnnbench.bench.family import ALPHA
from cnnbench.bench.metrics import is_fraction, needs_accuracy
from cnnbench.bench.rows import cell_id, ok
from cnnbench.bench.stats import Comparison, half_width, holm_levels, paired, seeds_to_resolve

EXPECT = ("a>b", "a<b", "differs")
KEYS = ("id", "claim", "metric", "delta", "expect", "where", "contrasts", "conditions")


class QuestionError(ValueError):
    """A questions file that cannot be answered, with the file, question and key named."""


@dataclass(frozen=True)
class Contrast:
    a: dict[str, str]
    b: dict[str, str]


@dataclass(frozen=True)
class Question:
    id: str
    claim: str
    metric: str
    delta: float  # in displayed units (points for fractions)
    expect: str
    contrasts: tuple[Contrast, ...]
    where: dict[str, str] = field(default_factory=dict)
    conditions: str = ""


def _coords(raw: Any, where: str, fail: Any) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not raw:
        raise fail(where, "a mapping of results.csv columns to values, e.g. {pool: max}")
    return {str(k): str(v) for k, v in raw.items()}


def parse_questions(raw: Any, source: str = "<dict>") -> list[Question]:
    """Validate a parsed questions file; every error is one line naming the file, question and key."""

    def fail(key: str, message: str) -> QuestionError:
        return QuestionError(f"{source}: {key}: {message}")

    items = raw.get("questions") if isinstance(raw, dict) else None
    if not isinstance(items, list) or not items:
        raise fail("questions", "give a non-empty list of questions")
    out, seen = [], set()
    for i, q in enumerate(items):
        name = q.get("id") if isinstance(q, dict) else None
        where = f"questions[{i}]" if not name else str(name)
        if not isinstance(q, dict):
            raise fail(where, "a question is a mapping")
        unknown = sorted(set(q) - set(KEYS))
        if unknown:
            raise fail(f"{where}.{unknown[0]}", f"unknown key; valid keys: {', '.join(KEYS)}")
        for key in ("id", "claim", "metric", "delta", "expect", "contrasts"):
            if key not in q:
                raise fail(f"{where}.{key}", "missing (required)")
        if name in seen:
            raise fail(f"{where}.id", "duplicate id")
        seen.add(name)
        if q["expect"] not in EXPECT:
            raise fail(f"{where}.expect", f"unknown value {q['expect']!r}; valid: {', '.join(EXPECT)}")
        if not isinstance(q["delta"], int | float) or isinstance(q["delta"], bool) or q["delta"] <= 0:
            raise fail(f"{where}.delta", f"a positive number (displayed units), got {q['delta']!r}")
        if not isinstance(q["contrasts"], list) or not q["contrasts"]:
            raise fail(f"{where}.contrasts", "a non-empty list of {a: {...}, b: {...}}")
        contrasts = []
        for j, c in enumerate(q["contrasts"]):
            if not isinstance(c, dict) or set(c) != {"a", "b"}:
                raise fail(f"{where}.contrasts[{j}]", "give exactly a: {...} and b: {...}")
            a, b = (
                _coords(c["a"], f"{where}.contrasts[{j}].a", fail),
                _coords(c["b"], f"{where}.contrasts[{j}].b", fail),
            )
            if a == b:
                raise fail(f"{where}.contrasts[{j}]", "a and b select the same runs")
            contrasts.append(Contrast(a, b))
        out.append(
            Question(
                str(name),
                str(q["claim"]),
                str(q["metric"]),
                float(q["delta"]),
                q["expect"],
                tuple(contrasts),
                _coords(q.get("where"), f"{where}.where", fail),
                str(q.get("conditions") or ""),
            )
        )
    return out


def load_questions(path: str | Path) -> list[Question]:
    """Read and validate a questions YAML file."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise QuestionError(f"{path}: no such questions file") from None
    except yaml.YAMLError as err:
        raise QuestionError(f"{path}: not valid YAML: {str(err).splitlines()[0]}") from None
    return parse_questions(raw, str(path))


# ---------------------------------------------------------------------------------- answers
@dataclass
class Outcome:
    """One comparison of a question: A − B in one context, with its Holm-level interval and result."""

    a: dict[str, str]
    b: dict[str, str]
    context: dict[str, str]
    comp: Comparison | None
    planned: int | None  # seeds planned for both arms (None: plan unknown)
    note: str = ""
    level: float = math.nan
    half: float = math.nan
    result: str = "no data"
    n_needed: int | None = None

    @property
    def low(self) -> float:
        return math.nan if self.comp is None else self.comp.diff.mean - self.half

    @property
    def high(self) -> float:
        return math.nan if self.comp is None else self.comp.diff.mean + self.half


@dataclass
class Answer:
    question: Question
    outcomes: list[Outcome]
    verdict: str
    reason: str
    scale: float  # 100 for fractions (points), else 1
    m: int  # comparisons in the Holm family
    n_needed: int | None = None


def _matches(row: dict[str, Any], where: dict[str, str]) -> bool:
    return all(str(row.get(k)) == v for k, v in where.items())


def _check_columns(q: Question, rows: list[dict[str, Any]], coords: tuple[str, ...]) -> None:
    columns = {k for r in rows for k in r}
    if q.metric not in columns:
        raise QuestionError(f"question {q.id}: metric {q.metric!r} is not a results.csv column")
    for sel in (q.where, *(c.a for c in q.contrasts), *(c.b for c in q.contrasts)):
        for key in sel:
            if key not in columns:
                raise QuestionError(
                    f"question {q.id}: {key!r} is not a results.csv column (coordinates: {', '.join(coords)})"
                )


def _outcomes(
    q: Question,
    rows: list[dict[str, Any]],
    coords: tuple[str, ...],
    planned: list[dict[str, Any]] | None,
    skip: AbstractSet[str],
) -> list[Outcome]:
    out = []
    for c in q.contrasts:
        fixed = set(q.where) | set(c.a) | set(c.b)
        free = [k for k in coords if k not in fixed]
        pool = [r for r in [*rows, *(planned or [])] if _matches(r, q.where) and (_matches(r, c.a) or _matches(r, c.b))]
        contexts = sorted({tuple(str(r.get(k)) for k in free) for r in pool})
        for context in contexts:
            ctx = dict(zip(free, context))
            arms, note = [], ""
            for sel in (c.a, c.b):
                mine = [r for r in ok(rows) if _matches(r, {**q.where, **ctx, **sel}) and r.get(q.metric) is not None]
                if len({cell_id(r) for r in mine}) > 1:
                    raise QuestionError(
                        f"question {q.id}: arm {sel} matches several cells ({', '.join(sorted({cell_id(r) for r in mine}))}); fix the rest with where, a or b"
                    )
                if mine and needs_accuracy(q.metric) and cell_id(mine[0]) in skip:
                    note, mine = f"left out: {cell_id(mine[0])} is near chance accuracy", []
                arms.append({int(r["seed"]): float(r[q.metric]) for r in mine})
            n_plan = None
            if planned is not None:
                n_plan = min(sum(_matches(p, {**q.where, **ctx, **sel}) for p in planned) for sel in (c.a, c.b))
            shown = {k: v for k, v in ctx.items() if len({str(r.get(k)) for r in pool}) > 1}
            out.append(Outcome(c.a, c.b, shown, paired("a", arms[0], "b", arms[1]), n_plan, note))
    return out


def _classify(o: Outcome, delta: float) -> str:
    if o.comp is None:
        return "left out" if o.note else "no data"
    if o.comp.diff.n < 2:
        return "not resolved (n < 2)"
    if -delta < o.low and o.high < delta:
        return "equivalent"
    return "a>b" if o.low > 0 else "a<b" if o.high < 0 else "not resolved"


def answer(
    q: Question,
    rows: list[dict[str, Any]],
    coords: tuple[str, ...],
    planned: list[dict[str, Any]] | None = None,
    skip: AbstractSet[str] = frozenset(),
    alpha: float = ALPHA,  # type: ignore[assignment]
) -> Answer:
    """The question's comparisons, adjusted within the question (Holm), and its one verdict."""
    _check_columns(q, rows, coords)
    outcomes = _outcomes(q, rows, coords, planned, skip)
    scale = 100.0 if is_fraction(q.metric) else 1.0
    delta = q.delta / scale
    ps = [o.comp.p if o.comp is not None else math.nan for o in outcomes]
    m = sum(not math.isnan(p) for p in ps)
    for o, level in zip(outcomes, holm_levels(ps, alpha)):
        if o.comp is not None:
            o.level, o.half = level, half_width(o.comp.diff, level)
        o.result = _classify(o, delta)
        if o.result.startswith("not resolved") and o.comp is not None and m:
            o.n_needed = seeds_to_resolve(o.comp.diff.mean, o.comp.diff.std, delta, alpha / m)
    verdict, reason = _verdict(q.expect, [o.result for o in outcomes])
    needed = [o.n_needed for o in outcomes if o.result.startswith("not resolved")]
    n_needed = None if verdict != "not resolved" or None in needed or not needed else max(needed)  # type: ignore[type-var]
    return Answer(q, outcomes, verdict, reason, scale, m, n_needed)


def _verdict(expect: str, results: list[str]) -> tuple[str, str]:
    measured = [r for r in results if r not in ("no data", "left out")]
    unmeasured = len(results) - len(measured)
    tail = f"; {unmeasured} of {len(results)} without data" if unmeasured else ""
    if not measured:
        return "not resolved", f"no comparison has data{tail}"
    support = {"a>b": ("a>b",), "a<b": ("a<b",), "differs": ("a>b", "a<b")}[expect]
    opposite = {"a>b": "a<b", "a<b": "a>b", "differs": None}[expect]
    n_eq = results.count("equivalent")
    n_opp = results.count(opposite) if opposite else 0
    n_sup = sum(r in support for r in measured)
    if n_eq or n_opp:
        parts = ([f"practically equivalent in {n_eq}"] if n_eq else []) + (
            [f"the opposite direction in {n_opp}"] if n_opp else []
        )
        eq = " (adjusted CI inside ±δ)" if n_eq else ""
        return "refuted", f"{' and '.join(parts)} of {len(measured)} comparisons{eq}; {n_sup} as claimed{tail}"
    if n_sup == len(measured):
        return "supported", f"all {len(measured)} comparisons as claimed{tail}"
    return (
        "not resolved",
        f"{n_sup} of {len(measured)} comparisons as claimed, {len(measured) - n_sup} not resolved{tail}",
    )
