"""``refine_range`` runs as is under the ``--sweep-max-combinations`` of the sweep that wrote it.

A finer grid of every important parameter multiplies fast (10 parameters x 3 values: 59,049
combinations); the next sweep then refines the most important parameters, fixes the rest at the
best configuration's values and says in its header what it left out.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from synthetic import LANDSCAPE, grid_records

from pytest_sweep.matrix.grid import expand
from pytest_sweep.matrix.rangeconfig import parse_text
from pytest_sweep.plugins.importance import compute
from pytest_sweep.plugins.refine import builtin_symbols, refine, render

from sweep_helpers import SweepPytester

KEYS = [f"CONFIG_P{i:02d}" for i in range(10)]


def _ten_parameters() -> list[dict[str, object]]:
    """10 parameters x 2 values; parameter i moves test_acc by i+1 pp: every one is important."""
    return grid_records(
        {k: ["1", "2"] for k in KEYS},
        lambda v: 50.0 + sum((i + 1) * float(v[k]) for i, k in enumerate(KEYS)),
    )


def test_a_ten_parameter_refine_range_fits_the_default_limit() -> None:
    records = _ten_parameters()
    imp = compute(records, threshold=0.5)
    ref = refine(records, imp, builtin_symbols())
    assert ref is not None
    text = render(ref, "sweep_20250101_000000", builtin_symbols())
    rc = parse_text(text, "refine_range")
    assert len(expand(rc, limit=10_000)) == rc.count <= 10_000  # runs as is
    # the most important ones are refined (3 values each), the least important fixed at their best (2)
    swept = {p.key: p.values for p in rc.swept}
    assert set(swept) == set(KEYS[2:])
    assert all(len(values) == 3 for values in swept.values())
    settings = {line.split("=")[0]: line.split("=", 1)[1] for line in text.splitlines() if line.startswith("CONFIG_")}
    assert settings["CONFIG_P00"] == "2" and settings["CONFIG_P01"] == "2"
    assert (
        "# Narrowed to fit --sweep-max-combinations=10000 (refining all 10 would be 59049 combinations): "
        "CONFIG_P00, CONFIG_P01 fixed at the best configuration's values (the least important)"
    ) in text


def test_a_refine_range_that_fits_is_not_narrowed() -> None:
    records = _ten_parameters()
    ref = refine(records, compute(records, threshold=0.5), builtin_symbols(), limit=100_000)
    assert ref is not None and ref.combinations == 3**10
    assert "Narrowed" not in render(ref, "sweep_x", builtin_symbols())


def test_the_next_sweep_runs_under_the_limit_of_the_sweep_that_wrote_it(sweep_pytester: SweepPytester) -> None:
    sp = sweep_pytester
    sp.pytester.makeconftest(LANDSCAPE)
    sp.range_config("CONFIG_LS_A=1|2\nCONFIG_LS_B=3|6\nCONFIG_LS_C=10|20\n")
    result = sp.run("--range-config=sweep.rc", "--sweep-output=out", "--sweep-max-combinations=10")
    result.assert_outcomes(passed=8)
    refine_range = sp.only_sweep_dir(sp.path / "out") / "refine_range"
    text = refine_range.read_text(encoding="utf-8")
    assert "# Narrowed to fit --sweep-max-combinations=10 (refining all 3 would be 27 combinations): " in text
    again = sp.run(f"--range-config={refine_range}", "--collect-only", "-q", "--sweep-max-combinations=10")
    assert again.ret == pytest.ExitCode.OK, again.stdout.str()
    again.stdout.fnmatch_lines(["9 tests collected*"])  # LS_C and LS_B refined, LS_A fixed at 2
    assert "CONFIG_LS_A=2\n" in text


@pytest.mark.parametrize("value", ["0", "-3", "abc", "1e3", ""])
def test_the_console_scripts_limit_must_be_a_whole_number(tmp_path: Path, value: str) -> None:
    import subprocess
    import sys

    folder = tmp_path / "sweep"
    folder.mkdir()
    (folder / "sweep_summary.json").write_text(json.dumps(_ten_parameters()[:4]))
    script = Path(sys.executable).with_name("pytest-sweep")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "pytest_sweep.cli"]
    done = subprocess.run([*command, "report", str(folder), f"--max-combinations={value}"], capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 4 and len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr
    assert "--max-combinations" in done.stderr


def test_the_console_script_narrows_to_its_limit(tmp_path: Path) -> None:
    import subprocess
    import sys

    folder = tmp_path / "sweep"
    folder.mkdir()
    keys = KEYS[:6]
    six = grid_records(
        {k: ["1", "2"] for k in keys}, lambda v: 50.0 + sum((i + 1) * float(v[k]) for i, k in enumerate(keys))
    )
    (folder / "sweep_summary.json").write_text(json.dumps(six))
    script = Path(sys.executable).with_name("pytest-sweep")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "pytest_sweep.cli"]
    done = subprocess.run([*command, "report", str(folder), "--max-combinations=30"], capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    rc = parse_text((folder / "refine_range").read_text(encoding="utf-8"), "refine_range")
    assert rc.count == 27 and {p.key for p in rc.swept} == set(keys[3:])  # 3^3: the three most important refined
