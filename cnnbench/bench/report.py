"""Turn a folder of run results into ``results.csv``, ``summary.csv``, ``REPORT.md`` and figures.

``REPORT.md`` opens with what did not run (planned cells without a result or with a failed
one, from the grid spec saved as ``grid.json``), then the **Answers**: each question of the
folder's ``questions.yaml`` (or ``--questions FILE``) with its verdict, adjusted within the
question (:mod:`cnnbench.bench.questions`). Then the cells (n ok / n planned, a flag near chance
accuracy), consistency per shift k, and the exploratory comparisons (every pair of an axis's
values, one Holm family; not the answers). The statistics live in :mod:`cnnbench.bench.analysis`
and :mod:`cnnbench.bench.questions`; this module only writes.

Example (not run as a doctest: it needs a finished grid's results folder):
    >>> paths = write_report("results/smoke")  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from cnnbench.bench import analysis as an
from cnnbench.bench.analysis import Analysis, analyse
from cnnbench.bench.questions import Answer, load_questions
from cnnbench.bench.stats import Summary, describe
from cnnbench.core.atomic import write_text_atomic

ALPHA = an.ALPHA
FORMATS = ("png", "pdf", "svg")
PER_K_TABLES = (
    ("consistency_zero_k", "Shift consistency (zero-fill) by largest offset k"),
    ("consistency_circular_k", "Shift consistency (circular) by largest offset k"),
    ("shift_acc_zero_k", "Accuracy under random zero-fill shift by largest offset k"),
    ("shift_acc_circular_k", "Accuracy under random circular shift by largest offset k"),
    ("diag_consistency_", "LEGACY diagonal consistency by shift s (original vs (+s, +s))"),
    ("diag_shift_acc_", "LEGACY accuracy under one (+s, +s) shift"),
)


# ---------------------------------------------------------------------------------- formatting
def _fmt(s: Summary, scale: float = 100.0, digits: int = 2) -> str:
    if math.isnan(s.mean):
        return "–"
    ci = "" if math.isnan(s.ci95) else f" ± {s.ci95 * scale:.{digits}f}"
    return f"{s.mean * scale:.{digits}f}{ci}"


def _cell_summary(c: dict[str, Any], metric: str) -> Summary:
    return Summary(c["n_ok"], c[f"{metric}_mean"], c[f"{metric}_std"], c[f"{metric}_ci95"])


def _size(params: Any, macs: Any) -> str:
    p = "–" if params is None else f"{int(params):,}"
    m = "–" if macs is None else f"{float(macs) / 1e6:.2f}M"
    return f"{p} / {m}"


def _p(value: float) -> str:
    return "–" if math.isnan(value) else ("<0.0001" if value < 1e-4 else f"{value:.4f}")


def _sel(sel: dict[str, str]) -> str:
    return ", ".join(v if k in ("pool", "model_label") else f"{k} {v}" for k, v in sel.items())


def _n_ok(n: int, planned: int | None) -> str:
    return f"{n}" if planned is None else f"{n}/{planned}"


def _table(header: list[str], body: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in body]


# ---------------------------------------------------------------------------------- sections
def what_ran(a: Analysis) -> list[str]:
    """The run count and, at the top, every planned cell that did not run fully or failed."""
    statuses: dict[str, int] = defaultdict(int)
    for r in a.rows:
        statuses[r["status"]] += 1
    missing = an.not_run(a.rows, a.planned)
    seeds = sorted({int(r["seed"]) for r in an.ok(a.rows)})
    planned = "plan unknown (no readable grid.json)" if a.planned is None else f"{len(a.planned)} planned"
    lines = [
        f"{planned}; {len(a.rows)} ran: "
        + ", ".join(f"{n} {s}" for s, n in sorted(statuses.items(), key=lambda kv: (kv[0] != "ok", kv[0])))
        + (f"; {sum(map(len, missing.values()))} never ran" if missing else "")
        + f"; seeds {', '.join(map(str, seeds)) or '–'}; read from `{a.source}`.",
        "",
    ]
    short = {
        c["cell"]: c
        for c in a.cells
        if (c["n_planned"] is not None and c["n_ok"] < c["n_planned"]) or c["n_ok"] < c["n"]
    }
    ids = sorted(set(missing) | set(short))
    if ids:
        body = []
        for cid in ids:
            c = short.get(cid)
            n_ok = c["n_ok"] if c else 0
            plan = c["n_planned"] if c else len(missing[cid])
            bad = sorted(
                {f"{r['status']} s{r['seed']}" for r in a.rows if an.cell_id(r) == cid and r["status"] != "ok"}
            )
            never = ", ".join(f"s{s}" for s in missing.get(cid, []))
            body.append([f"`{cid}`", _n_ok(n_ok, plan), never or "–", ", ".join(bad) or "–"])
        lines += ["## What did not run", "", f"{len(ids)} planned cells have fewer ok runs than planned.", ""]
        lines += _table(["cell", "n ok / n planned", "never ran", "did not finish"], body) + [""]
    return lines


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
            + (f" Where: {_sel(q.where)}." if q.where else "")
            + (f" Conditions: {q.conditions}." if q.conditions else ""),
            "",
        ]
        body = []
        for o in ans.outcomes:
            d = o.comp.diff if o.comp else None
            mean = "–" if d is None else f"{d.mean * ans.scale:+.2f}"
            ci = "–" if d is None or math.isnan(o.half) else f"[{o.low * ans.scale:+.2f}, {o.high * ans.scale:+.2f}]"
            lvl = "–" if math.isnan(o.level) else f"{(1 - o.level) * 100:.2f}%"
            p = "–" if o.comp is None else _p(o.comp.p)
            nonzero = o.result == "equivalent" and (o.low > 0 or o.high < 0)  # resolved, but smaller than δ
            result = o.result + (" (≠ 0, below δ)" if nonzero else "") + (f" ({o.note})" if o.note else "")
            body.append(
                [
                    _sel(o.a),
                    _sel(o.b),
                    _sel(o.context) or "–",
                    _n_ok(d.n if d else 0, o.planned),
                    mean,
                    ci,
                    lvl,
                    p,
                    result,
                    str(o.n_needed or "–"),
                ]
            )
        lines += _table(
            ["A", "B", "context", "n ok / planned", "A − B", "adjusted CI", "level", "p", "result", "n to resolve"],
            body,
        ) + [""]
    return lines


def summary_table(answers: list[Answer]) -> list[str]:
    """One row per question (claim, conditions, every comparison's A − B and adjusted CI, verdict): the
    table the README's claims are copied from."""
    body = []
    for ans in answers:
        q, s = ans.question, ans.scale
        pairs = len({(_sel(o.a), _sel(o.b)) for o in ans.outcomes}) > 1
        numbers = []
        for o in ans.outcomes:
            label = ", ".join(x for x in (f"{_sel(o.a)} − {_sel(o.b)}" if pairs else "", _sel(o.context)) if x)
            if o.comp is None:
                value = o.result
            elif math.isnan(o.half):
                value = f"{o.comp.diff.mean * s:+.2f} (n = {o.comp.diff.n}, no interval)"
            else:
                value = f"{o.comp.diff.mean * s:+.2f} [{o.low * s:+.2f}, {o.high * s:+.2f}]"
            numbers.append(f"{label}: {value}" if label else value)
        what = f"{_sel(ans.outcomes[0].a)} − {_sel(ans.outcomes[0].b)}" if ans.outcomes and not pairs else "A − B"
        unit = f"{q.metric}, {what}" + (" (points)" if s == 100 else "") + f", δ = {q.delta:g}"
        verdict = f"**{ans.verdict}** ({ans.reason})" + (
            f"; n ≈ {ans.n_needed} seeds would resolve it" if ans.n_needed else ""
        )
        body.append([f"[{q.id}](#{q.id}): {q.claim}", q.conditions or "–", f"{unit}: " + "; ".join(numbers), verdict])
    return _table(["claim", "conditions", "A − B, adjusted CI (Holm within the question)", "verdict"], body)


def reading_notes(a: Analysis) -> list[str]:
    good = an.ok(a.rows)
    shifts = sorted({int(k.rsplit("k", 1)[1]) for k in an.per_k_columns(a.rows) if k.startswith("consistency_")})
    lines = [
        "## How to read this",
        "",
        "Values are percent. A cell's value is the mean over its ok seeds ± the half-width of the 95% Student-t "
        "interval (unpaired: for comparisons use the paired tables); `n` is ok runs / planned runs. `params / "
        "MACs` is the size of each cell's model (MACs per image, one forward pass).",
        "",
    ]
    for m in a.metrics:
        meaning = m.meaning.replace("the k measured", f"k ∈ {{{', '.join(map(str, shifts))}}}") if shifts else m.meaning
        lines.append(f"- **{m.label}**: {meaning}.")
    if an.present(a.rows, "edge_lost_ink"):
        lost = max(float(r["edge_lost_ink"]) for r in good if r.get("edge_lost_ink") is not None)
        px = describe([float(r["edge_shift_px"]) for r in good if r.get("edge_shift_px") is not None]).mean
        lines.append(
            f"- Edge probe: lost-ink fraction {lost:.6f} (largest over runs); content moved {px:.1f} px on average"
            + (
                " — nearly nothing moved: these images have no background, the probe says little here."
                if px < 1
                else "."
            )
        )
    for f in a.folds:
        lines.append(
            f"- **{f.variant} fill equals {f.into} fill** within {an.IDENTICAL_TOLERANCE * 100:g} point(s) on "
            f"every run and every one of its {len(f.columns)} columns (largest difference "
            f"{f.largest * 100:.2f} points): reported once, as {f.into} fill."
        )
    if a.chance is not None:
        lines.append(
            f"- Chance accuracy is {a.chance * 100:g}%. Cells within {a.chance_margin * 100:g} points of it "
            f"are marked *near chance* and left out of every consistency comparison (a model that predicts "
            f"almost one class is trivially consistent): {len(a.low_cells)} cells here."
        )
    if good and max(c["n_ok"] for c in a.cells) < 2:
        lines.append("- **No interval (1 seed)**: every cell has one ok run, so no interval or test can be computed.")
    absent = [
        text
        for key, text in an.NEW_METRICS.items()
        if not any(k.startswith(key) for r in good for k in r if r[k] is not None)
    ]
    predate = len(absent) == len(an.NEW_METRICS)
    unrecorded = sum(1 for r in a.rows if not r.get("augment_recorded"))
    if absent:
        lead = "**Absent from these results** (they predate them)" if predate else "Not measured by this grid"
        lines += ["", f"{lead}: " + "; ".join(absent) + "."]
    if unrecorded:
        lines.append(
            f"The augmentation preset was not recorded for {unrecorded} runs (written before the "
            f"`augment` axis); they are shown as `{a.rows[0]['augment']}`, the data set's default then."
        )
    return lines + [""]


def cells_section(a: Analysis) -> list[str]:
    show = [c for c in a.coords if c in ("model_label", "pool", "padding") or c in an.varying(a.rows, a.coords)]
    header = [c.replace("model_label", "model") for c in show] + ["params / MACs", "n"] + [m.label for m in a.metrics]
    body = []
    for c in a.cells:
        status = "" if c["statuses"] == "ok" else f" ({c['statuses']})"
        flag = " ⚠ near chance" if c["cell"] in a.low_cells else ""
        vals = [str(c[k]) for k in show] + [
            _size(c["params"], c["macs"]),
            _n_ok(c["n_ok"], c["n"] if c["n_planned"] is None else c["n_planned"]) + status + flag,
        ]
        body.append(vals + [_fmt(_cell_summary(c, m.key), 100 if an.is_fraction(m.key) else 1) for m in a.metrics])
    lines = ["## Cells", ""] + _table(header, body)
    for group, title, meaning in an.GROUPS:
        cols = a.groups.get(group) or []
        if cols:
            head = [c.replace("model_label", "model") for c in show] + cols
            rows = [
                [str(c[k]) for k in show] + [_fmt(_cell_summary(c, k), 100 if an.is_fraction(k) else 1) for k in cols]
                for c in a.cells
            ]
            lines += [
                "",
                f"## {title}",
                "",
                f"{meaning[0].upper()}{meaning[1:]}; percent, mean ± 95% CI half-width.",
                "",
            ]
            lines += _table(head, rows)
    folded = an.folded_columns(a.folds)
    for prefix, title in PER_K_TABLES:
        cols = [
            k
            for k in an.per_k_columns(a.rows)
            if k.startswith(prefix) and k[len(prefix) :].isdigit() and k not in folded
        ]
        if not cols:
            continue
        cols.sort(key=lambda k: int(k[len(prefix) :]))
        unit = "k" if prefix.endswith("_k") else "s"
        head = [c.replace("model_label", "model") for c in show] + [f"{unit}={k[len(prefix) :]}" for k in cols]
        rows = [[str(c[k]) for k in show] + [_fmt(_cell_summary(c, k)) for k in cols] for c in a.cells]
        lines += ["", f"## {title}", ""] + _table(head, rows)
    return lines


def exploratory_section(a: Analysis) -> list[str]:
    fam, r = a.family, a.resolution * 100
    if not fam:
        return []
    n_holm, n_bh, n_raw = (
        sum(c.holm_p < ALPHA for c in fam),
        sum(c.bh_p < ALPHA for c in fam),
        sum(c.comp.significant for c in fam),
    )
    lines = [
        "",
        "## Exploratory comparisons",
        "",
        f"Every pair of values of each axis, other coordinates equal, paired by seed: one family of {len(fam)}, "
        "**not** the answers above (those are tested within their question). `95% CI` is uncorrected; `Holm CI` "
        "is drawn at each comparison's Holm level (it excludes 0 exactly when Holm rejects). Verdict: `differs` "
        f"= Holm-adjusted p < {ALPHA:g}; `uncorrected only` = the raw CI excludes 0, Holm does not; `within "
        f"±{r:g}` = the Holm CI lies inside ±{r:g} points (the same adjusted level as `differs`); `not resolved` "
        f"= neither. Of {len(fam)} comparisons {n_raw} have a raw CI excluding 0 (about "
        f"{ALPHA * len(fam):.0f} expected by chance alone), {n_bh} survive Benjamini–Hochberg at 5% FDR, "
        f"{n_holm} survive Holm.",
    ]
    shown = set(an.varying(a.rows, a.coords)) | {"model_label", "padding", "pool"}
    labels = {m.key: m.label for m in a.metrics}
    for axis in dict.fromkeys(c.axis for c in fam):
        for metric in dict.fromkeys(c.metric for c in fam if c.axis == axis):
            body = []
            for x in (c for c in fam if c.axis == axis and c.metric == metric):
                d = x.comp.diff
                size = "same" if x.size_a == x.size_b else f"{_size(*x.size_a)} vs {_size(*x.size_b)}"
                ci = "–" if math.isnan(d.ci95) else f"[{d.low * 100:+.2f}, {d.high * 100:+.2f}]"
                hci = "–" if math.isnan(x.half) else f"[{x.low * 100:+.2f}, {x.high * 100:+.2f}]"
                body.append(
                    [
                        ", ".join(v for k, v in x.context.items() if k in shown),
                        x.comp.a,
                        x.comp.b,
                        size,
                        str(d.n),
                        f"{d.mean * 100:+.2f}",
                        ci,
                        hci,
                        _p(x.comp.p),
                        _p(x.holm_p),
                        _p(x.bh_p),
                        _verdict(x, a.resolution),
                    ]
                )
            lines += ["", f"### {axis}: {labels.get(metric, metric)} (A − B, points, paired by seed)", ""]
            lines += _table(
                [
                    "context",
                    "A",
                    "B",
                    "params / MACs (A vs B)",
                    "n",
                    "A − B",
                    "95% CI",
                    "Holm CI",
                    "p",
                    "Holm p",
                    "BH q",
                    "verdict",
                ],
                body,
            )
    return lines


def _verdict(x: an.Row, resolution: float) -> str:
    if x.comp.diff.n < 2 or math.isnan(x.half):
        return "not resolved (n < 2)"
    if x.holm_p < ALPHA:
        return "differs"
    if x.comp.significant:
        return "uncorrected only"
    if -resolution < x.low and x.high < resolution:
        return f"within ±{resolution * 100:g}"
    return "not resolved"


def render_markdown(a: Analysis, figures: list[Path] | None = None) -> str:
    """The REPORT.md text."""
    lines = [
        f"# Ablation report: {a.name}",
        "",
        *what_ran(a),
        *answers_section(a),
        *reading_notes(a),
        *cells_section(a),
    ]
    lines += exploratory_section(a)
    problems = [r for r in a.rows if r["status"] != "ok"]
    if problems:
        lines += ["", "## Runs that did not finish", ""]
        lines += _table(
            ["run", "status", "reason"],
            [
                [
                    str(r["run_id"]),
                    str(r["status"]),
                    str(r.get("error") or "").splitlines()[0][:160] if r.get("error") else "",
                ]
                for r in problems
            ],
        )
    if figures:
        lines += ["", "## Figures", ""] + [f"- [`{p.name}`]({p.name})" for p in figures]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------- files
def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buffer.getvalue())


def write_report(
    out: str | Path,
    name: str | None = None,
    plots: bool = True,
    resolution: float = 0.005,
    questions: str | Path | None = None,
    fmt: str = "png",
    chance_margin: float = an.CHANCE_MARGIN,
) -> dict[str, Path]:
    """Write results.csv, summary.csv, REPORT.md (and figures in ``fmt``) into ``out``.

    ``questions`` defaults to ``out/questions.yaml`` when it exists. ``results.csv`` is rewritten
    only from ``results/*.json``; a folder that holds only a ``results.csv`` (a committed report)
    is read from it and keeps it untouched.
    """
    out = Path(out)
    if fmt not in FORMATS:
        raise ValueError(f"figure format {fmt!r}: valid: {', '.join(FORMATS)}")
    qpath = Path(questions) if questions else out / "questions.yaml"
    qs = load_questions(qpath) if questions or qpath.is_file() else None
    a = analyse(out, name, qs, resolution, chance_margin)
    paths = {"results": out / "results.csv", "summary": out / "summary.csv", "report": out / "REPORT.md"}
    if a.source == "results":
        _write_csv(paths["results"], a.rows)
    _write_csv(paths["summary"], a.cells)
    figures: list[Path] = []
    if plots:
        from cnnbench.bench.plots import plot

        figures = plot(a, out, fmt)
        paths.update({p.stem: p for p in figures})
    write_text_atomic(paths["report"], render_markdown(a, figures))
    return paths
