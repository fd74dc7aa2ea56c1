"""The scaling figure of ``bench_sync.py --plot``: wall time and peak RSS against N.

matplotlib is not a dependency of flowtly-sync: it comes with the ``bench`` extra
(``pip install -e '.[bench]'``) and is imported only when a figure is drawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

__all__ = ["MISSING", "Point", "plot_scaling", "require_matplotlib"]

MISSING = (
    "--plot needs matplotlib, which is not installed; install the benchmark extra with "
    "`pip install -e '.[bench]'` (or `pip install matplotlib`)"
)
# One colour per scenario; the API bound of a scenario is drawn dashed in its colour.
_COLORS = {"initial": "tab:blue", "noop": "tab:orange"}


@dataclass(frozen=True, slots=True)
class Point:
    """One measured run: a scenario at ``companies`` companies."""

    scenario: str
    companies: int
    wall_s: float
    peak_rss_mib: float | None
    bound_s: float


def require_matplotlib() -> ModuleType:
    """matplotlib set to its file-only backend; SystemExit with `MISSING` when absent."""
    try:
        import matplotlib
    except ImportError as error:
        raise SystemExit(MISSING) from error
    # No display is needed (nor wanted on a benchmark machine): render to files only.
    matplotlib.use("Agg")
    return matplotlib


def _label(n: int) -> str:
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


def plot_scaling(points: Sequence[Point], out: Path, title: str) -> Path:
    """Draw wall time (with the API bound, dashed) and peak RSS of each scenario against
    the company count, on a log x axis, and write the figure to ``out`` (PNG)."""
    require_matplotlib()
    import matplotlib.pyplot as plt

    scenarios = list(dict.fromkeys(point.scenario for point in points))
    sizes = sorted({point.companies for point in points})
    fig, (wall_ax, rss_ax) = plt.subplots(1, 2, figsize=(12, 5), layout="constrained")
    for index, scenario in enumerate(scenarios):
        color = _COLORS.get(scenario, f"C{index + 2}")
        mine = sorted((p for p in points if p.scenario == scenario), key=lambda p: p.companies)
        xs = [p.companies for p in mine]
        wall_ax.plot(xs, [p.wall_s for p in mine], "o-", color=color, label=f"{scenario}: wall")
        bounds = [(p.companies, p.bound_s) for p in mine if p.bound_s > 0]
        wall_ax.plot(
            [x for x, _ in bounds],
            [b for _, b in bounds],
            "--",
            color=color,
            label=f"{scenario}: API bound",
        )
        for p in mine:
            wall_ax.annotate(
                f"{p.wall_s:.1f} s", (p.companies, p.wall_s), textcoords="offset points",
                xytext=(4, 6), fontsize=8, color=color,
            )  # fmt: skip
        rss = [(p.companies, p.peak_rss_mib) for p in mine if p.peak_rss_mib is not None]
        rss_ax.plot([x for x, _ in rss], [r for _, r in rss], "o-", color=color, label=scenario)
        for x, r in rss:
            rss_ax.annotate(
                f"{r:.0f}", (x, r), textcoords="offset points", xytext=(4, 6), fontsize=8,
                color=color,
            )  # fmt: skip
    # Wall times of a first sync and a no-op run differ by orders of magnitude: log y too.
    wall_ax.set_yscale("log")
    wall_ax.set_title("wall time of the sync process")
    wall_ax.set_ylabel("seconds (log)")
    rss_ax.set_title("peak RSS of the sync process")
    rss_ax.set_ylabel("MiB")
    top = max((p.peak_rss_mib for p in points if p.peak_rss_mib is not None), default=1.0)
    rss_ax.set_ylim(0, top * 1.15)  # room for the value labels
    for ax in (wall_ax, rss_ax):
        ax.set_xscale("log")
        ax.margins(x=0.1)
        ax.set_xticks(sizes, [_label(n) for n in sizes])
        ax.minorticks_off()
        ax.set_xlabel("companies in the CRM (log)")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
