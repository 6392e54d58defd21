"""Smoke tests of the benchmark suite: it runs end to end at tiny sizes; no timing is asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
IDS = ["P1", "P2", "P3", "P4", "P5", "P6", "P7", "P8", "S1", "S2", "M1"]


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    argv = ["--quick", "--scale", "0.02", "--no-chart", "--out", str(out)]
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", *argv],
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    return proc, out


class TestQuickRun:
    def test_exits_zero(self, quick_results):
        """A tiny quick run of every benchmark exits with status 0."""
        proc, _ = quick_results
        assert proc.returncode == 0, proc.stderr[-4000:]

    def test_writes_one_row_per_target(self, quick_results):
        """results.json holds one measured row per target, in id order."""
        _, out = quick_results
        doc = json.loads((out / "results.json").read_text(encoding="utf-8"))
        rows = [(r["id"], r["status"] == "ok") for r in doc["results"]]
        assert [(pid, True) for pid in IDS] == rows

    def test_prints_the_table(self, quick_results):
        """The run prints a table with a line for every target."""
        proc, _ = quick_results
        lines = proc.stdout.splitlines()
        assert IDS == [pid for pid in IDS if any(line.startswith(pid + " ") for line in lines)]


class TestChart:
    def test_writes_png(self, quick_results, tmp_path, monkeypatch):
        """The chart step renders results.json as a PNG file."""
        pytest.importorskip("matplotlib")
        monkeypatch.syspath_prepend(str(ROOT))
        from benchmarks.chart import write_chart

        _, out = quick_results
        doc = json.loads((out / "results.json").read_text(encoding="utf-8"))
        write_chart(doc["results"], tmp_path / "chart.png", doc["meta"])
        assert b"\x89PNG" == (tmp_path / "chart.png").read_bytes()[:4]


class TestOutputDirectory:
    @pytest.mark.parametrize(
        ("argv", "expected"),
        [
            ([], "results"),
            (["--quick"], "results/quick"),
            (["--only", "P1,P3"], "results/partial"),
            (["--scale", "0.5"], "results/partial"),
            (["--quick", "--only", "P1"], "results/quick"),
            (["--only", ",".join(IDS)], "results"),
            (["--only", "P1", "--out", "elsewhere"], "elsewhere"),
        ],
    )
    def test_only_a_complete_full_run_writes_the_committed_results(
        self, argv, expected, monkeypatch
    ):
        """Without --out, a quick run, a subset or another scale writes beside the committed
        results.json and chart.png, never over them."""
        monkeypatch.syspath_prepend(str(ROOT))
        from benchmarks.run import DEFAULT_OUT, parse_args

        out = parse_args(argv).out
        assert Path(expected) == (
            out if out == Path("elsewhere") else out.relative_to(DEFAULT_OUT.parent)
        )
