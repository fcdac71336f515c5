"""The console script's arguments and the terminal output under hostile input (issue 16, further round).

``pytest-sweep`` (in process: :func:`pytest_sweep.cli.main`) with every subcommand and argument
given absurd values: it exits 0, 1 (a regression), 2 (Ctrl-C) or 4 (usage), never Python's
traceback, with one line on stderr for an error.  Then real toy sweeps (a plugin trainer, no
torch) with hostile values and names, whose terminal output must hold no raw control character.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from synthetic import grid_records

from pytest_sweep import cli

from sweep_helpers import SweepPytester


def _sweep(folder: Path, accs: list[float]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    records = grid_records({"CONFIG_X": [str(i) for i in range(len(accs))]}, lambda v: accs[int(v["CONFIG_X"])])
    for rec in records:
        rec["trial_dir"] = None
    (folder / "sweep_summary.json").write_text(json.dumps(records), encoding="utf-8")
    return folder


def _run(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, list[str], list[str]]:
    try:
        code = cli.main(args)
    except SystemExit as exc:  # argparse (--help, its own errors)
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out.splitlines(), err.splitlines()


#: args (A and B are a baseline and a sweep 1.5 pp worse on one trial; R a sweep folder) -> exit code
CASES: dict[str, tuple[list[str], int]] = {
    "no-arguments": ([], 4),
    "help": (["--help"], 0),
    "report-help": (["report", "--help"], 0),
    "unknown-subcommand": (["frobnicate"], 4),
    "unknown-option": (["report", "R", "--frob"], 4),
    "report-no-folder": (["report"], 4),
    "report-empty-name": (["report", ""], 4),
    "report-missing": (["report", "missing"], 4),
    "report-a-file": (["report", "A/sweep_summary.json"], 4),
    "report-two-folders": (["report", "R", "A"], 4),
    "report-dash-name": (["report", "--", "-R"], 4),
    "report-threshold-text": (["report", "R", "--importance-threshold=abc"], 4),
    "report-threshold-negative": (["report", "R", "--importance-threshold=-1"], 4),
    "report-threshold-nan": (["report", "R", "--importance-threshold=nan"], 4),
    "report-threshold-inf": (["report", "R", "--importance-threshold=inf"], 4),
    "report-threshold-huge": (["report", "R", "--importance-threshold=1e999"], 4),
    "report-threshold-empty": (["report", "R", "--importance-threshold="], 4),
    "report-threshold-zero": (["report", "R", "--importance-threshold=0"], 0),
    "report-long-name": (["report", "x" * 5000], 4),
    "report-newline-name": (["report", "a\nb"], 4),
    "report-ansi-name": (["report", "\x1b[2Jx"], 4),
    "compare-one-folder": (["compare", "A"], 4),
    "compare-same": (["compare", "A", "A"], 0),
    "compare-regression": (["compare", "A", "B", "--fail", "test_acc:1"], 1),
    "compare-within": (["compare", "A", "B", "--fail", "test_acc:2"], 0),
    "compare-fail-no-value": (["compare", "A", "B", "--fail"], 4),
    "compare-fail-no-points": (["compare", "A", "B", "--fail", "test_acc:"], 4),
    "compare-fail-no-metric": (["compare", "A", "B", "--fail", ":1"], 4),
    "compare-fail-unknown-metric": (["compare", "A", "B", "--fail", "loss:1"], 4),
    "compare-fail-nan": (["compare", "A", "B", "--fail", "test_acc:nan"], 4),
    "compare-fail-negative": (["compare", "A", "B", "--fail", "test_acc:-1"], 4),
    "compare-fail-huge": (["compare", "A", "B", "--fail", "test_acc:1e999"], 4),
    "compare-fail-twice": (["compare", "A", "B", "--fail", "test_acc:2", "--fail", "best_acc:0"], 0),
    "compare-missing-baseline": (["compare", "missing", "B"], 4),
    "compare-ansi-threshold": (["compare", "A", "B", "--fail", "\x1b[2J:1"], 4),
    "compare-newline-folder": (["compare", "A", "a\nb"], 4),
}


@pytest.mark.parametrize(("args", "code"), list(CASES.values()), ids=list(CASES))
def test_the_console_script_with_hostile_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, args: list[str], code: int
) -> None:
    a = _sweep(tmp_path / "A", [90.0, 91.0])
    _sweep(tmp_path / "B", [90.0, 89.5])
    _sweep(tmp_path / "R", [90.0])  # one trial: nothing to plot, so no matplotlib in these tests
    monkeypatch.chdir(tmp_path)
    assert a.is_dir()
    got, out, err = _run(capsys, args)
    assert got == code, (out, err)
    if code == 4:
        assert len(err) in (1, 2) and err[-1].startswith("pytest-sweep"), err  # argparse puts its usage first
        assert all(c.isprintable() for c in err[-1]), repr(err[-1])
    for line in out + err:
        assert "\x1b" not in line and "\x00" not in line


def test_ctrl_c_is_exit_2_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_sweep.plugins import compare

    def interrupted(*args: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(compare, "load_baseline", interrupted)
    a = _sweep(tmp_path / "A", [90.0])
    assert _run(capsys, ["compare", str(a), str(a)])[0] == cli.INTERRUPTED


# -- the terminal: real toy sweeps with hostile values ------------------------------------------------------
TOY = """\
import pytest
from pytest_sweep.matrix import Symbol


@pytest.hookimpl
def pytest_sweep_declare_symbols():
    return [
        Symbol("CONFIG_TOY_X", "float", 1.0, "A number"),
        Symbol("CONFIG_TOY_NAME", "str", "plain", "Any text, logged and raised by the trainer"),
    ]


class Toy:
    def run(self, trial, ctx):
        name = trial["CONFIG_TOY_NAME"]
        ctx.log("epoch 1: " + name)
        if trial["CONFIG_TOY_X"] == 2.0:
            raise RuntimeError(name)
        return {"test_acc": 50.0 + trial["CONFIG_TOY_X"], "epochs_run": 1, "trainer": name, "device": name}


@pytest.hookimpl
def pytest_sweep_make_trainer(trial, config):
    return Toy()
"""

TERMINAL = {
    "ansi-clear": "\\x1b[2J",
    "bell": "\\x07",
    "nul": "\\x00",
    "backspace": "ab\\x08\\x08",
    "rtl": "\u202eexe",
    "zero-width": "a\u200bb",
    "line-separator": "a\u2028b",
    "osc-title": "\\x1b]0;pwned\\x07",
    "huge": "y" * 5000,
    "emoji": "\U0001f600",
}
#: What only pytest's own code prints: its failure section and its short summary show the trainer's
#: exception as raised (pytest escapes ASCII control characters there, not a bidi override).
_PYTEST_SECTION = re.compile(r"^(E |\s|_+ |[^ ]*\.py:\d+|=+ FAILURES =+|FAILED \S+::\S+ - )")


@pytest.mark.parametrize("value", list(TERMINAL.values()), ids=list(TERMINAL))
def test_the_terminal_shows_hostile_values_escaped(sweep_pytester: SweepPytester, value: str) -> None:
    sweep_pytester.pytester.makeconftest(TOY)
    sweep_pytester.pytester.makeini("[pytest]\n")
    sweep_pytester.range_config(f'CONFIG_TOY_X=1|2|3\nCONFIG_TOY_NAME="{value}"\n')
    result = sweep_pytester.run("--range-config=sweep.rc", "--sweep-output=out", "--tb=no")
    result.assert_outcomes(passed=2, failed=1)
    ours = [line for line in result.outlines if not _PYTEST_SECTION.match(line)]
    for line in ours:
        assert all(c.isprintable() for c in line), repr(line[:200])
    result.stdout.fnmatch_lines(["*= sweep results =*", "FAILED config_002: RuntimeError: *"])


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("plugin", "cannot load the pytest plugins (broken_reporter: ModuleNotFoundError: *"),
        ("missing", 'Error importing plugin "no_such_reporter": *'),
        ("ini", "ini value sweep_importance_threshold=abc: use a number of percentage points*"),
    ],
)
def test_report_with_a_plugin_or_ini_value_it_cannot_use_is_one_usage_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, setup: str, expected: str
) -> None:
    """``pytest-sweep report`` loads the plugins and ini values a run in that folder would: one
    it cannot load or use is a usage error in one line, and no report is written."""
    import fnmatch

    folder = _sweep(tmp_path / "R", [90.0])
    monkeypatch.chdir(tmp_path)
    if setup == "plugin":
        (tmp_path / "broken_reporter.py").write_text("import no_such_module_anywhere\n", encoding="utf-8")
        monkeypatch.syspath_prepend(tmp_path)
        monkeypatch.setenv("PYTEST_PLUGINS", "broken_reporter")
    elif setup == "missing":
        monkeypatch.setenv("PYTEST_PLUGINS", "no_such_reporter")
    else:
        (tmp_path / "pytest.ini").write_text("[pytest]\nsweep_importance_threshold = abc\n", encoding="utf-8")
    code, out, err = _run(capsys, ["report", str(folder)])
    assert (code, out, len(err)) == (cli.USAGE_ERROR, [], 1), err
    assert fnmatch.fnmatch(err[0], f"pytest-sweep: error: {expected}"), err
    assert sorted(p.name for p in folder.iterdir()) == ["sweep_summary.json"]
