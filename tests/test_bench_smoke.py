"""Every ``bench/`` script's ``--smoke`` mode runs end to end and prints a block that means something.

Benchmarks rot unless run (issue 19): each script here is started the way a user starts it, in a
subprocess with one torch thread, at its smoke sizes, and its markdown table is read back: the
expected rows, numbers that parse and are positive where a time or a rate must be.  The figures of
a smoke run are no measurement (noise decides them), so no test compares two of them, except
where the script's own claim is exact (``step_ops.py``'s operation counts, the thread rule).
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
SMOKE_NOTE = "Smoke run (`--smoke`, tiny sizes)"


def run_bench(script: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python bench/SCRIPT ARGS`` from the repository root, one torch thread, no stray pytest options."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS")}
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def rows(markdown: str) -> dict[str, list[str]]:
    """The rows of the markdown table(s) in ``markdown``, by their first cell (header and rule left out)."""
    table: dict[str, list[str]] = {}
    lines = [ln.strip() for ln in markdown.splitlines() if ln.strip().startswith("|")]
    for i, line in enumerate(lines):
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        is_header = i + 1 < len(lines) and set(lines[i + 1].replace("|", "")) <= {"-"}
        if is_header or set(line.replace("|", "")) <= {"-"}:
            continue
        table[cells[0]] = cells[1:]
    return table


def number(cell: str) -> float:
    return float(cell.replace(",", "").strip("*× "))


def positive(cell: str) -> float:
    value = number(cell)
    assert value > 0, cell
    return value


def bold(text: str, after: str) -> float:
    """The first bold number after ``after`` (``**1.23×**``, ``**4.5 ms**``)."""
    found = re.search(re.escape(after) + r".*?\*\*(-?[\d.,]+)", text, re.S)
    assert found, f"no bold figure after {after!r} in:\n{text}"
    return number(found.group(1))


def smoke_block(out: str, title: str) -> None:
    assert f"### {title}" in out
    assert "--smoke" in out.split("Command (from the repository root):", 1)[1].splitlines()[0]
    assert SMOKE_NOTE in out
    assert "**met**" not in out and "**missed**" not in out  # no goal verdict on smoke figures


# -- _common.parse_args and trainer_throughput's options, in process ----------------------------
@pytest.fixture
def bench_modules(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The bench folder on ``sys.path`` (the scripts import ``_common``); their modules dropped after."""
    monkeypatch.syspath_prepend(str(BENCH))
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name in ("_common", "trainer_throughput"):
            del sys.modules[name]


def _bench(name: str) -> ModuleType:
    return importlib.import_module(name)


@pytest.mark.usefixtures("bench_modules")
def test_smoke_values_become_defaults_and_explicit_options_win() -> None:
    common = _bench("_common")

    def parser() -> argparse.ArgumentParser:
        ap = argparse.ArgumentParser()
        ap.add_argument("--repeats", type=int, default=3)
        ap.add_argument("--sizes", type=int, nargs="+", default=[1, 2])
        return ap

    smoke = {"repeats": 1, "sizes": [1]}
    assert vars(common.parse_args(parser(), [], smoke)) == {"repeats": 3, "sizes": [1, 2], "smoke": False}
    assert vars(common.parse_args(parser(), ["--smoke"], smoke)) == {"repeats": 1, "sizes": [1], "smoke": True}
    got = common.parse_args(parser(), ["--smoke", "--repeats", "5"], smoke)
    assert (got.repeats, got.sizes) == (5, [1])


@pytest.mark.usefixtures("bench_modules")
@pytest.mark.parametrize("option", ["--data-dir", "--sweep-data-dir"])
def test_trainer_throughput_takes_its_data_dir_option(option: str) -> None:
    """The option the docs name parses (it crashed at argument parsing before: issue 19)."""
    tt = _bench("trainer_throughput")
    s = tt.parse(["--device", "cpu", "--dataset", "cifar10", option, "/data/cifar"])
    assert (s.dataset, s.data_dir, s.device, s.smoke) == ("cifar10", "/data/cifar", "cpu", False)
    assert tt.parse(["--device", "cpu"]).data_dir == "data"


@pytest.mark.usefixtures("bench_modules")
def test_trainer_throughput_smoke_sizes() -> None:
    tt = _bench("trainer_throughput")
    s = tt.parse(["--smoke"])
    assert (s.device, s.width, s.batch, s.steps, s.warmup, s.repeats, s.smoke) == ("cpu", 4, 16, 2, 1, 2, True)
    assert tt.parse(["--smoke", "--steps", "3"]).steps == 3


# -- each smoke mode, in a subprocess ------------------------------------------------------------
@pytest.mark.slow
def test_trainer_throughput_smoke() -> None:
    out = ok(run_bench("trainer_throughput.py", "--smoke"))
    smoke_block(out, "Trainer throughput (bench/trainer_throughput.py)")
    table = rows(out)
    ours = next(v for k, v in table.items() if k.startswith("ours: `trainers.loop.train`"))
    ref = next(v for k, v in table.items() if k.startswith("reference-style: DataLoader"))
    for side in (ours, ref):
        positive(side[0])  # best images/s
        assert len(side[1].split(", ")) == 2 and all(positive(x) for x in side[1].split(", "))  # 2 repeats
    assert "ResNet-18 width 4" in out and "batch 16" in out and "torch threads 1" in out
    assert bold(out, "Ratio ours / reference-style:") > 0


@pytest.mark.slow
def test_trainer_throughput_names_a_missing_dataset_in_one_line(tmp_path: Path) -> None:
    proc = run_bench("trainer_throughput.py", "--smoke", "--dataset", "cifar10", "--data-dir", str(tmp_path))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"--dataset cifar10 --data-dir {tmp_path}: CIFAR-10 not found"), proc.stderr[-2000:]


@pytest.mark.slow
def test_collection_smoke() -> None:
    out = ok(run_bench("collection.py", "--smoke"))
    smoke_block(out, "Collection (bench/collection.py)")
    table = rows(out)
    assert set(table) == {"bare `pytest --collect-only -q` (empty dir)", "`--range-config=range-1000`"}
    trials, best, median = table["`--range-config=range-1000`"][:3]
    assert number(trials) == 1000  # the script itself checks that pytest collected exactly that many
    assert positive(best) == positive(median)  # one repeat
    number(table["`--range-config=range-1000`"][3])  # net: a difference, noise may make it negative
    positive(table["bare `pytest --collect-only -q` (empty dir)"][1])


@pytest.mark.slow
def test_overhead_smoke() -> None:
    out = ok(run_bench("overhead.py", "--smoke"))
    smoke_block(out, "Harness overhead per trial (bench/overhead.py)")
    table = rows(out)
    assert list(table) == [
        "plain loop, N calls (in-process)",
        "`pytest ... --collect-only` (start-up + collection)",
        "`pytest --range-config=range -q -p no:cacheprovider`",
    ]
    assert all(positive(cells[0]) for cells in table.values())  # best s of each
    assert "N = 10 trivial trials" in out and "sums 2000 sines" in out
    bold(out, "Harness overhead per trial =")  # parses; a difference of noisy times, any sign


@pytest.mark.slow
def test_parallel_scaling_smoke() -> None:
    out = ok(run_bench("parallel_scaling.py", "--smoke", timeout=600))
    smoke_block(out, "Parallel scaling (bench/parallel_scaling.py)")
    table = rows(out)
    assert list(table) == ["serial (no `-n`)", "`-n 1`", "`-n 2`"]  # no control run in the smoke mode
    for cells in table.values():
        positive(cells[0])  # best s
        positive(cells[3])  # mean trial s, from the sweep's own records
    # each -n 2 worker trained with cores // 2 threads, as the trial itself logged (plugins/gpu.py)
    threads = max(1, (os.cpu_count() or 1) // 2)
    assert table["`-n 2`"][5] == f"{threads} (OMP_NUM_THREADS={threads},MKL_NUM_THREADS={threads})"
    assert "2 trials (LeNet-5 on digits, 1 epochs" in out
    assert bold(out, "Wall-time ratio `-n 2` / `-n 1`:") > 0


@pytest.mark.slow
def test_step_ops_smoke() -> None:
    out = ok(run_bench("step_ops.py", "--smoke"))
    table = rows(out)
    assert list(table) == ["adamwprune state, adamwspam base"]
    le_params, le_fb, le_up, rn_params, rn_fb, rn_up = (int(x) for x in table["adamwprune state, adamwspam base"])
    assert rn_params > le_params and rn_fb > le_fb > 0  # forward + backward grows with depth
    assert rn_up == le_up > 0  # the work after backward() does not (the benchmark's goal)


@pytest.mark.slow
def test_startup_smoke() -> None:
    if subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, check=False).returncode != 0:
        pytest.skip("bench/startup.py compares git revisions; this is not a git checkout")

    out = ok(run_bench("startup.py", "--smoke", timeout=600))
    # the baseline's worktree is gone again (other worktrees of the repository may come and go meanwhile)
    worktrees = subprocess.run(["git", "worktree", "list"], cwd=REPO, capture_output=True, text=True).stdout
    assert "bench-startup-" not in worktrees
    smoke_block(out, "Start-up and shut-down (bench/startup.py)")
    table = rows(out)
    assert len(table) == 2
    (ours, ours_cells), (base, base_cells) = table.items()
    rev = re.fullmatch(r"ours \((\w+)\), serial", ours)
    assert rev and base == f"baseline ({rev.group(1)}), serial"  # --smoke: HEAD against this checkout
    assert positive(ours_cells[0]) and positive(base_cells[0])
    assert bold(out, "`serial`: ours / baseline =") > 0


@pytest.mark.slow
@pytest.mark.ray
def test_ray_overhead_smoke() -> None:
    pytest.importorskip("ray", reason="the Ray benchmark needs the extra: pip install -e '.[ray]'")
    out = ok(run_bench("ray_overhead.py", "--smoke", timeout=600))
    smoke_block(out, "Ray backend overhead (bench/ray_overhead.py)")
    table = rows(out)
    assert list(table) == [
        "`serial, 3 trials`",
        "`serial, -k config_001`",
        "`--sweep-backend=ray, 3 trials`",
        "`--sweep-backend=ray, -k config_001`",
    ]
    assert all(positive(cells[0]) for cells in table.values())
    bold(out, "Fixed cost of the Ray backend")  # parses; differences of single noisy runs, any sign


@pytest.mark.slow
def test_run_all_smoke_runs_each_benchmarks_smoke() -> None:
    out = ok(run_bench("run_all.py", "--smoke", "--only", "collection"))
    assert out.startswith("## CPU benchmarks (bench/run_all.py, smoke run,")
    smoke_block(out, "Collection (bench/collection.py)")
    assert "`--range-config=range-1000`" in rows(out)


# -- issue 21's benchmarks (figures in docs/benchmarks.md, section 14) ---------------------------
@pytest.mark.slow
def test_checkpoints_smoke() -> None:
    out = ok(run_bench("checkpoints.py", "--smoke", timeout=600))
    assert "| lenet5 | 21,430 |" in out
    (row,) = [line for line in out.splitlines() if line.startswith("| with | ")]
    kills, runs, trained = row.split(" | ")[1:4]
    assert int(runs) == int(kills) + 1 and trained.endswith(" of 3")  # each kill resumed, the sweep completed


@pytest.mark.slow
def test_asha_smoke() -> None:
    out = ok(run_bench("asha.py", "--smoke", timeout=600))
    lines = [line for line in out.splitlines() if line.startswith("| ") and " | 1 | " in line]
    assert [line.split(" | ")[0] for line in lines] == ["| none", "| asha grid", "| asha promotion grid"]
    assert "| none | 1 | 12 | 100% |" in out


# -- issue 23's benchmark (docs/benchmarks.md, section 15) ----------------------------------------
@pytest.mark.slow
@pytest.mark.ray
def test_ray_state_smoke() -> None:
    pytest.importorskip("ray", reason="the Ray benchmark needs the extra: pip install -e '.[ray]'")
    out = ok(run_bench("ray_state.py", "--smoke", timeout=600))
    smoke_block(out, "Shared state on Ray (bench/ray_state.py)")
    table = rows(out)
    serial, on_ray = table["`serial`"], table["`ray`"]
    assert serial[0] == on_ray[0] == "4"  # trials
    assert serial[6] == on_ray[6] == "yes"  # each run's store decides as a serial replay of its results
    # the trials ran on the Ray actors (under load one actor may take all four before the other is ready)
    assert set(on_ray[8].split(", ")) <= {"ray1", "ray2"} and serial[8] == "main"
    assert table["`ray, a store per node`"][6] == "- (no store here)"  # the controller's store stayed empty
    assert "Accesses to the controller's disk refused on the nodes during the `ray` run: **0**." in out
    assert positive(table["`state actor (Ray call from a GPU node)`"][0]) > 0
    assert positive(table["`SqliteRungStore.decide (serial, in process)`"][0]) > 0
    assert positive(table["`state actor (Ray calls from a GPU node)`"][0]) > 0  # the study's ask and tell
    assert positive(table["`JournalSearchStore (serial, in process)`"][0]) > 0
