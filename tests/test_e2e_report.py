"""End to end: one real digits sweep writes every report, and each holds what it should.

The module's one sweep trains LeNet-5 on the bundled digits for 2 epochs: learning rates
``1e10|0.001|0.003`` (1e10: the loss becomes NaN within a few steps, so two trials fail) over
seeds ``1|2``, so its trials are replicates.  The other tests read its folder, re-render it with
the console script, resume it without training to exercise the CI gate, and open its HTML page
in a real headless Chromium.
"""

from __future__ import annotations

import base64
import csv
import json
import shutil
import subprocess
import sys
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from devtools import Chromium, find_browser
from synthetic import png_size

from pytest_sweep.matrix.rangeconfig import parse_file
from pytest_sweep.plugins import importance, plots

if TYPE_CHECKING:
    from sweep_helpers import SweepPytester, SweepTools

SWEPT = ("CONFIG_LEARNING_RATE=1e10|0.001|0.003", "CONFIG_SEED=1|2")
PLOTS = [
    "test_acc_vs_learning_rate.png",
    "learning_curves.png",
    "test_acc_vs_sparsity.png",
    "parallel_coordinates.png",
]


@dataclass
class Sweep:
    cwd: Path
    result: pytest.RunResult
    dir: Path
    tools: SweepTools

    @property
    def summary(self) -> list[dict[str, Any]]:
        return self.tools.summary(self.dir)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory, sweep_tools: SweepTools) -> Sweep:
    cwd = tmp_path_factory.mktemp("report_sweep")
    (cwd / "sweep.rc").write_text(sweep_tools.digits_config(*SWEPT), encoding="utf-8")
    result = sweep_tools.run_process(cwd, "--range-config=sweep.rc", "--sweep-output=out", "--sweep-progress=none")
    return Sweep(cwd, result, sweep_tools.only_sweep_dir(cwd / "out"), sweep_tools)


def test_the_sweep_writes_every_report(sweep: Sweep) -> None:
    sweep.result.assert_outcomes(passed=4, failed=2)
    names = {p.name for p in sweep.dir.iterdir()}
    assert {
        "sweep_summary.json",
        "sweep_summary.csv",
        "sweep_analysis.txt",
        "sweep_importance.json",
        "refine_range",
        "sweep_report.html",
        "plots",
    } <= names
    assert sorted(p.name for p in (sweep.dir / "plots").iterdir()) == sorted(PLOTS)
    for name in PLOTS:
        assert png_size(sweep.dir / "plots" / name) == next(
            s.size_px for s in plots.plan(sweep.summary, sweep.dir) if s.name == name
        )
    assert not [p for p in sweep.dir.rglob(".*.tmp")]


def test_replicates_in_the_terminal_and_the_analysis(sweep: Sweep) -> None:
    records = {r["config_file"]: r for r in sweep.summary}
    assert [(r["config"]["CONFIG_SEED"], r["seed"]) for r in records.values()] == [
        ("1", 1),
        ("2", 2),
        ("1", 1),
        ("2", 2),
        ("1", 1),
        ("2", 2),
    ]  # every trial trains with CONFIG_SEED itself
    means = {}
    for lr, names in (("0.001", ("config_003", "config_004")), ("0.003", ("config_005", "config_006"))):
        means[lr] = sum(records[n]["test_acc"] for n in names) / 2
    best_lr = max(means, key=lambda k: means[k])
    best_first = "config_003" if best_lr == "0.001" else "config_005"
    sweep.result.stdout.fnmatch_lines(
        [
            "*= sweep results =*",
            "rank*config*test_acc %*± sd*n*sparsity*time*LEARNING_RATE",
            f"best: {best_first} at {means[best_lr]:.2f} ± *% test accuracy (mean over 2 of 2 seeds); * "
            "(paired t over 2 seeds, Bonferroni)*",
        ]
    )
    text = (sweep.dir / "sweep_analysis.txt").read_text(encoding="utf-8")
    assert "Total configurations tested: 3 (6 trials: replicates over CONFIG_SEED)\n" in text
    assert f"Test Accuracy: {means[best_lr]:.2f} ± " in text
    assert "BEST CONFIGURATION (mean over 2 seeds) AND ITS TIES:\n" in text
    assert "Tie set (paired t over 2 seeds, Bonferroni): " in text
    assert " pp behind over 2 shared seeds: p " in text
    order = [text.index(title) for title in ("FAILED TESTS", "PARAMETER IMPORTANCE", "NEXT SWEEP", "PLOTS (plots/)")]
    assert order == sorted(order)


def test_csv_has_the_json_columns(sweep: Sweep) -> None:
    with open(sweep.dir / "sweep_summary.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    summary = sweep.summary
    assert list(rows[0]) == list(summary[0])  # same columns, same order
    for row, rec in zip(rows, summary, strict=True):
        assert row["config_file"] == rec["config_file"] and row["status"] == rec["status"]
        # rounded to the precision one of 360 test images gives (0.28 pp steps: 2 decimals)
        assert (float(row["test_acc"]) if row["test_acc"] else None) == (
            round(rec["test_acc"], 2) if rec["test_acc"] is not None else None
        )
        assert json.loads(row["config"]) == rec["config"]


def test_importance_json_and_the_refined_range_run_as_is(sweep: Sweep, sweep_pytester: SweepPytester) -> None:
    doc = json.loads((sweep.dir / "sweep_importance.json").read_text(encoding="utf-8"))
    assert doc == json.loads(json.dumps(importance.compute(sweep.summary).to_json()))
    assert {p["name"] for p in doc["parameters"]} == {"CONFIG_LEARNING_RATE", "CONFIG_SEED"}
    assert doc["noise_source"] == "seed" and doc["complete_grid"] is False  # the 1e10 trials failed
    analysis = json.loads((sweep.dir / "sweep_analysis.json").read_text(encoding="utf-8"))
    assert analysis["importance"] == doc and analysis["noise"]["kind"] == "seeds"
    assert analysis["best"]["basis"] == "paired t over 2 seeds, Bonferroni"
    assert {f["config"] for f in analysis["failures"]} == {"config_001", "config_002"}
    assert (doc["combinations"], doc["combinations_passed"], doc["passed"]) == (6, 4, 4)
    # refine_range is a range config that collects as is: one item per combination it announces
    rc = parse_file(sweep.dir / "refine_range")
    seed = rc.param("CONFIG_SEED")
    assert seed is not None and seed.values == ("1", "2")
    announced = int((sweep.dir / "refine_range").read_text().splitlines()[1].split("; ")[1].split()[0])
    assert rc.count == announced
    result = sweep_pytester.run(f"--range-config={sweep.dir / 'refine_range'}", "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.OK
    assert len([line for line in result.outlines if "::config_" in line]) == announced


def _console(*args: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("pytest-sweep")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "pytest_sweep.cli"]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=300, check=False)


def test_console_script_report_renders_the_same_files(sweep: Sweep, tmp_path: Path) -> None:
    copy = tmp_path / sweep.dir.name
    shutil.copytree(sweep.dir, copy)
    derived = ["sweep_analysis.txt", "sweep_importance.json", "refine_range", "sweep_summary.csv", "sweep_report.html"]
    for name in derived:
        (copy / name).unlink()
    shutil.rmtree(copy / "plots")
    done = _console("report", str(copy))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("plots/ (4 of 4 plots)")
    for name in derived[1:4]:
        assert (copy / name).read_text() == (sweep.dir / name).read_text(), name
    # the analysis differs only in where refine_range is
    original = (sweep.dir / "sweep_analysis.txt").read_text().replace(str(sweep.dir), str(copy))
    assert (copy / "sweep_analysis.txt").read_text() == original
    assert sorted(p.name for p in (copy / "plots").iterdir()) == sorted(PLOTS)
    assert (copy / "sweep_report.html").stat().st_size > 10_000
    bad = _console("report", str(tmp_path / "nothing-here"))
    assert bad.returncode == 4 and len(bad.stderr.splitlines()) == 1


def _baseline(sweep: Sweep, root: Path, raise_by: float) -> Path:
    """A copy of the sweep's summary as a baseline, with learning rate 0.001 (config_003 and
    config_004: seeds 1 and 2) raised on both seeds."""
    folder = root / "baseline"
    folder.mkdir()
    records = sweep.summary
    for rec in records:
        if rec["config_file"] in ("config_003", "config_004"):
            rec["test_acc"] += raise_by
    (folder / "sweep_summary.json").write_text(json.dumps(records))
    return folder


@pytest.mark.parametrize("raise_by", [0.5, 3.0], ids=["within", "regression"])
def test_ci_gate_fails_the_run_on_a_regression(
    sweep: Sweep, sweep_tools: SweepTools, tmp_path: Path, raise_by: float
) -> None:
    # resume a copy of the sweep: every passed trial is reused, nothing trains; the NaN ones are deselected,
    # and their records stay in the resumed summary (a resume keeps every record), failed then and now
    shutil.copytree(sweep.dir, tmp_path / "out" / sweep.dir.name)
    shutil.copy(sweep.cwd / "sweep.rc", tmp_path / "sweep.rc")
    baseline = _baseline(sweep, tmp_path, raise_by)
    result = sweep_tools.run_process(
        tmp_path,
        "--range-config=sweep.rc",
        "--sweep-output=out",
        f"--sweep-resume=out/{sweep.dir.name}",
        "-k",
        "not 1e10",
        f"--sweep-compare={baseline}",
        "--sweep-compare-fail=test_acc:1.0",
    )
    result.assert_outcomes(passed=4)
    lines = [
        "*= sweep comparison =*",
        f"baseline: {baseline}; 6 configurations in both (same config name and config); only now: 0; "
        "only in the baseline: 0",
    ]
    # seeds swept in both: each configuration's mean over its 2 seeds, a one-sided paired test, Holm over 2
    lines.append(
        "gate test_acc:1: per-configuration means over seeds: a one-sided paired t-test that the drop exceeds "
        "1 pp (the seed noise pooled over the configurations), Holm across 2 configurations (alpha 0.05)"
    )
    if raise_by < 1.0:
        assert result.ret == pytest.ExitCode.OK
        lines.append("no regression (test_acc:1)")
    else:
        # the same 3 pp on both seeds; the other configuration's differences (0, 0) pool the noise with it
        assert result.ret == pytest.ExitCode.TESTS_FAILED
        lines += [
            "regressions (test_acc:1): 1",
            "REGRESSION config_003: test_acc *% -> *% (mean over 2 seeds; -3.00 pp, more than 1 at p *, Holm p *)",
        ]
    result.stdout.fnmatch_lines(lines)


def test_html_report_sorts_on_a_real_click_in_a_browser(sweep: Sweep, tmp_path: Path) -> None:
    if find_browser() is None:
        pytest.skip("no chromium on PATH: install Debian's chromium package (.ci/run does) to test the HTML report")
    page_file = sweep.dir / "sweep_report.html"
    text = page_file.read_text(encoding="utf-8")
    assert "http://" not in text and "https://" not in text  # self-contained: no CDN, no remote file
    with Chromium() as page:
        page.call("Page.enable")
        page.call("Network.enable")
        page.call("Page.navigate", url=page_file.as_uri())
        page.wait_event("Page.loadEventFired")
        requested = [
            e["params"]["request"]["url"] for e in page.events if e.get("method") == "Network.requestWillBeSent"
        ]
        assert requested[0] == page_file.as_uri()
        assert all(url.startswith("data:image/png;base64,") for url in requested[1:])
        assert len(requested) == 1 + len(PLOTS)  # the page and its inline plots, nothing else
        rows = "Array.from(document.querySelectorAll('#trials tbody tr')).map(r => [r.cells[0].textContent, r.cells[2].dataset.value])"
        before = page.evaluate(rows)
        assert [name for name, _ in before][:4] == [
            r["config_file"]
            for r in sorted(
                (r for r in sweep.summary if r["status"] == "passed"), key=lambda r: (-r["test_acc"], r["config_file"])
            )
        ]  # ranked, best first, as the analysis
        page.evaluate("document.getElementById('col-test_acc').scrollIntoView()")
        x, y = page.evaluate(
            "(() => { const r = document.getElementById('col-test_acc').getBoundingClientRect();"
            " return [r.left + r.width / 2, r.top + r.height / 2]; })()"
        )
        assert page.evaluate(f"document.elementFromPoint({x}, {y}).id") == "col-test_acc"  # nothing covers it
        page.click(x, y)
        after = page.evaluate(rows)
        accs = [float(v) for _, v in after if v]
        assert accs == sorted(accs) and len(accs) == 4  # ascending
        assert [v for _, v in after[4:]] == ["", ""]  # the failed trials (no accuracy) last
        assert page.evaluate("document.getElementById('col-test_acc').getAttribute('aria-sort')") == "ascending"
        page.click(x, y)
        again = [float(v) for _, v in page.evaluate(rows) if v]
        assert again == sorted(accs, reverse=True)
        assert page.evaluate("document.getElementById('col-test_acc').getAttribute('aria-sort')") == "descending"
        links = page.evaluate("Array.from(document.querySelectorAll('#failed a')).map(a => a.getAttribute('href'))")
        shot = base64.b64decode(page.call("Page.captureScreenshot", format="png")["data"])
    assert len(links) == 2
    for href in links:  # relative links to each failed trial's log
        assert (sweep.dir / urllib.parse.unquote(href)).is_file()
    screenshot = tmp_path / "report.png"
    screenshot.write_bytes(shot)
    width, height = png_size(screenshot)
    assert width >= 800 and height >= 600


def test_the_reporters_are_registered_like_any_plugin() -> None:
    tomllib = pytest.importorskip("tomllib", reason="tomllib is Python 3.11+")

    from pytest_sweep import BUILTIN_PLUGINS, ENTRY_POINT

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["entry-points"]["pytest11"] == dict([ENTRY_POINT])  # it registers BUILTIN_PLUGINS in a sweep
    for name in ("sweep.importance", "sweep.refine", "sweep.plots", "sweep.html", "sweep.csv", "sweep.compare"):
        assert BUILTIN_PLUGINS[name].startswith("pytest_sweep.plugins.")
    assert project["scripts"] == {"pytest-sweep": "pytest_sweep.cli:main"}
    assert any(d.startswith("matplotlib>=") for d in project["dependencies"])  # a range (issue 17)
