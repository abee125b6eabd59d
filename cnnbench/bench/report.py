"""Turn a folder of run results into ``results.csv``, ``summary.csv``, ``REPORT.md`` and plots.

Every comparison is paired by seed (A − B on the same seed, then a Student-t interval over
seeds). All comparisons of one report form one family: their p-values are adjusted with
Holm (the verdict column) and Benjamini–Hochberg (shown beside it), and the uncorrected
interval is kept. A difference whose interval is neither clear of 0 nor inside
±``resolution`` is "not resolved", never "no difference".

Results written before a metric existed still load (the folder's ``results/*.json``, or
only its ``results.csv``); the report names the metrics they lack and labels the older
definitions as legacy.

Example:
    >>> paths = write_report("results/smoke")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import json
import math
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnbench.bench.stats import Comparison, Summary, benjamini_hochberg, describe, holm, paired, verdict

COORDS = ("model_label", "pool", "padding", "padding_mode", "precision", "devices", "augment")
AXES = ("pool", "padding", "augment", "precision")  # the axes whose values are compared pairwise
REFERENCE = {"pool": "max", "padding": "valid", "augment": "none", "precision": "32-true"}
BASE_FIELDS = ("run_id", "grid", "model_label", "pool", "padding", "padding_mode", "precision", "devices", "model", "seed",
               "status", "test_acc", "test_loss", "best_val_acc", "train_time_s", "images_per_s", "peak_memory_mb",
               "params", "macs", "epochs")  # fmt: skip
LEGACY_COLUMNS = {"shift_consistency": "diag_consistency", "border_acc": "crop_border_acc"}
ALPHA = 0.05


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    meaning: str
    legacy: bool = False


METRICS = (
    Metric("test_acc", "test acc", "top-1 accuracy on the clean test set"),
    Metric("consistency_zero", "consistency (zero)",
           "shift consistency as Zhang 2019 defines it: the probability that two copies of a test image, each shifted "
           "by an independent random offset (uniform in [-k, k] on both axes, both signs), get the same top-1 class; "
           "uncovered pixels are 0; mean over the k measured"),
    Metric("consistency_circular", "consistency (circular)",
           "the same with circular shifts (content wraps around), Zhang's variant for CIFAR"),
    Metric("edge_acc", "edge acc",
           "accuracy with each image moved until the bounding box of its nonzero pixels touches an edge or corner "
           "(8 directions, mean); no ink leaves the frame (lost-ink fraction below)"),
    Metric("diag_consistency", "legacy diag consistency",
           "LEGACY, not Zhang's definition: share of images whose class is unchanged between the original and one "
           "(+s, +s) down-right zero-fill shift, mean over s", legacy=True),
    Metric("crop_border_acc", "legacy crop border acc",
           "LEGACY: accuracy with the content pushed a quarter of the side toward each edge/corner; this crops "
           "digits (ink is lost; the fraction was not recorded), so it does not isolate edge information", legacy=True),
)  # fmt: skip
NEW_METRICS = {"consistency_zero": "Zhang 2019 shift consistency (zero-fill)",
               "consistency_circular": "Zhang 2019 shift consistency (circular)",
               "shift_acc_zero_k": "accuracy under random shift, per k",
               "edge_acc": "edge probe without cropping (and its lost-ink fraction)"}  # fmt: skip
OTHER_SUMMARY = ("best_val_acc", "images_per_s", "train_time_s", "edge_lost_ink", "edge_shift_px")


# ---------------------------------------------------------------------------------- loading
def flatten(result: dict[str, Any], default_augment: str = "standard") -> dict[str, Any]:
    """One CSV row: coordinates, metrics, and robustness metrics spread into columns."""
    row: dict[str, Any] = {k: result.get(k) for k in BASE_FIELDS}
    row["augment"] = result.get("augment") or default_augment
    row["augment_recorded"] = "augment" in result
    rob = result.get("robustness") or {}
    for fill, block in (rob.get("shift") or {}).items():
        for kind, prefix in (("consistency", "consistency"), ("acc", "shift_acc")):
            values = block.get(kind) or {}
            for k, v in sorted(values.items(), key=lambda kv: int(kv[0])):
                row[f"{prefix}_{fill}_k{k}"] = v
            if values and kind == "consistency":
                row[f"consistency_{fill}"] = sum(values.values()) / len(values)
    edge = rob.get("edge") or {}
    if edge:
        row["edge_acc"] = edge.get("acc_mean")
        row["edge_lost_ink"] = edge.get("lost_ink")
        px = list((edge.get("mean_shift_px") or {}).values())
        row["edge_shift_px"] = sum(px) / len(px) if px else None
    if "shift_consistency" in rob:  # results written before Zhang's definition
        for s, v in rob["shift_consistency"].items():
            row[f"diag_consistency_{s}"] = v
        for s, v in (rob.get("shift_acc") or {}).items():
            row[f"diag_shift_acc_{s}"] = v
        values = list(rob["shift_consistency"].values())
        row["diag_consistency"] = sum(values) / len(values) if values else None
        row["crop_border_acc"] = rob.get("border_acc_mean")
    row["error"] = (result.get("error") or "")[:300]
    return row


def _number(text: str) -> Any:
    if text == "":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"True": True, "False": False}.get(text, text)


def read_results_csv(path: Path, default_augment: str = "standard") -> list[dict[str, Any]]:
    """Rows of a ``results.csv`` (this version's or an older one, whose columns are renamed)."""
    with path.open(newline="") as fh:
        raw = list(csv.DictReader(fh))
    rows = []
    for r in raw:
        row = {k: _number(v) for k, v in r.items()}
        for k in [k for k in row if k.startswith(("shift_consistency_", "shift_acc_")) and k[-1].isdigit()]:
            if k.split("_")[-1].isdigit():  # older names (shift_acc_1): one diagonal shift, not Zhang's
                row["diag_" + k.removeprefix("shift_") if "consistency" in k else "diag_" + k] = row.pop(k)
        for old, new in LEGACY_COLUMNS.items():
            if old in row:
                row[new] = row.pop(old)
        row["augment_recorded"] = row.get("augment") is not None
        row["augment"] = row.get("augment") or default_augment
        row["error"] = row.get("error") or ""
        rows.append(row)
    return rows


def load_rows(out: Path) -> tuple[list[dict[str, Any]], str]:
    """The rows of a results folder and where they came from (``results/`` or ``results.csv``)."""
    from cnnbench.bench.runner import load_results

    default_augment = "standard"
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        default_augment = json.loads((out / "grid.json").read_text())["data"].get("augment", "standard")
    results = load_results(out)
    if results:
        return [flatten(r, default_augment) for r in results], "results"
    if (out / "results.csv").is_file():
        return read_results_csv(out / "results.csv", default_augment), "results.csv"
    raise ValueError(f"no results under {out / 'results'} and no {out / 'results.csv'}")


# ---------------------------------------------------------------------------------- statistics
def _ok(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r["status"] == "ok"]


def present(rows: list[dict[str, Any]], key: str) -> bool:
    return any(r.get(key) is not None for r in _ok(rows))


def varying(rows: list[dict[str, Any]]) -> list[str]:
    """The coordinates that take more than one value among the rows."""
    return [c for c in COORDS if len({str(r[c]) for r in rows}) > 1]


def group(rows: list[dict[str, Any]]) -> dict[tuple[Any, ...], list[dict[str, Any]]]:
    """Rows by cell (all coordinates but the seed), in first-seen order."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[tuple(row[c] for c in COORDS)].append(row)
    return groups


def per_k_columns(rows: list[dict[str, Any]]) -> list[str]:
    return sorted(
        {k for r in rows for k in r if k.startswith(("consistency_", "shift_acc_", "diag_")) and k[-1].isdigit()}
    )


def summarize_cells(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per cell: params, MACs, and mean, std, 95% CI of each metric over the ``ok`` seeds."""
    out = []
    keys = [m.key for m in METRICS] + list(OTHER_SUMMARY) + per_k_columns(rows)
    for key, members in group(rows).items():
        ok = _ok(members)
        row: dict[str, Any] = dict(zip(COORDS, key))
        row["n"], row["n_ok"] = len(members), len(ok)
        row["statuses"] = ",".join(sorted({r["status"] for r in members}))
        row["params"] = next((r["params"] for r in members if r.get("params") is not None), None)
        row["macs"] = next((r["macs"] for r in members if r.get("macs") is not None), None)
        for metric in keys:
            s = describe([float(r[metric]) for r in ok if r.get(metric) is not None])
            row[f"{metric}_mean"], row[f"{metric}_std"], row[f"{metric}_ci95"] = s.mean, s.std, s.ci95
        out.append(row)
    return out


def _by_seed(rows: list[dict[str, Any]], metric: str, where: dict[str, str]) -> dict[int, float]:
    return {
        int(r["seed"]): float(r[metric])
        for r in _ok(rows)
        if r.get(metric) is not None and all(str(r[k]) == v for k, v in where.items())
    }


@dataclass
class Row:
    """One paired comparison in the report's family, with its adjusted p-values."""

    axis: str
    metric: str
    context: dict[str, str]
    comp: Comparison
    size_a: tuple[Any, Any]
    size_b: tuple[Any, Any]
    holm_p: float = math.nan
    bh_p: float = math.nan


def comparisons(rows: list[dict[str, Any]], axis: str, metric: str = "test_acc") -> list[Row]:
    """Paired comparisons between the values of ``axis``, every other coordinate equal."""
    fixed = [c for c in COORDS if c != axis]
    out = []
    ok = _ok(rows)
    sizes = {tuple(str(r[c]) for c in COORDS): (r.get("params"), r.get("macs")) for r in ok}
    for context in sorted({tuple(str(r[c]) for c in fixed) for r in ok}):
        where = dict(zip(fixed, context))
        values = list(dict.fromkeys(str(r[axis]) for r in ok if all(str(r[k]) == v for k, v in where.items())))
        ref, order = REFERENCE.get(axis), list(values)
        values.sort(key=lambda v: (v != ref, order.index(v)))  # reference first: rows read "other − reference"
        for b, a in itertools.combinations(values, 2):
            comp = paired(a, _by_seed(rows, metric, {**where, axis: a}), b, _by_seed(rows, metric, {**where, axis: b}))
            if comp is None:
                continue
            key_a = tuple(where.get(c, a) if c != axis else a for c in COORDS)
            key_b = tuple(where.get(c, b) if c != axis else b for c in COORDS)
            out.append(Row(axis, metric, where, comp, sizes.get(key_a, (None, None)), sizes.get(key_b, (None, None))))
    return out


def family(rows: list[dict[str, Any]], axes: list[str], metrics: list[str]) -> list[Row]:
    """Every comparison of the report, with Holm and Benjamini–Hochberg adjusted p-values."""
    all_rows = [c for axis in axes for metric in metrics for c in comparisons(rows, axis, metric)]
    ps = [c.comp.p for c in all_rows]
    for c, h, q in zip(all_rows, holm(ps), benjamini_hochberg(ps)):
        c.holm_p, c.bh_p = h, q
    return all_rows


# ---------------------------------------------------------------------------------- markdown
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


def render_markdown(
    name: str, rows: list[dict[str, Any]], cells: list[dict[str, Any]], source: str, resolution: float = 0.005
) -> str:
    """The REPORT.md text."""
    statuses: dict[str, int] = defaultdict(int)
    for r in rows:
        statuses[r["status"]] += 1
    ok = _ok(rows)
    metrics = [m for m in METRICS if present(rows, m.key)]
    seeds = sorted({int(r["seed"]) for r in ok})
    axes = [a for a in AXES if len({str(r[a]) for r in ok}) > 1]
    fam = family(rows, axes, [m.key for m in metrics])
    shifts = sorted({int(k.rsplit("k", 1)[1]) for k in per_k_columns(rows) if k.startswith("consistency_")})
    lines = [f"# Ablation report: {name}", "",
             f"{len(rows)} runs: " + ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
             + f"; seeds {', '.join(map(str, seeds)) or '–'}; read from `{source}`.", "", "## How to read this", "",
             "Values are percent. A cell's value is the mean over its seeds ± the half-width of the 95% Student-t "
             "interval (unpaired: for comparisons use the paired tables). `params / MACs` is the size of each cell's "
             "model (MACs per image, one forward pass).", ""]  # fmt: skip
    for m in metrics:
        meaning = m.meaning.replace("the k measured", f"k ∈ {{{', '.join(map(str, shifts))}}}") if shifts else m.meaning
        lines.append(f"- **{m.label}**: {meaning}.")
    if present(rows, "edge_lost_ink"):
        lost = max(float(r["edge_lost_ink"]) for r in ok if r.get("edge_lost_ink") is not None)
        px = describe([float(r["edge_shift_px"]) for r in ok if r.get("edge_shift_px") is not None]).mean
        lines.append(f"- Edge probe: lost-ink fraction {lost:.6f} (largest over runs); content moved {px:.1f} px on average"
                     + (" — nearly nothing moved: these images have no background, the probe says little here." if px < 1 else "."))  # fmt: skip
    absent = [
        text
        for key, text in NEW_METRICS.items()
        if not any(k.startswith(key) for r in ok for k in r if r[k] is not None)
    ]
    predate = len(absent) == len(NEW_METRICS)  # no metric of this version at all: older results
    unrecorded = sum(1 for r in rows if not r.get("augment_recorded"))
    if absent or unrecorded:
        lead = "**Absent from these results** (they predate them)" if predate else "Not measured by this grid"
        lines += ["", f"{lead}: " + "; ".join(absent) + "." if absent else ""]
        if unrecorded:
            lines.append(f"The augmentation preset was not recorded for {unrecorded} runs (written before the "
                         f"`augment` axis); they are shown as `{rows[0]['augment']}`, the data set's default then.")  # fmt: skip
    lines += ["", f"**Comparisons** are paired by seed (A − B on the same seed, in points), one family of {len(fam)}. "
              f"`95% CI` is the uncorrected interval; `p` the paired t-test; `Holm p` and `BH q` the Holm and "
              f"Benjamini–Hochberg adjusted values over the whole family. **Verdict uses Holm**: `differs` = "
              f"CI excludes 0 after Holm adjustment (p < {ALPHA}); `uncorrected only` = the raw CI excludes 0 but "
              f"Holm does not; `within ±{resolution * 100:g}` = the whole raw CI lies inside ±{resolution * 100:g} "
              f"points; `not resolved` = the CI is too wide to say either (more seeds needed; not \"no difference\").", ""]  # fmt: skip
    if fam:
        n_holm = sum(c.holm_p < ALPHA for c in fam)
        n_bh = sum(c.bh_p < ALPHA for c in fam)
        n_raw = sum(c.comp.significant for c in fam)
        lines += [f"Of {len(fam)} comparisons, {n_raw} have a raw CI excluding 0 (about {ALPHA * len(fam):.0f} expected "
                  f"by chance alone if nothing differed), {n_bh} survive Benjamini–Hochberg at 5% FDR, {n_holm} survive "
                  "Holm at 5% FWER.", ""]  # fmt: skip

    show = [c for c in COORDS if c in ("model_label", "pool", "padding") or c in varying(rows)]
    header = [c.replace("model_label", "model") for c in show] + ["params / MACs", "n"] + [m.label for m in metrics]
    lines += ["## Cells", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for c in cells:
        status = "" if c["statuses"] == "ok" else f" ({c['statuses']})"
        vals = [str(c[k]) for k in show] + [_size(c["params"], c["macs"]), f"{c['n_ok']}/{c['n']}{status}"]
        lines.append("| " + " | ".join(vals + [_fmt(_cell_summary(c, m.key)) for m in metrics]) + " |")

    for prefix, title in (("consistency_zero_k", "Shift consistency (zero-fill) by largest offset k"),
                          ("consistency_circular_k", "Shift consistency (circular) by largest offset k"),
                          ("shift_acc_zero_k", "Accuracy under random zero-fill shift by largest offset k"),
        ("shift_acc_circular_k", "Accuracy under random circular shift by largest offset k"),
                          ("diag_consistency_", "LEGACY diagonal consistency by shift s (original vs (+s, +s))"),
                          ("diag_shift_acc_", "LEGACY accuracy under one (+s, +s) shift")):  # fmt: skip
        cols = [k for k in per_k_columns(rows) if k.startswith(prefix) and k[len(prefix) :].isdigit()]
        if not cols:
            continue
        cols.sort(key=lambda k: int(k[len(prefix) :]))
        unit = "k" if prefix.endswith("_k") else "s"
        head = [c.replace("model_label", "model") for c in show] + [f"{unit}={k[len(prefix) :]}" for k in cols]
        lines += ["", f"## {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for c in cells:
            lines.append(
                "| " + " | ".join([str(c[k]) for k in show] + [_fmt(_cell_summary(c, k)) for k in cols]) + " |"
            )

    for axis in axes:
        for m in metrics:
            mine = [c for c in fam if c.axis == axis and c.metric == m.key]
            if not mine:
                continue
            lines += ["", f"## {axis}: {m.label} (A − B, points, paired by seed)", "",
                      "| context | A | B | params / MACs (A vs B) | n | A − B | 95% CI (uncorrected) | p | Holm p | BH q "
                      "| CI excludes 0, Holm-adjusted | verdict |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
            shown = set(varying(rows)) | {"model_label", "padding", "pool"}
            for x in mine:
                context = ", ".join(v for k, v in x.context.items() if k in shown)
                d = x.comp.diff
                size = "same" if x.size_a == x.size_b else f"{_size(*x.size_a)} vs {_size(*x.size_b)}"
                ci = "–" if math.isnan(d.ci95) else f"[{d.low * 100:+.2f}, {d.high * 100:+.2f}]"
                holm_yes = "yes" if x.holm_p < ALPHA else "no"
                lines.append(f"| {context} | {x.comp.a} | {x.comp.b} | {size} | {d.n} | {d.mean * 100:+.2f} | {ci} | "
                             f"{_p(x.comp.p)} | {_p(x.holm_p)} | {_p(x.bh_p)} | {holm_yes} | "
                             f"{verdict(x.comp, x.holm_p, resolution)} |")  # fmt: skip
    problems = [r for r in rows if r["status"] != "ok"]
    if problems:
        lines += ["", "## Runs that did not finish", "", "| run | status | reason |", "|---|---|---|"]
        lines += [f"| {r['run_id']} | {r['status']} | {str(r.get('error') or '').splitlines()[0][:160] if r.get('error') else ''} |"
                  for r in problems]  # fmt: skip
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
    _atomic_text(path, buffer.getvalue())


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_report(
    out: str | Path, name: str | None = None, plots: bool = True, resolution: float = 0.005
) -> dict[str, Path]:
    """Write results.csv, summary.csv, REPORT.md (and PNG plots) into ``out``.

    ``results.csv`` is rewritten only from ``results/*.json``; a folder that holds only
    a ``results.csv`` (a committed report) is read from it and keeps it untouched.
    """
    out = Path(out)
    rows, source = load_rows(out)
    cells = summarize_cells(rows)
    grid_name = None
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        grid_name = json.loads((out / "grid.json").read_text())["name"]
    name = name or grid_name or next((str(r["grid"]) for r in rows if r.get("grid")), out.name)
    paths = {"results": out / "results.csv", "summary": out / "summary.csv", "report": out / "REPORT.md"}
    if source == "results":
        _write_csv(paths["results"], rows)
    _write_csv(paths["summary"], cells)
    _atomic_text(paths["report"], render_markdown(name, rows, cells, source, resolution))
    if plots:
        from cnnbench.bench.plots import plot

        ok = _ok(rows)
        axes = [a for a in AXES if len({str(r[a]) for r in ok}) > 1]
        fam = family(rows, axes, [m.key for m in METRICS if present(rows, m.key)])
        for p in plot(rows, cells, fam, out):
            paths[p.stem] = p
    return paths
