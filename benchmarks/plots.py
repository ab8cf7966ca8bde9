"""PNG plots of a benchmark run, written next to its markdown report.

One function per plot takes one scenario's results (``{impl: result dict}``) and returns a
matplotlib figure, or None when no implementation has the series it needs. matplotlib is
optional and imported only here, on use: without it :func:`write` returns None and the report
says the plots were skipped. Figures are drawn on Agg canvases, never through pyplot, so no
global backend or figure state is touched.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SKIPPED = "plots skipped: pip install matplotlib"
BIN_WIDTHS = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0]
MIN_BINS, MAX_BINS, FILES_PER_BIN = 20, 300, 5
"""A burst's bins: the narrowest width giving at most MAX_BINS bins that hold FILES_PER_BIN files
on average (else a slow burst is a comb of 0s and 1s), widened no further than MIN_BINS bins:
ours delivers 200 files in a fraction of a second, upstream 2,000 files in minutes."""


@dataclass(frozen=True)
class Plot:
    """A written PNG: the scenario section it belongs under, its alt text and its file name."""

    scenario: str
    title: str
    filename: str

    def markdown(self) -> str:
        return f"![{self.title}]({self.filename})"


def _figure(**kwargs: Any) -> Figure:
    """A figure on its own Agg canvas (raises ImportError without matplotlib)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(layout="constrained", **kwargs)
    FigureCanvasAgg(figure)
    return figure


def _ok(results: dict[str, dict], key: str) -> dict[str, dict]:
    """The implementations that ran and hold a non-empty ``key``."""
    return {name: r for name, r in results.items() if "error" not in r and r.get(key)}


def latency_cdf(results: dict[str, dict]) -> Figure | None:
    """Share of files delivered within a latency, one line per implementation, log latency axis."""
    series = _ok(results, "latencies_ms")
    if not series:
        return None
    figure = _figure(figsize=(8, 4.5))
    ax = figure.add_subplot()
    for name, result in series.items():
        values = sorted(result["latencies_ms"])
        shares = [100 * (i + 1) / len(values) for i in range(len(values))]
        p50 = result.get("p50_ms")
        label = f"{name} (p50 {p50:.3g} ms, {len(values)} files)" if p50 is not None else name
        ax.step(values, shares, where="post", label=label)
    ax.set_xscale("log")
    ax.set_ylim(0, 101)
    ax.set_title("Latency CDF: rename into the watched dir -> client's `file` message (1 KiB files)")
    ax.set_xlabel("latency (ms, log scale)")
    ax.set_ylabel("files delivered within that latency (%)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    return figure


def _bins(arrivals: list[float]) -> tuple[float, list[float], list[float]]:
    """(bin width s, bin start times, files/s per bin) of arrival times since the first rename."""
    span = max(*arrivals, BIN_WIDTHS[0])
    fits = [w for w in BIN_WIDTHS if span / w <= MAX_BINS and len(arrivals) * w / span >= FILES_PER_BIN]
    many = [w for w in BIN_WIDTHS if span / w >= MIN_BINS]
    width = min(fits[0] if fits else BIN_WIDTHS[-1], many[-1] if many else BIN_WIDTHS[0])
    counts = [0] * (int(span / width) + 1)
    for t in arrivals:
        counts[int(t / width)] += 1
    return width, [i * width for i in range(len(counts))], [c / width for c in counts]


def burst_rate(results: dict[str, dict]) -> Figure | None:
    """Files/s over time since the first rename, one panel per implementation (own time scale:
    the implementations differ by orders of magnitude), with the burst's mean as a dashed line."""
    series = _ok(results, "arrivals_s")
    if not series:
        return None
    figure = _figure(figsize=(8, 2.6 * len(series) + 0.6))
    axes = figure.subplots(len(series), 1, squeeze=False)[:, 0]
    for ax, (name, result) in zip(axes, series.items(), strict=True):
        width, starts, rates = _bins(result["arrivals_s"])
        bins = f"{width:g} s bins" if width >= 1 else f"{width * 1000:g} ms bins"
        ax.stairs(rates, [*starts, starts[-1] + width], fill=True, alpha=0.6, label=bins)
        mean = result.get("files_per_s")
        if mean:
            ax.axhline(mean, color="black", linestyle="--", linewidth=1, label=f"mean {mean:.3g} files/s")
        ax.set_title(f"{name}: {len(result['arrivals_s'])} of {result.get('files', '?')} files delivered")
        ax.set_xlabel("time since the first rename (s)")
        ax.set_ylabel("delivery rate (files/s)")
        ax.set_xlim(0, starts[-1] + width)
        ax.set_ylim(0, max(rates) * 1.35)  # headroom for the legend
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper right", ncols=2)
    figure.suptitle("Burst: delivery rate over time (10 KiB files renamed in at once)")
    return figure


def wan_rate(results: dict[str, dict]) -> Figure | None:
    """Files/s to the file and the SFTP destination per implementation, against the link's own
    limit measured in the same run (the bytes of one file pushed back to back, as files/s)."""
    series = _ok(results, "link_mib_s")
    if not series:
        return None
    figure = _figure(figsize=(8, 4.5))
    ax = figure.add_subplot()
    kinds = [("file_files_per_s", "file destination (requests cross the link)"),
             ("sftp_files_per_s", "SFTP destination (data crosses the link)")]
    bar, highest = 0.35, 0.0
    for k, (key, label) in enumerate(kinds):
        xs = [i + (k - 0.5) * bar for i in range(len(series))]
        values = [r.get(key) or 0.0 for r in series.values()]
        bars = ax.bar(xs, values, bar, label=label)
        ax.bar_label(bars, fmt="%.3g")
        highest = max(highest, *values)
    for i, result in enumerate(series.values()):
        limit = result["link_mib_s"] * 1024 / result.get("kib", 100)
        ax.hlines(limit, i - bar * 1.2, i + bar * 1.2, colors="red", linestyles="--",
                  label="link's own limit in the same run (caps SFTP)" if i == 0 else None)
        ax.annotate(f"{limit:.3g}", (i + bar * 1.2, limit), xytext=(2, 0), textcoords="offset points",
                    va="center", fontsize=8, color="red")
        highest = max(highest, limit)
    ax.set_ylim(0, highest * 1.35)
    ax.set_xlim(-0.6, len(series) - 0.4)
    first = next(iter(series.values()))
    ax.set_xticks(range(len(series)), list(series))
    ax.set_title(f"WAN ({first.get('rtt_ms', 0):.0f} ms RTT): {first.get('files')} files of "
                 f"{first.get('kib', 100)} KiB, throughput vs the link's limit")
    ax.set_ylabel("throughput (files/s)")
    ax.set_xlabel("implementation")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    return figure


PLOTS: list[tuple[str, str, str, Callable[[dict[str, dict]], Figure | None]]] = [
    # scenario, alt text, file name, function
    ("latency", "latency CDF", "latency-cdf.png", latency_cdf),
    ("burst", "burst files/s over time", "burst-rate.png", burst_rate),
    ("wan", "WAN files/s vs link limit", "wan-rate.png", wan_rate),
]


def write(results: dict[str, dict[str, dict]], directory: Path) -> list[Plot] | None:
    """Write the PNG of every plot whose scenario ran into ``directory``; None without matplotlib."""
    try:
        _figure().clear()
    except ImportError:
        return None
    written = []
    for scenario, title, filename, draw in PLOTS:
        figure = draw(results[scenario]) if scenario in results else None
        if figure is not None:
            figure.savefig(directory / filename, dpi=100)
            written.append(Plot(scenario, title, filename))
    return written
