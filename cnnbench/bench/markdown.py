"""Markdown building blocks of REPORT.md: number formats, tables, and the Answers section.

Example:
    >>> from cnnbench.bench.stats import describe
    >>> table(["pool", "acc"], [["max", fmt_summary(describe([0.9, 0.92, 0.94]))]])
    ['| pool | acc |', '|---|---|', '| max | 92.00 ± 4.97 |']
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from cnnbench.bench.family import ALPHA
from cnnbench.bench.questions import Answer
from cnnbench.bench.stats import Summary

if TYPE_CHECKING:
    from cnnbench.bench.analysis import Analysis

__all__ = [
    "answer_block",
    "answers_section",
    "cell_summary",
    "fmt_summary",
    "n_ok_text",
    "p_text",
    "selection",
    "size_text",
    "summary_table",
    "table",
]


def fmt_summary(s: Summary, scale: float = 100.0, digits: int = 2) -> str:
    if math.isnan(s.mean):
        return "–"
    ci = "" if math.isnan(s.ci95) else f" ± {s.ci95 * scale:.{digits}f}"
    return f"{s.mean * scale:.{digits}f}{ci}"


def cell_summary(c: dict[str, Any], metric: str) -> Summary:
    return Summary(c["n_ok"], c[f"{metric}_mean"], c[f"{metric}_std"], c[f"{metric}_ci95"])


def size_text(params: Any, macs: Any) -> str:
    p = "–" if params is None else f"{int(params):,}"
    m = "–" if macs is None else f"{float(macs) / 1e6:.2f}M"
    return f"{p} / {m}"


def p_text(value: float) -> str:
    return "–" if math.isnan(value) else ("<0.0001" if value < 1e-4 else f"{value:.4f}")


def selection(sel: dict[str, str]) -> str:
    return ", ".join(v if k in ("pool", "model_label") else f"{k} {v}" for k, v in sel.items())


def n_ok_text(n: int, planned: int | None) -> str:
    return f"{n}" if planned is None else f"{n}/{planned}"


def table(header: list[str], body: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in body]


def answers_section(a: Analysis) -> list[str]:
    """One block per question: claim, verdict, the adjusted comparisons, conditions."""
    if not a.answers:
        return []
    lines = [
        "## Answers",
        "",
        "Each question's comparisons (A − B, paired by seed) form one family, adjusted with **Holm** at α = "
        f"{ALPHA:g} within that question only. Each interval is a t-interval at its Holm level (α/(m − i) for "
        "the i-th smallest p, held at the first step Holm does not reject): it excludes 0 exactly when Holm "
        "rejects, and the same interval decides practical equivalence (inside ±δ). Verdict: *supported* = every "
        "comparison with data in the claimed direction; *refuted* = one is practically equivalent or resolved "
        "the other way; *not resolved* = otherwise. `n to resolve` = the smallest n with "
        "t(α/m, n − 1) · SD / √n < max(|mean|, δ − |mean|): the seeds at which that comparison's interval "
        "would exclude 0 or fit inside ±δ if its mean and SD stayed.",
        "",
    ]
    lines += summary_table(a.answers) + [""]
    for ans in a.answers:
        lines += answer_block(ans)
    return lines


def summary_table(answers: list[Answer]) -> list[str]:
    """One row per question (claim, conditions, every comparison's A − B and adjusted CI, verdict): the
    table the README's claims are copied from."""
    body = []
    for ans in answers:
        q, s = ans.question, ans.scale
        pairs = len({(selection(o.a), selection(o.b)) for o in ans.outcomes}) > 1
        numbers = []
        for o in ans.outcomes:
            label = ", ".join(
                x for x in (f"{selection(o.a)} − {selection(o.b)}" if pairs else "", selection(o.context)) if x
            )
            if o.comp is None:
                value = o.result
            elif math.isnan(o.half):
                value = f"{o.comp.diff.mean * s:+.2f} (n = {o.comp.diff.n}, no interval)"
            else:
                value = f"{o.comp.diff.mean * s:+.2f} [{o.low * s:+.2f}, {o.high * s:+.2f}]"
            numbers.append(f"{label}: {value}" if label else value)
        what = (
            f"{selection(ans.outcomes[0].a)} − {selection(ans.outcomes[0].b)}"
            if ans.outcomes and not pairs
            else "A − B"
        )
        unit = f"{q.metric}, {what}" + (" (points)" if s == 100 else "") + f", δ = {q.delta:g}"
        verdict = f"**{ans.verdict}** ({ans.reason})" + (
            f"; n ≈ {ans.n_needed} seeds would resolve it" if ans.n_needed else ""
        )
        body.append([f"[{q.id}](#{q.id}): {q.claim}", q.conditions or "–", f"{unit}: " + "; ".join(numbers), verdict])
    return table(["claim", "conditions", "A − B, adjusted CI (Holm within the question)", "verdict"], body)


def answer_block(ans: Answer) -> list[str]:
    """A question's claim, verdict, metric and conditions, and its table of adjusted comparisons."""
    lines: list[str] = []
    q, unit = ans.question, "points" if ans.scale == 100 else ""
    lines += [
        f'<a id="{q.id}"></a>',
        "",
        f"### {q.id}: {q.claim}",
        "",
        f"**{ans.verdict}**: {ans.reason}."
        + (f" About n = {ans.n_needed} seeds would resolve it." if ans.n_needed else ""),
        "",
        f"Metric `{q.metric}` (A − B{', ' + unit if unit else ''}), δ = {q.delta:g}, expected {q.expect}; "
        f"Holm over m = {ans.m}."
        + (f" Where: {selection(q.where)}." if q.where else "")
        + (f" Conditions: {q.conditions}." if q.conditions else ""),
        "",
    ]
    body = []
    for o in ans.outcomes:
        d = o.comp.diff if o.comp else None
        mean = "–" if d is None else f"{d.mean * ans.scale:+.2f}"
        ci = "–" if d is None or math.isnan(o.half) else f"[{o.low * ans.scale:+.2f}, {o.high * ans.scale:+.2f}]"
        lvl = "–" if math.isnan(o.level) else f"{(1 - o.level) * 100:.2f}%"
        p = "–" if o.comp is None else p_text(o.comp.p)
        nonzero = o.result == "equivalent" and (o.low > 0 or o.high < 0)  # resolved, but smaller than δ
        result = o.result + (" (≠ 0, below δ)" if nonzero else "") + (f" ({o.note})" if o.note else "")
        body.append(
            [
                selection(o.a),
                selection(o.b),
                selection(o.context) or "–",
                n_ok_text(d.n if d else 0, o.planned),
                mean,
                ci,
                lvl,
                p,
                result,
                str(o.n_needed or "–"),
            ]
        )
    lines += table(
        ["A", "B", "context", "n ok / planned", "A − B", "adjusted CI", "level", "p", "result", "n to resolve"],
        body,
    ) + [""]
    return lines
