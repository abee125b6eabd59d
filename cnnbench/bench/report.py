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
from cnnbench.bench.markdown import (
    answers_section,
    cell_summary,
    fmt_summary,
    n_ok_text,
    p_text,
    size_text,
    table,
)
from cnnbench.bench.questions import load_questions
from cnnbench.bench.stats import describe
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
            body.append([f"`{cid}`", n_ok_text(n_ok, plan), never or "–", ", ".join(bad) or "–"])
        lines += ["## What did not run", "", f"{len(ids)} planned cells have fewer ok runs than planned.", ""]
        lines += table(["cell", "n ok / n planned", "never ran", "did not finish"], body) + [""]
    return lines


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
            size_text(c["params"], c["macs"]),
            n_ok_text(c["n_ok"], c["n"] if c["n_planned"] is None else c["n_planned"]) + status + flag,
        ]
        body.append(
            vals + [fmt_summary(cell_summary(c, m.key), 100 if an.is_fraction(m.key) else 1) for m in a.metrics]
        )
    lines = ["## Cells", ""] + table(header, body)
    for group, title, meaning in an.GROUPS:
        cols = a.groups.get(group) or []
        if cols:
            head = [c.replace("model_label", "model") for c in show] + cols
            rows = [
                [str(c[k]) for k in show]
                + [fmt_summary(cell_summary(c, k), 100 if an.is_fraction(k) else 1) for k in cols]
                for c in a.cells
            ]
            lines += [
                "",
                f"## {title}",
                "",
                f"{meaning[0].upper()}{meaning[1:]}; percent, mean ± 95% CI half-width.",
                "",
            ]
            lines += table(head, rows)
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
        rows = [[str(c[k]) for k in show] + [fmt_summary(cell_summary(c, k)) for k in cols] for c in a.cells]
        lines += ["", f"## {title}", ""] + table(head, rows)
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
            rows = [_exploratory_row(x, shown, a.resolution) for x in fam if x.axis == axis and x.metric == metric]
            lines += ["", f"### {axis}: {labels.get(metric, metric)} (A − B, points, paired by seed)", ""]
            lines += table(EXPLORATORY_HEADER, rows)
    return lines


EXPLORATORY_HEADER = [
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
]


def _exploratory_row(x: an.Row, shown: set[str], resolution: float) -> list[str]:
    """One comparison: its context, the pair, sizes, n, A − B, raw and Holm intervals, p-values, verdict."""
    d = x.comp.diff
    size = "same" if x.size_a == x.size_b else f"{size_text(*x.size_a)} vs {size_text(*x.size_b)}"
    ci = "–" if math.isnan(d.ci95) else f"[{d.low * 100:+.2f}, {d.high * 100:+.2f}]"
    hci = "–" if math.isnan(x.half) else f"[{x.low * 100:+.2f}, {x.high * 100:+.2f}]"
    context = ", ".join(v for k, v in x.context.items() if k in shown)
    pvalues = [p_text(x.comp.p), p_text(x.holm_p), p_text(x.bh_p)]
    return [
        context,
        x.comp.a,
        x.comp.b,
        size,
        str(d.n),
        f"{d.mean * 100:+.2f}",
        ci,
        hci,
        *pvalues,
        _verdict(x, resolution),
    ]


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
        lines += table(
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
