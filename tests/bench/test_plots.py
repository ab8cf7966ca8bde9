"""The benchmark report's PNG plots: written from the scenarios' raw series, embedded in the
markdown by relative link, and skipped with one line when matplotlib cannot be imported."""

from __future__ import annotations

import random
import struct
import sys
from pathlib import Path

import pytest

from benchmarks import plots, report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def synthetic_run() -> dict:
    """A run of latency, burst and wan with small made-up series (and one implementation that failed)."""
    rng = random.Random(16)
    ours_ms = [rng.uniform(1, 5) for _ in range(50)]
    theirs_ms = [rng.uniform(90, 150) for _ in range(50)]
    fast = sorted(rng.uniform(0, 0.4) for _ in range(200))
    slow = sorted(rng.uniform(0, 40) for _ in range(200))
    results = {
        "latency": {
            "upstream": {"files": 50, "lost": 0, "p50_ms": 120.0, "latencies_ms": theirs_ms},
            "ours": {"files": 50, "lost": 0, "p50_ms": 3.0, "latencies_ms": ours_ms},
        },
        "burst": {
            "upstream": {"files": 200, "files_per_s": 5.0, "arrivals_s": slow},
            "ours": {"files": 200, "files_per_s": 500.0, "arrivals_s": fast},
        },
        "wan": {
            "upstream": {"error": "not installed"},
            "ours": {"files": 100, "kib": 100, "rtt_ms": 50.0, "link_mib_s": 11.0, "file_files_per_s": 210.0,
                     "sftp_files_per_s": 80.0},
        },
        "big": {"ours": {"size_mib": 1, "elapsed_s": 0.1}},
    }
    return {"command": "python -m benchmarks --quick", "started": "2026-12-04T18:00:00+00:00", "mode": "quick",
            "duration_s": 1.0, "params": {}, "machine": {}, "descriptions": {}, "results": results}


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk, after checking its signature."""
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_MAGIC, f"{path.name} is not a PNG"
    assert head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def section(text: str, scenario: str) -> str:
    return text.split(f"\n## {scenario}\n", 1)[1].split("\n## ", 1)[0]


def test_plots_written_and_embedded_under_their_scenario(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("matplotlib")
    monkeypatch.setattr(report, "RESULTS", tmp_path / "results")
    out = tmp_path / "report" / "run.md"
    out.parent.mkdir()

    written = report.write(synthetic_run(), out)

    pngs = {p.name for p in out.parent.glob("*.png")}
    assert pngs == {"latency-cdf.png", "burst-rate.png", "wan-rate.png"}
    assert {p.name for p in written} >= pngs
    for name in pngs:
        path = out.parent / name
        width, height = png_size(path)
        assert width >= 400 and height >= 300, (name, width, height)
        assert path.stat().st_size > 10_000, f"{name} is nearly empty"
    text = out.read_text()
    assert "![latency CDF](latency-cdf.png)" in section(text, "latency")
    assert "![burst files/s over time](burst-rate.png)" in section(text, "burst")
    assert "![WAN files/s vs link limit](wan-rate.png)" in section(text, "wan")
    assert "![" not in section(text, "big")
    assert plots.SKIPPED not in text


def test_plot_without_its_series_is_not_drawn(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    run = synthetic_run()
    del run["results"]["latency"]["ours"]["latencies_ms"]
    del run["results"]["latency"]["upstream"]["latencies_ms"]

    written = plots.write(run["results"], tmp_path)

    assert written is not None
    assert [p.filename for p in written] == ["burst-rate.png", "wan-rate.png"]
    assert not (tmp_path / "latency-cdf.png").exists()


def test_without_matplotlib_report_renders_and_says_plots_skipped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)  # None in sys.modules: importing it raises ImportError
    monkeypatch.setattr(report, "RESULTS", tmp_path / "results")
    out = tmp_path / "run.md"

    written = report.write(synthetic_run(), out)

    assert not list(tmp_path.glob("*.png"))
    assert written[-1] == out
    text = out.read_text()
    assert plots.SKIPPED in text.splitlines()
    assert "![" not in text
    assert "| ours |" in section(text, "latency")
    assert plots.SKIPPED in capsys.readouterr().out
