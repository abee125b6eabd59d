"""Turn a folder of run results into ``results.csv``, ``summary.csv``, ``REPORT.md`` and plots.

Example:
    >>> paths = write_report("results/smoke")  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

from cnnbench.bench.runner import load_results
from cnnbench.bench.stats import Comparison, Summary, describe, paired

COORDS = ("model_label", "pool", "padding", "padding_mode", "precision", "devices")
METRICS = ("test_acc", "shift_consistency", "border_acc", "best_val_acc", "images_per_s", "train_time_s")


def flatten(result: dict[str, Any]) -> dict[str, Any]:
    """One CSV row: coordinates, metrics, and robustness metrics spread into columns."""
    row = {k: result.get(k) for k in ("run_id", *COORDS, "model", "seed", "status", "test_acc", "test_loss", "best_val_acc",
                                       "train_time_s", "images_per_s", "peak_memory_mb", "params", "macs", "epochs")}  # fmt: skip
    rob = result.get("robustness") or {}
    for s, v in (rob.get("shift_acc") or {}).items():
        row[f"shift_acc_{s}"] = v
    for s, v in (rob.get("shift_consistency") or {}).items():
        row[f"shift_consistency_{s}"] = v
    consistency = list((rob.get("shift_consistency") or {}).values())
    row["shift_consistency"] = sum(consistency) / len(consistency) if consistency else None
    row["border_acc"] = rob.get("border_acc_mean")
    row["error"] = (result.get("error") or "")[:300]
    return row


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


def group(rows: list[dict[str, Any]]) -> dict[tuple[Any, ...], list[dict[str, Any]]]:
    """Rows by cell (all coordinates but the seed), in first-seen order."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[tuple(row[c] for c in COORDS)].append(row)
    return groups


def summarize_cells(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per cell: mean, std, 95% CI and n of each metric over the ``ok`` seeds."""
    out = []
    for key, members in group(rows).items():
        ok = [r for r in members if r["status"] == "ok"]
        row: dict[str, Any] = dict(zip(COORDS, key))
        row["n"], row["n_ok"] = len(members), len(ok)
        row["statuses"] = ",".join(sorted({r["status"] for r in members}))
        for metric in METRICS:
            s = describe([float(r[metric]) for r in ok if r.get(metric) is not None])
            row[f"{metric}_mean"], row[f"{metric}_std"], row[f"{metric}_ci95"] = s.mean, s.std, s.ci95
        out.append(row)
    return out


def _by_seed(rows: list[dict[str, Any]], metric: str, **coords: Any) -> dict[int, float]:
    return {
        int(r["seed"]): float(r[metric])
        for r in rows
        if r["status"] == "ok" and r.get(metric) is not None and all(str(r[k]) == str(v) for k, v in coords.items())
    }


def comparisons(
    rows: list[dict[str, Any]], axis: str, metric: str = "test_acc"
) -> list[tuple[dict[str, Any], Comparison]]:
    """Paired comparisons between the values of ``axis`` (pool or padding), all else equal."""
    fixed = [c for c in COORDS if c != axis]
    out = []
    contexts = sorted({tuple(str(r[c]) for c in fixed) for r in rows if r["status"] == "ok"})
    for context in contexts:
        where = dict(zip(fixed, context))
        values = sorted(
            {str(r[axis]) for r in rows if r["status"] == "ok" and all(str(r[k]) == v for k, v in where.items())}
        )
        for a, b in itertools.combinations(values, 2):
            comp = paired(
                a, _by_seed(rows, metric, **where, **{axis: a}), b, _by_seed(rows, metric, **where, **{axis: b})
            )
            if comp is not None:
                out.append((where, comp))
    return out


def _fmt(s: Summary, scale: float = 100.0, digits: int = 2) -> str:
    if math.isnan(s.mean):
        return "–"
    ci = "" if math.isnan(s.ci95) else f" ± {s.ci95 * scale:.{digits}f}"
    return f"{s.mean * scale:.{digits}f}{ci}"


def _pct(value: Any) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{float(value) * 100:.2f}"


def render_markdown(name: str, rows: list[dict[str, Any]], cells: list[dict[str, Any]]) -> str:
    statuses: dict[str, int] = defaultdict(int)
    for r in rows:
        statuses[r["status"]] += 1
    lines = [
        f"# Ablation report: {name}",
        "",
        f"{len(rows)} runs: " + ", ".join(f"{n} {s}" for s, n in sorted(statuses.items())),
        "",
    ]
    lines += ["Accuracy values are percent: mean ± half-width of the 95% confidence interval over seeds",
              "(Student's t). `consistency` is the share of test images whose predicted class survives a",
              "diagonal shift (mean over the shifts); `border` the accuracy with the content pushed to an edge or corner.", ""]  # fmt: skip
    lines += [
        "## Summary",
        "",
        "| model | pool | padding | mode | precision | n | test acc | shift consistency | border acc | images/s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    ranked = sorted(
        cells,
        key=lambda c: (str(c["model_label"]), -(c["test_acc_mean"] if not math.isnan(c["test_acc_mean"]) else -1)),
    )
    for c in ranked:
        acc = Summary(c["n_ok"], c["test_acc_mean"], c["test_acc_std"], c["test_acc_ci95"])
        cons = Summary(c["n_ok"], c["shift_consistency_mean"], c["shift_consistency_std"], c["shift_consistency_ci95"])
        border = Summary(c["n_ok"], c["border_acc_mean"], c["border_acc_std"], c["border_acc_ci95"])
        ips = "–" if math.isnan(c["images_per_s_mean"]) else f"{c['images_per_s_mean']:,.0f}"
        status = "" if c["statuses"] == "ok" else f" ({c['statuses']})"
        lines.append(
            f"| {c['model_label']} | {c['pool']} | {c['padding']} | {c['padding_mode']} | {c['precision']} | {c['n_ok']}/{c['n']}{status} | {_fmt(acc)} | {_fmt(cons)} | {_fmt(border)} | {ips} |"
        )
    for axis, metric, title in (("pool", "test_acc", "Pooling: test accuracy"), ("pool", "shift_consistency", "Pooling: shift consistency"),
                                ("padding", "test_acc", "Padding: test accuracy"), ("padding", "border_acc", "Padding: border accuracy")):  # fmt: skip
        comps = comparisons(rows, axis, metric)
        if not comps:
            continue
        lines += [
            "",
            f"## {title} (paired by seed, A − B in points)",
            "",
            "| context | A | B | A − B | 95% CI | real? |",
            "|---|---|---|---|---|---|",
        ]
        for where, comp in comps:
            context = ", ".join(
                str(v) for k, v in where.items() if k in ("model_label", "pool", "padding") and k != axis
            )
            d = comp.diff
            ci = "–" if math.isnan(d.ci95) else f"[{d.low * 100:+.2f}, {d.high * 100:+.2f}]"
            lines.append(
                f"| {context} | {comp.a} | {comp.b} | {d.mean * 100:+.2f} | {ci} | {'yes' if comp.significant else 'no'} |"
            )
    problems = [r for r in rows if r["status"] != "ok"]
    if problems:
        lines += ["", "## Runs that did not finish", "", "| run | status | reason |", "|---|---|---|"]
        lines += [
            f"| {r['run_id']} | {r['status']} | {(r.get('error') or '').splitlines()[0][:160] if r.get('error') else ''} |"
            for r in problems
        ]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, Any]], cells: list[dict[str, Any]], out: Path) -> list[Path]:
    """accuracy.png, shift.png and throughput.png; empty list when there is nothing to plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok_cells = [c for c in cells if c["n_ok"]]
    if not ok_cells:
        return []
    models = sorted({str(c["model_label"]) for c in ok_cells})
    paths = []
    fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 4), squeeze=False)
    for ax, model in zip(axes[0], models):
        mine = [c for c in ok_cells if str(c["model_label"]) == model]
        pools = list(dict.fromkeys(str(c["pool"]) for c in mine))
        paddings = list(dict.fromkeys(str(c["padding"]) for c in mine))
        width = 0.8 / max(len(paddings), 1)
        for j, pad in enumerate(paddings):
            sel = [next((c for c in mine if str(c["pool"]) == p and str(c["padding"]) == pad), None) for p in pools]
            means = [c["test_acc_mean"] * 100 if c else math.nan for c in sel]
            errs = [0 if not c or math.isnan(c["test_acc_ci95"]) else c["test_acc_ci95"] * 100 for c in sel]
            ax.bar(
                [i + j * width for i in range(len(pools))], means, width, yerr=errs, capsize=3, label=f"padding={pad}"
            )
        finite = [c["test_acc_mean"] * 100 for c in mine if not math.isnan(c["test_acc_mean"])]
        ax.set_ylim(max(min(finite) - 2, 0), min(max(finite) + 1, 100.5))
        ax.set_xticks([i + width * (len(paddings) - 1) / 2 for i in range(len(pools))], pools)
        ax.set(title=model, xlabel="pool", ylabel="test accuracy (%)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    paths.append(out / "accuracy.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    shift_cols = sorted({int(k.split("_")[-1]) for r in rows for k in r if k.startswith("shift_acc_")})
    if shift_cols:
        fig, axes = plt.subplots(2, len(models), figsize=(5 * len(models), 7), squeeze=False)
        for col, model in enumerate(models):
            mine = [r for r in rows if r["status"] == "ok" and str(r["model_label"]) == model]
            for pool in dict.fromkeys(str(r["pool"]) for r in mine):
                pool_rows = [r for r in mine if str(r["pool"]) == pool]
                for row_i, prefix in enumerate(("shift_acc_", "shift_consistency_")):
                    base = (
                        [describe([float(r["test_acc"]) for r in pool_rows]).mean] if prefix == "shift_acc_" else [1.0]
                    )
                    ys = base + [
                        describe(
                            [float(r[f"{prefix}{s}"]) for r in pool_rows if r.get(f"{prefix}{s}") is not None]
                        ).mean
                        for s in shift_cols
                    ]
                    axes[row_i][col].plot([0, *shift_cols], [y * 100 for y in ys], marker="o", label=pool)
            axes[0][col].set(
                title=f"{model}: accuracy vs shift", xlabel="shift (pixels, both axes)", ylabel="test accuracy (%)"
            )
            axes[1][col].set(
                title=f"{model}: prediction unchanged", xlabel="shift (pixels, both axes)", ylabel="consistency (%)"
            )
            axes[0][col].legend(fontsize=8)
        fig.tight_layout()
        paths.append(out / "shift.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)

    precisions = list(dict.fromkeys(str(c["precision"]) for c in ok_cells))
    fig, ax = plt.subplots(figsize=(2 + 2 * len(models), 4))
    width = 0.8 / max(len(precisions), 1)
    for j, prec in enumerate(precisions):
        vals = [
            describe(
                [
                    c["images_per_s_mean"]
                    for c in ok_cells
                    if str(c["model_label"]) == m
                    and str(c["precision"]) == prec
                    and not math.isnan(c["images_per_s_mean"])
                ]
            ).mean
            for m in models
        ]
        ax.bar([i + j * width for i in range(len(models))], vals, width, label=prec)
    ax.set_xticks([i + width * (len(precisions) - 1) / 2 for i in range(len(models))], models)
    ax.set(ylabel="training images/s", title="throughput vs precision")
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths.append(out / "throughput.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths


def write_report(out: str | Path, name: str | None = None, plots: bool = True) -> dict[str, Path]:
    """Write results.csv, summary.csv, REPORT.md (and PNG plots) into ``out``."""
    out = Path(out)
    results = load_results(out)
    if not results:
        raise ValueError(f"no results under {out / 'results'}")
    rows = [flatten(r) for r in results]
    cells = summarize_cells(rows)
    name = name or str(results[0].get("grid") or out.name)
    paths = {"results": out / "results.csv", "summary": out / "summary.csv", "report": out / "REPORT.md"}
    _write_csv(paths["results"], rows)
    _write_csv(paths["summary"], cells)
    _atomic_text(paths["report"], render_markdown(name, rows, cells))
    if plots:
        for p in plot(rows, cells, out):
            paths[p.stem] = p
    return paths
