"""Draw benchmarks/results/chart.png from the results rows (matplotlib is imported only here)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

_TARGET = re.compile(r"(<=|>=)\s*([0-9.]+)")
_COLORS = {
    "dis-logging": "#1f77b4",
    "baseline": "#9e9e9e",
    "budget": "#cfcfcf",
    "naive": "#d62728",
    "format only": "#ff7f0e",
    "fluent async": "#8c564b",
}
#: Rows whose baseline is a budget derived from the configuration rather than a measured contender.
_BUDGETS = ("P4", "P5", "P6")


def target_share(row: Dict[str, Any]) -> Optional[float]:
    """Return how much of its target a row uses: 1.0 is exactly on target, below 1.0 is met.

    Args:
        row: a results.json row with ``ratio`` and ``target`` (``"<= 0.5"`` or ``">= 4 ..."``).

    Returns:
        ``ratio / limit`` for an upper bound, ``limit / ratio`` for a lower bound; None when the row
        has no ratio.
    """
    match = _TARGET.match(row.get("target") or "")
    ratio = row.get("ratio")
    if not match or ratio is None or ratio <= 0:
        return None
    limit = float(match.group(2))
    return float(ratio) / limit if match.group(1) == "<=" else limit / float(ratio)


def _bars(row: Dict[str, Any]) -> List[Tuple[str, float]]:
    bars = []
    if row.get("value") is not None:
        bars.append(("dis-logging", float(row["value"])))
    if row.get("baseline") is not None:
        label = "budget" if row["id"] in _BUDGETS else "baseline"
        bars.append((label, float(row["baseline"])))
    details = row.get("details", {})
    if details.get("naive_rps") is not None:
        bars.append(("naive", float(details["naive_rps"])))
    floor = details.get("cpu", {}).get("added_ns_per_call", {}).get("format_only")
    if floor is not None and row.get("value") is not None:
        bars.append(("format only", float(floor["median"])))
    if details.get("fluent_added_ns") is not None:
        bars.append(("fluent async", float(details["fluent_added_ns"])))
    if row["id"] in ("S1", "S2") and details.get("runs"):
        key = "delivered_rps" if row["id"] == "S1" else "cpu_us_per_record"
        name = "threads" if row["id"] == "S1" else "message_bytes"
        return [(f"{r[name]}", float(r[key])) for r in details["runs"]]
    return bars


def write_chart(rows: List[Dict[str, Any]], path: Path, meta: Dict[str, Any]) -> None:
    """Write a PNG with one panel per benchmark (library vs baseline) and a target summary panel.

    Args:
        rows: results.json rows.
        path: where to write the PNG.
        meta: results.json ``meta`` (shown in the title).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 4, figsize=(16, 12))
    flat = list(axes.flat)
    for ax, row in zip(flat, rows):
        bars = _bars(row)
        colors = [_COLORS.get(b[0], _COLORS["dis-logging"]) for b in bars]
        ax.bar([b[0] for b in bars], [b[1] for b in bars], color=colors)
        title = f"{row['id']}: {row['figure']}"
        if row["status"] == "ok" and row.get("ratio") is not None:
            title += f"\nratio {row['ratio']:.3g}, target {row['target']}"
        ax.set_title(title, fontsize=9)
        ax.set_ylabel(row["unit"], fontsize=8)
        ax.tick_params(labelsize=8)
        if row["status"] != "ok":
            ax.text(0.5, 0.5, row["status"], transform=ax.transAxes, ha="center", fontsize=12)
    for ax in flat[len(rows) : -1]:
        ax.axis("off")
    summary = flat[-1]
    shares = [(row["id"], target_share(row)) for row in rows]
    shown = [(pid, s) for pid, s in shares if s is not None]
    summary.barh(
        [pid for pid, _ in shown],
        [s for _, s in shown],
        color=["#2ca02c" if s <= 1 else "#d62728" for _, s in shown],
    )
    summary.axvline(1.0, color="black", linestyle="--", linewidth=1)
    summary.invert_yaxis()
    summary.set_title("share of target used (< 1 = met)", fontsize=9)
    summary.tick_params(labelsize=8)
    mode = "quick" if meta.get("quick") else "full"
    fig.suptitle(
        f"dis-logging {meta.get('dis_logging', '')} benchmarks ({mode} run, "
        f"Python {meta.get('python', '')}, {meta.get('cpus', '?')} CPUs)",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
