"""The report's figures, readable without the code: every figure says what n is and what
its bars and bands mean, and no percentage axis goes past 100.

* ``forest_<axis>.png``: paired differences (A − reference, same seed) with 95% intervals;
  a filled marker when the difference survives Holm's adjustment over the report's family.
* ``shift_<metric>.png``: shift curves per padding (one panel each) with 95% bands.
* ``throughput.png``: only when the grid compares precisions or device counts; one dot per run.

Example:
    >>> from cnnbench.bench.report import write_report
    >>> paths = write_report("results/smoke")  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from cnnbench.bench.report import ALPHA, AXES, METRICS, REFERENCE, Row, _ok, varying
from cnnbench.bench.stats import describe

SHIFT_SERIES = (
    ("consistency_zero_k", "shift consistency, zero-fill (%)", None, "k: largest random offset (px, each axis)"),
    ("consistency_circular_k", "shift consistency, circular (%)", None, "k: largest random offset (px, each axis)"),
    ("shift_acc_zero_k", "accuracy under random shift, zero-fill (%)", "test_acc", "k: largest random offset (px, each axis); 0 = unshifted"),
    ("shift_acc_circular_k", "accuracy under random shift, circular (%)", "test_acc", "k: largest random offset (px, each axis); 0 = unshifted"),
    ("diag_consistency_", "LEGACY: class unchanged, original vs one (+s, +s) shift (%)", None, "s: diagonal shift (px)"),
    ("diag_shift_acc_", "LEGACY: accuracy under one (+s, +s) shift (%)", "test_acc", "s: diagonal shift (px); 0 = unshifted"),
)  # fmt: skip
LABELS = {m.key: m.label for m in METRICS}


def _short(n: Any) -> str:
    if n is None:
        return "?"
    n = float(n)
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.0f}k"


def _n_text(ns: list[int]) -> str:
    return "–" if not ns else str(min(ns)) if min(ns) == max(ns) else f"{min(ns)}–{max(ns)}"


def _footer(fig: Any, text: str, right: float = 1.0) -> None:
    """What n is and what the marks mean, wrapped to the figure's width, below the axes."""
    import textwrap

    lines = textwrap.wrap(text, width=max(40, int(fig.get_figwidth() * 17)))
    fig.text(0.01, 0.005, "\n".join(lines), fontsize=7, va="bottom")
    bottom = (0.16 * len(lines) + 0.1) / fig.get_figheight()
    fig.tight_layout(rect=(0, bottom, right, 0.97))


def forest(fam: list[Row], axis: str, out: Path, plt: Any) -> Path | None:
    """Paired differences against the reference value of ``axis``, one panel per metric."""
    by_context: dict[tuple[str, ...], list[Row]] = defaultdict(list)
    for c in fam:
        if c.axis == axis:
            by_context[(c.metric, *c.context.values())].append(c)
    # the reference of a context is the B of its first comparison (report.comparisons puts it first)
    rows = [c for group in by_context.values() for c in group if c.comp.b == group[0].comp.b]
    metrics = list(dict.fromkeys(c.metric for c in rows))
    if not rows:
        return None
    per_metric = {m: [c for c in rows if c.metric == m] for m in metrics}
    height = max(len(v) for v in per_metric.values())
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics) + 2.5, 2.2 + 0.26 * height), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        mine = per_metric[metric]
        for y, c in enumerate(mine):
            d = c.comp.diff
            mean = d.mean * 100
            err = [[0.0], [0.0]] if math.isnan(d.ci95) else [[d.ci95 * 100], [d.ci95 * 100]]
            resolved = c.holm_p < ALPHA
            ax.errorbar([mean], [y], xerr=err, fmt="o", color="C0" if resolved else "C7", capsize=2,
                        markerfacecolor="C0" if resolved else "white", markersize=4)  # fmt: skip
        vary = [k for k in mine[0].context if k == "model_label" or len({c.context[k] for c in mine}) > 1]
        labels = []
        for c in mine:
            where = ", ".join(c.context[k] for k in vary)
            size = (
                ""
                if c.size_a == c.size_b
                else f"  [params {_short(c.size_a[0])} vs {_short(c.size_b[0])}]"
                if c.size_a[0] != c.size_b[0]
                else f"  [MACs {_short(c.size_a[1])} vs {_short(c.size_b[1])}]"
            )
            labels.append(f"{where}: {c.comp.a}{size}")
        first = per_metric[metrics[0]]
        same_rows = ax is not axes[0][0] and [(c.context, c.comp.a) for c in mine] == [
            (c.context, c.comp.a) for c in first
        ]
        ax.set_yticks(range(len(mine)), [] if same_rows else labels, fontsize=7)
        ax.invert_yaxis()
        ax.axvline(0, color="k", lw=0.8)
        ref = mine[0].comp.b
        ax.set_xlabel(f"{LABELS.get(metric, metric)}: A − {ref} (points)", fontsize=8)
        ax.set_title(f"{LABELS.get(metric, metric)}", fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    ns = [c.comp.diff.n for c in rows]
    fig.suptitle(f"{axis}: paired differences against {rows[0].comp.b}", fontsize=10)
    _footer(fig, f"Each row: mean over n = {_n_text(ns)} seeds of (A − {rows[0].comp.b}) on the same seed. "
            f"Bar: 95% t-interval, uncorrected. Filled: excludes 0 after Holm over all {len(fam)} comparisons "
            "of REPORT.md; hollow: not after Holm.")  # fmt: skip
    path = out / f"forest_{axis}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def shift_curves(
    cells: list[dict[str, Any]], rows: list[dict[str, Any]], prefix: str, ylabel: str, base: str | None, xlabel: str,
    out: Path, plt: Any,
) -> Path | None:  # fmt: skip
    """One panel per (model, other varying coordinates) × padding; a line per pool with a 95% band."""
    ks = sorted(
        {int(k[len(prefix) : -5]) for c in cells for k in c
         if k.startswith(prefix) and k.endswith("_mean") and k[len(prefix) : -5].isdigit() and not math.isnan(c[k])}
    )  # fmt: skip
    if not ks:
        return None
    ok = [c for c in cells if c["n_ok"]]
    extra = ["model_label", *(c for c in varying(rows) if c not in ("pool", "padding", "model_label"))]
    panels = list(dict.fromkeys(tuple(str(c[k]) for k in extra) for c in ok)) or [()]
    paddings = list(dict.fromkeys(str(c["padding"]) for c in ok))
    pools = list(dict.fromkeys(str(c["pool"]) for c in ok))
    fig, axes = plt.subplots(len(panels), len(paddings), figsize=(4.2 * len(paddings) + 1.2, 2.9 * len(panels) + 0.9),
                             squeeze=False, sharey=True)  # fmt: skip
    low, ns = 100.0, []
    for i, panel in enumerate(panels):
        for j, pad in enumerate(paddings):
            ax = axes[i][j]
            mine = [c for c in ok if str(c["padding"]) == pad and tuple(str(c[k]) for k in extra) == panel]
            for c in mine:
                xs, ys, cis = ([0], [c[f"{base}_mean"] * 100], [c[f"{base}_ci95"] * 100]) if base else ([], [], [])
                for k in ks:
                    xs.append(k)
                    ys.append(c[f"{prefix}{k}_mean"] * 100)
                    cis.append(c[f"{prefix}{k}_ci95"] * 100)
                cis = [0.0 if math.isnan(v) else v for v in cis]
                color = f"C{pools.index(str(c['pool'])) % 10}"  # one colour per pool in every panel
                ax.plot(xs, ys, marker="o", ms=3, color=color, label=str(c["pool"]))
                ax.fill_between(xs, [y - e for y, e in zip(ys, cis)], [min(y + e, 100) for y, e in zip(ys, cis)],
                                color=color, alpha=0.15, lw=0)  # fmt: skip
                low = min(low, *[y - e for y, e in zip(ys, cis)])
                ns.append(c["n_ok"])
            names = [v if k == "model_label" else f"{k}={v}" for k, v in zip(extra, panel)]
            ax.set_title(", ".join([*names, f"padding={pad}"]), fontsize=9)
            ax.set_xticks([0, *ks] if base else ks)
            ax.grid(alpha=0.3)
            if i == len(panels) - 1:
                ax.set_xlabel(xlabel, fontsize=8)
            if j == 0:
                ax.set_ylabel("%", fontsize=8)
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, title="pool", fontsize=7, title_fontsize=7, loc="center right")
    fig.suptitle(ylabel.removesuffix(" (%)"), fontsize=10)
    axes[0][0].set_ylim(max(0.0, math.floor(low - 1)), 100.0)  # shared y: never past 100%
    _footer(fig, f"n = {_n_text(ns)} seeds per point. Line: mean over seeds; band: 95% t-interval of that cell's "
            "mean (unpaired; paired differences are in REPORT.md).", right=1 - 0.9 / fig.get_figwidth())  # fmt: skip
    name = prefix.rstrip("_").removesuffix("_k").removeprefix("shift_").replace("diag_shift_", "diag_")
    path = out / f"shift_{name.replace('diag_', 'legacy_diag_')}.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def throughput(rows: list[dict[str, Any]], out: Path, plt: Any) -> Path | None:
    """Training images/s per precision or device count (only when the grid varies one); one dot per run."""
    ok = [r for r in _ok(rows) if r.get("images_per_s") is not None]
    axis = next((a for a in ("precision", "devices") if len({str(r[a]) for r in ok}) > 1), None)
    if axis is None:
        return None
    models = list(dict.fromkeys(str(r["model_label"]) for r in ok))
    values = list(dict.fromkeys(str(r[axis]) for r in ok))
    fig, axes = plt.subplots(1, len(models), figsize=(3.2 * len(models) + 1, 3.6), squeeze=False)
    for ax, model in zip(axes[0], models):
        for i, v in enumerate(values):
            pts = [float(r["images_per_s"]) for r in ok if str(r["model_label"]) == model and str(r[axis]) == v]
            ax.scatter([i + 0.08 * ((j % 5) - 2) for j in range(len(pts))], pts, s=10, color="C0", alpha=0.6)
            s = describe(pts)
            if not math.isnan(s.mean):
                ax.hlines(s.mean, i - 0.3, i + 0.3, color="k")
        ax.set_xticks(range(len(values)), values)
        ax.set(title=model, xlabel=axis, ylabel="training images/s")
        ax.set_ylim(bottom=0)
    _footer(fig, f"Each dot one run (every pool/padding/seed, n = {len(ok)}); line: mean. "
            "Spread includes other jobs on the machine.")  # fmt: skip
    path = out / "throughput.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot(rows: list[dict[str, Any]], cells: list[dict[str, Any]], fam: list[Row], out: Path) -> list[Path]:
    """Every figure the results allow; empty when nothing finished."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not _ok(rows):
        return []
    paths = [forest(fam, axis, out, plt) for axis in AXES]
    paths += [
        shift_curves(cells, rows, prefix, ylabel, base, xlabel, out, plt)
        for prefix, ylabel, base, xlabel in SHIFT_SERIES
    ]
    paths.append(throughput(rows, out, plt))
    return [p for p in paths if p is not None]


__all__ = ["REFERENCE", "forest", "plot", "shift_curves", "throughput"]
