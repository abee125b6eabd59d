"""The report's figures, sized for a page: 7 in wide at most, drawn for 300 dpi, fonts of 7–9 pt,
in PNG, PDF or SVG. Every figure says what n is and what its bars and bands mean; no percentage
axis goes past 100; with one seed it says "no interval (1 seed)".

* ``answer_<question id>``: each question's comparisons with their Holm-level intervals and ±δ.
* ``forest_<axis>_<metric>``: exploratory paired differences against the axis's reference value.
* ``shift_<series>``: shift curves, one panel per (other coordinates, padding), a line per pool.
* ``throughput``: only when the grid compares precisions or device counts; one dot per run.

Example (not run as a doctest: it needs a finished grid's results folder):
    >>> from cnnbench.bench.report import write_report
    >>> paths = write_report("results/smoke", fmt="pdf")  # doctest: +SKIP
"""

from __future__ import annotations

import math
import textwrap
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnnbench.bench import analysis as an
from cnnbench.bench.stats import describe

if TYPE_CHECKING:
    from cnnbench.bench.analysis import Analysis
    from cnnbench.bench.questions import Answer

WIDTH = 7.0  # inches: a page's text width
DPI = 300
SHIFT_SERIES = (
    ("consistency_zero_k", "shift consistency, zero-fill (%)", None, "k: largest random offset (px, each axis)"),
    ("consistency_circular_k", "shift consistency, circular (%)", None, "k: largest random offset (px, each axis)"),
    (
        "shift_acc_zero_k",
        "accuracy under random shift, zero-fill (%)",
        "test_acc",
        "k: largest random offset (px, each axis); 0 = unshifted",
    ),
    (
        "shift_acc_circular_k",
        "accuracy under random shift, circular (%)",
        "test_acc",
        "k: largest random offset (px, each axis); 0 = unshifted",
    ),
    (
        "diag_consistency_",
        "LEGACY: class unchanged, original vs one (+s, +s) shift (%)",
        None,
        "s: diagonal shift (px)",
    ),
    (
        "diag_shift_acc_",
        "LEGACY: accuracy under one (+s, +s) shift (%)",
        "test_acc",
        "s: diagonal shift (px); 0 = unshifted",
    ),
)
ONE_SEED = "No interval (1 seed): each point is a single run."


def _short(n: Any) -> str:
    if n is None:
        return "?"
    n = float(n)
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.0f}k"


def _n_text(ns: list[int]) -> str:
    return "–" if not ns else str(min(ns)) if min(ns) == max(ns) else f"{min(ns)}–{max(ns)}"


def _footer(fig: Any, text: str, top: float = 0.0) -> None:
    """What n is and what the marks mean, wrapped to the figure's width, below the axes (``top``: inches kept free)."""
    lines = textwrap.wrap(text, width=int(fig.get_figwidth() * 18))
    fig.text(0.01, 0.01, "\n".join(lines), fontsize=7, va="bottom")
    bottom = (0.12 * len(lines) + 0.08) / fig.get_figheight()
    fig.tight_layout(rect=(0, bottom, 1.0, 1.0 - top / fig.get_figheight()))


def _where(context: dict[str, str], keys: list[str] | None = None) -> str:
    """A context as "padding same, augment none" (pools and models by their value alone)."""
    keys = list(context) if keys is None else keys
    return ", ".join(context[k] if k in ("pool", "model_label") else f"{k} {context[k]}" for k in keys)


def _save(fig: Any, out: Path, stem: str, fmt: str, plt: Any) -> Path:
    path = out / f"{stem}.{fmt}"
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _bar(ax: Any, y: int, mean: float, half: float, color: str | None) -> None:
    """A mean with its interval: filled in ``color`` when resolved, hollow grey when not."""
    err = None if math.isnan(half) else [[half], [half]]
    ax.errorbar(
        [mean],
        [y],
        xerr=err,
        fmt="o",
        color=color or "C7",
        capsize=2,
        markersize=4,
        markerfacecolor=color or "white",
        lw=1.2,
    )


def answer_figure(ans: Answer, out: Path, fmt: str, plt: Any) -> Path | None:
    """A question's comparisons: mean A − B and its Holm-level interval, the ±δ band, the verdict."""
    shown = [o for o in ans.outcomes if o.comp is not None]
    if not shown:
        return None
    q, s = ans.question, ans.scale
    fig, ax = plt.subplots(figsize=(WIDTH, 1.9 + 0.3 * len(shown)))
    ax.axvspan(-q.delta, q.delta, color="C2", alpha=0.12, lw=0)
    ax.axvline(0, color="k", lw=0.8)
    one_pair = len({(_where(o.a), _where(o.b)) for o in shown}) == 1  # then A − B goes on the x axis
    labels = []
    for y, o in enumerate(shown):
        assert o.comp is not None
        color = {"a>b": "C0", "a<b": "C0", "equivalent": "C2"}.get(o.result)
        _bar(ax, y, o.comp.diff.mean * s, o.half * s, color)
        ctx = _where(o.context)
        labels.append(ctx if one_pair and ctx else f"{_where(o.a)} − {_where(o.b)}" + (f" ({ctx})" if ctx else ""))
    ax.set_yticks(range(len(shown)), labels, fontsize=8)
    ax.set_ylim(len(shown) - 0.5, -0.5)
    ax.tick_params(axis="x", labelsize=8)
    unit = " (points)" if s == 100 else ""
    pair = f"{_where(shown[0].a)} − {_where(shown[0].b)}" if one_pair else "A − B"
    ax.set_xlabel(f"{q.metric}: {pair}{unit}", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    title = textwrap.wrap(f"{q.claim}: {ans.verdict}", int(WIDTH * 13))
    fig.text(0.01, 0.99, "\n".join(title), fontsize=9, va="top", weight="bold")
    ns = [o.comp.diff.n for o in shown if o.comp is not None]
    one = max(ns) < 2
    missing = len(ans.outcomes) - len(shown)
    _footer(
        fig,
        (ONE_SEED + " " if one else "")
        + (f"Not shown (no data): {missing} of {len(ans.outcomes)} comparisons. " if missing else "")
        + f"Each row: mean over n = {_n_text(ns)} seeds of A − B on the same "
        f"seed. Bar: t-interval at its Holm level within this question (m = {ans.m}). Filled blue: resolved in a "
        f"direction; filled green: practically equivalent (inside ±δ = {q.delta:g}, the green band); hollow: not "
        f"resolved. Conditions: {q.conditions}.",
        top=0.2 * len(title) + 0.05,
    )
    return _save(fig, out, f"answer_{q.id}", fmt, plt)


def forest(fam: list[an.Row], axis: str, metric: str, label: str, out: Path, fmt: str, plt: Any) -> Path | None:
    """Exploratory paired differences against the reference value of ``axis`` for one metric."""
    by_context: dict[tuple[str, ...], list[an.Row]] = defaultdict(list)
    for c in fam:
        if c.axis == axis and c.metric == metric:
            by_context[tuple(c.context.values())].append(c)
    # the reference of a context is the B of its first comparison (analysis.comparisons puts it first)
    rows = [c for group in by_context.values() for c in group if c.comp.b == group[0].comp.b]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(WIDTH, 1.7 + 0.22 * len(rows)))
    ax.axvline(0, color="k", lw=0.8)
    vary = [k for k in rows[0].context if len({c.context[k] for c in rows}) > 1]
    sizes = [
        "" if c.size_a[0] == c.size_b[0] else f"params {_short(c.size_a[0])} vs {_short(c.size_b[0])}" for c in rows
    ]
    common = sizes[0] if len(set(sizes)) == 1 else ""  # said once in the title rather than on every row
    # a context may lack the axis's reference (e.g. excluded cells): then each row names its own B
    refs = {c.comp.b for c in rows}
    ref = next(iter(refs)) if len(refs) == 1 else None
    labels = []
    for y, (c, size) in enumerate(zip(rows, sizes)):
        _bar(ax, y, c.comp.diff.mean * 100, c.half * 100, "C0" if c.holm_p < an.ALPHA else None)
        size = f"  [{size}]" if size and not common else ""
        arms = c.comp.a if ref else f"{c.comp.a} − {c.comp.b}"
        labels.append(f"{_where(c.context, vary)}: {arms}{size}" if vary else f"{arms}{size}")
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.tick_params(axis="x", labelsize=8)
    ax.set_xlabel(f"{label}: A − {ref or 'B'} (points)", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    against = f"against {ref}" if ref else "A − B per row"
    title = f"{axis}: {label}, paired differences {against} (exploratory)" + (f"; {common}" if common else "")
    fig.text(0.01, 0.99, title, fontsize=9, va="top", weight="bold")
    ns = [c.comp.diff.n for c in rows]
    _footer(
        fig,
        (ONE_SEED + " " if max(ns) < 2 else "") + f"Each row: mean over n = {_n_text(ns)} seeds of "
        f"(A − {ref or 'B'}) on the same seed. Bar: t-interval at its Holm level over all {len(fam)} exploratory "
        "comparisons of REPORT.md; filled: excludes 0 (Holm), hollow: not.",
        top=0.25,
    )
    return _save(fig, out, f"forest_{axis}_{metric}", fmt, plt)


def shift_curves(
    a: Analysis, prefix: str, ylabel: str, base: str | None, xlabel: str, out: Path, fmt: str, plt: Any
) -> Path | None:
    """One panel per (model, other varying coordinates) × padding, at most 3 a row; a line per pool with a 95% band."""
    ks = sorted(
        {
            int(k[len(prefix) : -5])
            for c in a.cells
            for k in c
            if k.startswith(prefix) and k.endswith("_mean") and k[len(prefix) : -5].isdigit() and not math.isnan(c[k])
        }
    )
    if not ks:
        return None
    skip = a.low_cells if an.needs_accuracy(prefix) else set()
    good = [c for c in a.cells if c["n_ok"] and c["cell"] not in skip]
    extra = [c for c in an.varying(a.rows, a.coords) if c not in ("pool", "padding")]
    keys = sorted(
        dict.fromkeys((*(str(c[k]) for k in extra), str(c["padding"])) for c in good),
        key=lambda key: (key[-1], key[:-1]),
    )  # a row per padding when there are two panels per padding
    pools = list(dict.fromkeys(str(c["pool"]) for c in a.cells))
    cols = min(3, math.ceil(math.sqrt(len(keys))))
    nrows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(WIDTH, 2.3 * nrows + 1.3), squeeze=False, sharey=True)
    low, ns = 100.0, []
    for i, key in enumerate(keys):
        ax = axes[i // cols][i % cols]
        for c in (c for c in good if (*(str(c[k]) for k in extra), str(c["padding"])) == key):
            color = f"C{pools.index(str(c['pool'])) % 10}"  # one colour per pool in every panel
            low = min(low, _shift_line(ax, c, prefix, base, ks, color))
            ns.append(c["n_ok"])
        ax.set_title(_where(dict(zip([*extra, "padding"], key))), fontsize=8)
        ax.set_xticks([0, *ks] if base else ks)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if i // cols == nrows - 1 or i + cols >= len(keys):
            ax.set_xlabel(xlabel.split(";")[0], fontsize=7)
        if i % cols == 0:
            ax.set_ylabel("%", fontsize=8)
    for j in range(len(keys), nrows * cols):
        axes[j // cols][j % cols].set_visible(False)
    _pool_legend(fig, axes[0][0], ylabel)
    axes[0][0].set_ylim(max(0.0, math.floor(low - 1)), 100.0)  # shared y: never past 100%
    one = bool(ns) and max(ns) < 2
    note = f" Left out near chance: {len(skip & {c['cell'] for c in a.cells if c['n_ok']})} cells." if skip else ""
    _footer(
        fig,
        (ONE_SEED + " " if one else "") + f"n = {_n_text(ns)} seeds per point. Line: mean over seeds; band: "
        f"95% t-interval of that cell's mean (unpaired; paired differences are in REPORT.md). {xlabel}.{note}",
        top=0.55,
    )
    name = prefix.rstrip("_").removesuffix("_k").removeprefix("shift_").replace("diag_shift_", "diag_")
    return _save(fig, out, f"shift_{name.replace('diag_', 'legacy_diag_')}", fmt, plt)


def _shift_line(ax: Any, c: dict[str, Any], prefix: str, base: str | None, ks: list[int], color: str) -> float:
    """One cell's curve over k (from the unshifted ``base`` metric at 0) with its 95% band; the band's lowest point."""
    xs, ys, cis = ([0], [c[f"{base}_mean"] * 100], [c[f"{base}_ci95"] * 100]) if base else ([], [], [])
    for k in ks:
        xs.append(k)
        ys.append(c[f"{prefix}{k}_mean"] * 100)
        cis.append(c[f"{prefix}{k}_ci95"] * 100)
    cis = [0.0 if math.isnan(v) else v for v in cis]
    ax.plot(xs, ys, marker="o", ms=2.5, lw=1, color=color, label=str(c["pool"]))
    lows = [y - e for y, e in zip(ys, cis)]
    ax.fill_between(xs, lows, [min(y + e, 100) for y, e in zip(ys, cis)], color=color, alpha=0.15, lw=0)
    return min(lows)


def _pool_legend(fig: Any, ax: Any, ylabel: str) -> None:
    """One legend for every panel, a pool an entry, above the panels."""
    handles, names = ax.get_legend_handles_labels()
    by_name = dict(zip(names, handles))
    fig.legend(
        list(by_name.values()),
        [f"pool {n}" for n in by_name],
        title=ylabel.removesuffix(" (%)"),
        fontsize=7,
        title_fontsize=9,
        loc="upper center",
        ncol=len(by_name) if len(by_name) <= 5 else math.ceil(len(by_name) / 2),  # 6+ pools: two rows, inside 7 in
        bbox_to_anchor=(0.5, 1.0),
        frameon=False,
    )


def throughput(rows: list[dict[str, Any]], out: Path, fmt: str, plt: Any) -> Path | None:
    """Training images/s per precision or device count (only when the grid varies one); one dot per run."""
    good = [r for r in an.ok(rows) if r.get("images_per_s") is not None]
    axis = next((a for a in ("precision", "devices") if len({str(r[a]) for r in good}) > 1), None)
    if axis is None:
        return None
    models = list(dict.fromkeys(str(r["model_label"]) for r in good))
    values = list(dict.fromkeys(str(r[axis]) for r in good))
    fig, axes = plt.subplots(1, len(models), figsize=(WIDTH, 3.2), squeeze=False)
    for ax, model in zip(axes[0], models):
        for i, v in enumerate(values):
            pts = [float(r["images_per_s"]) for r in good if str(r["model_label"]) == model and str(r[axis]) == v]
            ax.scatter([i + 0.08 * ((j % 5) - 2) for j in range(len(pts))], pts, s=8, color="C0", alpha=0.6)
            s = describe(pts)
            if not math.isnan(s.mean):
                ax.hlines(s.mean, i - 0.3, i + 0.3, color="k")
        ax.set_xticks(range(len(values)), values, fontsize=7)
        ax.set_title(model, fontsize=8)
        ax.set_xlabel(axis, fontsize=8)
        ax.set_ylabel("training images/s", fontsize=8)
        ax.set_ylim(bottom=0)
    _footer(
        fig,
        f"Each dot one run (every pool/padding/seed, n = {len(good)}); line: mean. "
        "Spread includes other jobs on the machine.",
    )
    return _save(fig, out, "throughput", fmt, plt)


def plot(a: Analysis, out: Path, fmt: str = "png") -> list[Path]:
    """Every figure the results allow (empty when nothing finished). The figures of an earlier report
    (any format) that this one does not write are removed: the folder never mixes old and new figures."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths: list[Path | None] = []
    if an.ok(a.rows):
        paths += [answer_figure(ans, out, fmt, plt) for ans in a.answers]
        labels = {m.key: m.label for m in a.metrics}
        for axis in dict.fromkeys(c.axis for c in a.family):
            for metric in dict.fromkeys(c.metric for c in a.family if c.axis == axis):
                paths.append(forest(a.family, axis, metric, labels.get(metric, metric), out, fmt, plt))
        folded = {c.rsplit("_k", 1)[0] + "_k" for c in an.folded_columns(a.folds) if an.PER_K.search(c)}
        paths += [
            shift_curves(a, prefix, ylabel, base, xlabel, out, fmt, plt)
            for prefix, ylabel, base, xlabel in SHIFT_SERIES
            if prefix not in folded
        ]
        paths.append(throughput(a.rows, out, fmt, plt))
    kept = [p for p in paths if p is not None]
    for old in out.iterdir():  # superseded figures of an earlier report
        if (
            old.suffix in (".png", ".pdf", ".svg")
            and old.stem.startswith(("forest_", "shift_", "answer_", "throughput"))
            and old not in kept
        ):
            old.unlink()
    return kept


__all__ = ["answer_figure", "forest", "plot", "shift_curves", "throughput"]
