"""Issue 16 (files, the console script, injection, paths): each numbered item, with its real inputs.

Real files and folders, a real sweep with a plugin trainer of the test's own (no torch), the real
console script.  Item numbers are the issue's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import readonly
from synthetic import grid_records

from pytest_sweep import cli
from pytest_sweep.matrix import storage
from pytest_sweep.matrix.rangeconfig import parse_file, parse_text
from pytest_sweep.plugins.csv_report import render_csv

from sweep_helpers import SweepPytester, assert_usage_error

TOY = f"""\
import json
import pytest
from pytest_sweep.matrix import Symbol
{readonly.FREEZE_SOURCE}

@pytest.hookimpl
def pytest_sweep_declare_symbols():
    return [
        Symbol("CONFIG_TOY_X", "float", 1.0, "A number the toy trainer reports back"),
        Symbol("CONFIG_TOY_NAME", "str", "plain", "Any text: the toy trainer ignores it"),
        Symbol("CONFIG_TOY_DO", "str", "ok", "ok, huge (test_acc 10**400) or freeze (the sweep folder, then ok)"),
    ]


class Toy:
    def run(self, trial, ctx):
        do = trial["CONFIG_TOY_DO"]
        if do == "huge":
            return {{"test_acc": 10**400, "final_sparsity": 10**400, "epochs_run": 1}}
        if do == "freeze" and trial["CONFIG_TOY_X"] == 2.0:
            freeze(ctx.dir.parent)
        return {{"test_acc": 50.0 + trial["CONFIG_TOY_X"], "final_sparsity": 0.5, "epochs_run": 1}}


@pytest.hookimpl
def pytest_sweep_make_trainer(trial, config):
    return Toy()
"""


@pytest.fixture
def toy(sweep_pytester: SweepPytester) -> SweepPytester:
    sweep_pytester.pytester.makeconftest(TOY)
    sweep_pytester.pytester.makeini("[pytest]\n")
    return sweep_pytester


def _sweep_dir(root: Path) -> Path:
    (found,) = storage.sweep_dirs(root)
    return found


def _strict_json(path: Path) -> Any:
    """The file as JSON that any reader takes: no NaN, no Infinity, no number a float cannot hold."""

    def refuse(name: str) -> None:
        raise AssertionError(f"{path}: {name} is not JSON")

    def number(text: str) -> float:
        value = float(text)
        assert abs(value) != float("inf"), f"{path}: {text[:20]}... reads back as infinity"
        return value

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse, parse_int=number, parse_float=number)


def _summary_dir(folder: Path, records: list[dict[str, Any]]) -> Path:
    folder.mkdir(parents=True)
    (folder / "sweep_summary.json").write_text(json.dumps(records), encoding="utf-8")
    return folder


def _records() -> list[dict[str, Any]]:
    return grid_records({"CONFIG_X": ["1", "2", "3"]}, lambda v: 50.0 + float(v["CONFIG_X"]))


def _main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str], list[str]]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()


# -- item 4: literal | and : survive every writer ----------------------------------------------------
def test_item4_a_literal_bar_and_colon_survive_refine_range_and_sweep_generate(toy: SweepPytester) -> None:
    toy.range_config('CONFIG_TOY_NAME="a|b"|"1:1:3"|"c"\n')
    toy.run("--range-config=sweep.rc", "--sweep-output=out").assert_outcomes(passed=3)
    sweep = _sweep_dir(toy.path / "out")
    assert [r["config"]["CONFIG_TOY_NAME"] for r in _strict_json(sweep / "sweep_summary.json")] == ["a|b", "1:1:3", "c"]
    refined = parse_file(sweep / "refine_range").param("CONFIG_TOY_NAME")
    assert refined is not None and set(refined.values) <= {"a|b", "1:1:3", "c"} and refined.values
    again = toy.run(f"--range-config={sweep / 'refine_range'}", "--collect-only", "-q")
    assert again.ret == 0, again.stdout.str()
    generated = toy.run("--range-config=sweep.rc", "--sweep-generate=gen")
    assert generated.ret == 0, generated.stderr.str()
    back = toy.run("--config-dir=gen", "--collect-only", "-q")
    assert back.ret == 0, back.stdout.str() + back.stderr.str()
    back.stdout.fnmatch_lines(["*3 tests collected*"])
    for trial in sweep.glob("config_*"):
        assert parse_file(trial / "config.txt").param("CONFIG_TOY_NAME") is not None


# -- item 5: a defconfig that sets our own symbols against its selection ------------------------------
SELECTION = """\
CONFIG_MODEL_SELECT_RESNET18=y
CONFIG_OPTIMIZER_SELECT_SGD=y
CONFIG_PRUNING_SELECT_MAGNITUDE=y
CONFIG_SPARSITY_ENABLE_70=y
CONFIG_DATASET="digits"
"""


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('CONFIG_MODEL="lenet5"', "*defconfig:6: CONFIG_MODEL=lenet5 conflicts with *defconfig:1: "
         "CONFIG_MODEL_SELECT_RESNET18=y, which selects resnet18; keep one of them*"),
        ('CONFIG_OPTIMIZER="adam"', "*defconfig:6: CONFIG_OPTIMIZER=adam conflicts with *defconfig:2: "
         "CONFIG_OPTIMIZER_SELECT_SGD=y, which selects sgd; keep one of them*"),
        ('CONFIG_PRUNING_METHOD="movement"', "*defconfig:6: CONFIG_PRUNING_METHOD=movement conflicts with "
         "*defconfig:3: CONFIG_PRUNING_SELECT_MAGNITUDE=y, which selects magnitude; keep one of them*"),
    ],
    ids=["model", "optimizer", "pruning-method"],
)  # fmt: skip
def test_item5_our_symbol_against_the_defconfigs_selection_is_a_usage_error(
    toy: SweepPytester, line: str, expected: str
) -> None:
    toy.range_config(SELECTION + line + "\n", "defconfig")
    assert_usage_error(toy.run("--range-config=defconfig", "--collect-only"), "ERROR: " + expected)


def test_item5_a_variant_against_the_selection_and_an_agreeing_value(toy: SweepPytester) -> None:
    text = SELECTION.replace("SGD", "ADAMWPRUNE").replace("MAGNITUDE", "STATE")
    toy.range_config(text + "CONFIG_RESNET18_ADAMWPRUNE_VARIANT_BITTER0=y\nCONFIG_ADAMWPRUNE_VARIANT=bitter7\n", "d")
    assert_usage_error(
        toy.run("--range-config=d", "--collect-only"),
        "ERROR: *d:7: CONFIG_ADAMWPRUNE_VARIANT=bitter7 conflicts with *d:6: "
        "CONFIG_RESNET18_ADAMWPRUNE_VARIANT_BITTER0=y, which selects bitter0*",
    )
    toy.range_config(SELECTION + 'CONFIG_MODEL="resnet18"\nCONFIG_OPTIMIZER="sgd"\n', "agree")
    assert toy.run("--range-config=agree", "--collect-only", "-q").ret == 0


def test_item5_target_sparsity_in_the_multiple_mode_is_named_as_the_reference_reads_it(toy: SweepPytester) -> None:
    """The reference's own defconfigs set TARGET_SPARSITY in the multiple mode, where it ignores it."""
    toy.range_config(SELECTION + 'CONFIG_PRUNING_MODE_MULTIPLE=y\nCONFIG_TARGET_SPARSITY="0.9"\n', "defconfig")
    result = toy.run("--range-config=defconfig", "--collect-only", "-q")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        ["*CONFIG_TARGET_SPARSITY=0.9 (*defconfig:7) has no effect, as in the reference: *defconfig:4: "
         "CONFIG_SPARSITY_ENABLE_70=y selects 0.5, 0.7, 0.9"]
    )  # fmt: skip


# -- item 8 (part): --sweep-compare= a symlink loop ------------------------------------------------------
def test_item8_compare_with_a_symlink_loop_is_one_line(toy: SweepPytester, capsys: pytest.CaptureFixture[str]) -> None:
    toy.range_config("CONFIG_TOY_X=1|2\n")
    os.symlink("loop", toy.path / "loop")
    assert_usage_error(
        toy.run("--range-config=sweep.rc", "--sweep-compare=loop", "--collect-only"),
        "ERROR: --sweep-compare=loop: cannot resolve the path (*); pass the sweep_YYYYMMDD_HHMMSS folder*",
    )
    capsys.readouterr()
    code, _, err = _main(capsys, "compare", str(toy.path / "loop"), str(toy.path / "loop"))
    assert code == cli.USAGE_ERROR and len(err) == 1 and "a loop of symbolic links" in err[0]


# -- item 9: huge numbers, and fields of the wrong type --------------------------------------------------
def test_item9_a_trainer_returning_10_to_the_400_fails_and_no_record_keeps_it(toy: SweepPytester) -> None:
    toy.range_config('CONFIG_TOY_X=1|2\nCONFIG_TOY_DO="huge"|"ok"\n')
    result = toy.run("--range-config=sweep.rc", "--sweep-output=out")
    result.assert_outcomes(passed=2, failed=2)
    sweep = _sweep_dir(toy.path / "out")
    records = _strict_json(sweep / "sweep_summary.json")
    huge = [r for r in records if r["config"]["CONFIG_TOY_DO"] == "huge"]
    assert [(r["status"], r["test_acc"], r["final_sparsity"]) for r in huge] == [("failed", None, None)] * 2
    assert huge[0]["error"] == "test_acc is too large for a number"
    for metrics in sweep.glob("*/training_metrics.json"):
        _strict_json(metrics)
    assert (sweep / "sweep_report.html").is_file() and "could not write" not in result.stdout.str()
    assert cli.main(["report", str(sweep)]) == cli.OK


@pytest.mark.parametrize("field", ["test_acc", "final_sparsity", "training_time"])
@pytest.mark.parametrize(
    "bad", ['"abc"', "[1, 2]", "1e400", '{"a": 1}', "true"], ids=["str", "list", "inf", "obj", "bool"]
)
def test_item9_report_and_compare_refuse_a_field_of_the_wrong_type_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], field: str, bad: str
) -> None:
    good = _summary_dir(tmp_path / "good", _records())
    broken = tmp_path / "broken"
    broken.mkdir()
    text = json.dumps(_records()).replace(f'"{field}": ', f'"{field}": {bad}, "was_{field}": ', 1)
    (broken / "sweep_summary.json").write_text(text, encoding="utf-8")
    for args in (("report", str(broken)), ("compare", str(good), str(broken)), ("compare", str(broken), str(good))):
        code, out, err = _main(capsys, *args)
        assert code == cli.USAGE_ERROR != cli.REGRESSION, (args, out, err)
        assert len(err) == 1 and f"record 1 (config_001): {field} is " in err[0], err
        assert "Traceback" not in "\n".join(out + err)


def test_item9_the_console_script_exit_codes(tmp_path: Path) -> None:
    """The real console script: 4 for unreadable input, 3 for a bug, never Python's traceback exit 1."""
    broken = _summary_dir(tmp_path / "broken", [{"config_file": "config_001", "test_acc": "abc"}])
    script = Path(sys.executable).with_name("pytest-sweep")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "pytest_sweep.cli"]
    done = subprocess.run([*command, "compare", str(broken), str(broken)], capture_output=True, text=True, check=False)
    assert (done.returncode, len(done.stderr.splitlines())) == (4, 1), done.stderr
    assert 'test_acc is "abc", not a number' in done.stderr


def test_item9_an_internal_error_is_one_line_and_exit_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_sweep.plugins import compare

    def broken(*args: Any) -> Any:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(compare, "compare", broken)
    folder = _summary_dir(tmp_path / "a", _records())
    code, _, err = _main(capsys, "compare", str(folder), str(folder))
    assert code == cli.INTERNAL_ERROR and len(err) == 1
    assert err[0].startswith("pytest-sweep: internal error: ZeroDivisionError: a bug; this is a bug")


# -- item 10: folders that refuse writes ---------------------------------------------------------------------
def test_item10_report_on_a_read_only_folder_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _summary_dir(tmp_path / "sweep", _records())
    with readonly.unwritable(folder):
        code, out, err = _main(capsys, "report", str(folder))
    assert code == cli.USAGE_ERROR and out == [] and len(err) == 1, err
    # each reporter named, as a sweep names it (sweep: NAME could not write its files: REASON)
    assert "sweep.importance, " in err[0] and " could not write their files: PermissionError: " in err[0], err
    assert "Traceback" not in err[0]
    assert sorted(p.name for p in folder.iterdir()) == ["sweep_summary.json"]


def test_item10_a_sweep_folder_made_unwritable_mid_run_ends_cleanly(toy: SweepPytester) -> None:
    toy.range_config('CONFIG_TOY_X=1|2|3|4\nCONFIG_TOY_DO="freeze"\n')
    readonly.require(toy.path)
    try:
        result = toy.run("--range-config=sweep.rc", "--sweep-output=out", "--sweep-summary-interval=0")
    finally:
        readonly.thaw_tree(toy.path / "out")
    output = result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in output and "Traceback" not in output, output
    result.assert_outcomes(passed=2, failed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*config_003*: cannot write its folder config_003_toy_x-3: Operation not permitted*"])
    written = [line for line in result.stdout.lines if "could not write" in line]
    assert len(written) == 1 and "sweep: " in written[0] and " could not write their files: " in written[0]
    assert "more reasons" not in written[0]  # one folder, one reason
    assert len([line for line in result.stdout.lines if "interim summary not written" in line]) <= 1
    result.stdout.fnmatch_lines(
        ["*= sweep results =*", "*config_002*52.00*", "*config_001*51.00*", "summary and analysis: not written into *"]
    )


# -- item 12: CSV formula injection --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ('=HYPERLINK("http://evil","x")', '\'=HYPERLINK("http://evil","x")'),
        ("+1+2", "'+1+2"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("-0.5", "-0.5"),
        ("+3", "+3"),
        ("1e-3", "1e-3"),
        ("plain", "plain"),
    ],
)
def test_item12_csv_cells_that_a_spreadsheet_would_evaluate_are_neutralised(value: str, cell: str) -> None:
    import csv
    import io

    records = [{"config_file": "config_001", "status": "passed", "test_acc": -0.5, "rank": -3, "error": value}]
    rows = list(csv.reader(io.StringIO(render_csv(records), newline="")))
    assert rows[1] == ["config_001", "passed", "-0.5", "-3", cell]


def test_item12_the_csv_of_a_real_sweep_neutralises_a_hostile_value(toy: SweepPytester) -> None:
    toy.range_config('CONFIG_TOY_NAME="=HYPERLINK(\\"http://x\\")"|"@A1"\nCONFIG_TOY_X=-1|2\n')
    toy.run("--range-config=sweep.rc", "--sweep-output=out").assert_outcomes(passed=4)
    import csv

    with open(_sweep_dir(toy.path / "out") / "sweep_summary.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["CONFIG_TOY_NAME"] for r in rows] == ['\'=HYPERLINK("http://x")'] * 2 + ["'@A1"] * 2
    assert [r["CONFIG_TOY_X"] for r in rows] == ["-1", "2", "-1", "2"]  # numbers stay numbers


# -- item 13: names and values echoed into files we parse -------------------------------------------------------
def test_item13_a_range_file_named_with_a_line_break_stays_in_the_comments(toy: SweepPytester) -> None:
    name = "x\nCONFIG_TOY_X=99\n#"
    toy.range_config("CONFIG_TOY_X=1|2\n", name)
    toy.range_config("CONFIG_TOY_X=3|4\n", "other.rc")
    toy.run(f"--range-config={name}", "--range-config=other.rc", "--sweep-output=out").assert_outcomes(passed=4)
    sweep = _sweep_dir(toy.path / "out")
    refined = parse_file(sweep / "refine_range")
    assert {p.key: p.values for p in refined.params} == {"CONFIG_TOY_X": ("3.5", "4", "5")}
    for trial in sweep.glob("*/config.txt"):
        assert {p.key for p in parse_file(trial).params} == {"CONFIG_TOY_X"}


@pytest.mark.parametrize("value", ['say "hi"', 'a"|"b', "x # y", "1:2:3", "back\\slash"])
def test_item13_a_sweep_set_value_with_a_quote_reads_back_from_every_file(toy: SweepPytester, value: str) -> None:
    toy.range_config("CONFIG_TOY_X=1|2\n")
    result = toy.run("--range-config=sweep.rc", "--sweep-output=out", f"--sweep-set=CONFIG_TOY_NAME={value}")
    result.assert_outcomes(passed=2)
    sweep = _sweep_dir(toy.path / "out")
    assert parse_file(sweep / "refine_range").param("CONFIG_TOY_NAME").values == (value,)  # type: ignore[union-attr]
    for trial in sweep.glob("*/config.txt"):
        assert parse_file(trial).param("CONFIG_TOY_NAME").values == (value,)  # type: ignore[union-attr]


@pytest.mark.parametrize("value", ["a\nCONFIG_TOY_X=7", "a\rb"])
def test_item13_a_sweep_set_value_with_a_line_break_is_a_usage_error(toy: SweepPytester, value: str) -> None:
    toy.range_config("CONFIG_TOY_X=1|2\n")
    result = toy.run("--range-config=sweep.rc", "--sweep-output=out", f"--sweep-set=CONFIG_TOY_NAME={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--sweep-set*holds a line break; a config value is one line of text*"])
    assert not (toy.path / "out").exists()


# -- item 14: nothing written or linked outside the sweep folder ----------------------------------------------
def test_item14_report_with_plots_linked_elsewhere_writes_nothing_there(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _summary_dir(tmp_path / "sweep", _records())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.png").write_bytes(b"mine")
    (folder / "plots").symlink_to(elsewhere)
    code, _, err = _main(capsys, "report", str(folder))
    assert code == cli.USAGE_ERROR and len(err) == 1, err
    assert ": sweep.plots could not write its files: " in err[0] and "a symbolic link" in err[0], err
    assert sorted(p.name for p in elsewhere.iterdir()) == ["keep.png"]
    assert (folder / "sweep_report.html").is_file()  # the other reports are written


def test_item14_resume_never_writes_through_a_linked_trial_folder(toy: SweepPytester) -> None:
    toy.range_config("CONFIG_TOY_X=1|2\n")
    toy.run("--range-config=sweep.rc", "--sweep-output=out").assert_outcomes(passed=2)
    sweep = _sweep_dir(toy.path / "out")
    trial = next(sweep.glob("config_002*"))
    elsewhere = toy.path / "elsewhere"
    trial.rename(elsewhere)
    (elsewhere / "training_metrics.json").unlink()
    trial.symlink_to(elsewhere)
    result = toy.run("--range-config=sweep.rc", "--sweep-output=out", f"--sweep-resume={sweep}")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([f"*config_002: cannot write its folder {trial.name}: a symbolic link in the sweep*"])
    assert sorted(p.name for p in elsewhere.iterdir()) == ["config.txt", "output.log"]  # untouched


def test_item14_tensorboard_never_writes_events_through_a_linked_trial_folder(toy: SweepPytester) -> None:
    pytest.importorskip("tensorboard")
    toy.range_config("CONFIG_TOY_X=1|2\n")
    toy.run("--range-config=sweep.rc", "--sweep-output=out").assert_outcomes(passed=2)
    sweep = _sweep_dir(toy.path / "out")
    trial = next(sweep.glob("config_002*"))
    elsewhere = toy.path / "elsewhere"
    trial.rename(elsewhere)
    (elsewhere / "training_metrics.json").unlink()
    trial.symlink_to(elsewhere)
    # a subprocess: tensorboard's protobuf modules load once per process
    result = toy.run_subprocess(
        "--range-config=sweep.rc", "--sweep-output=out", f"--sweep-resume={sweep}", "--sweep-tensorboard"
    )
    result.assert_outcomes(passed=1, failed=1)
    assert sorted(p.name for p in elsewhere.iterdir()) == ["config.txt", "output.log"]  # no event file in it
    assert list(sweep.glob("events.out.tfevents.*"))  # the sweep's own HParams experiment is written


@pytest.mark.parametrize("trial_dir", ["/etc", "../outside", "..", "a/b", "", "linked"])
def test_item14_mlflow_uploads_nothing_from_outside_the_sweep_folder(tmp_path: Path, trial_dir: str) -> None:
    from pytest_sweep.plugins.mlflow_tracker import _history, _inside

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "training_metrics.json").write_text(json.dumps({"epochs": [{"epoch": 1, "test_acc": 1.0}]}))
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "linked").symlink_to(outside)
    assert _inside(sweep, trial_dir) is None
    (sweep / "config_001").mkdir()
    (sweep / "config_001" / "training_metrics.json").symlink_to(outside / "training_metrics.json")
    folder = _inside(sweep, "config_001")
    assert folder == sweep / "config_001" and _history(folder) == []


@pytest.mark.parametrize("trial_dir", ["/etc", "../../../../etc", "..", "a/b", "javascript:alert(1)//x"])
def test_item14_report_never_links_or_reads_a_trial_dir_outside_the_sweep(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], trial_dir: str
) -> None:
    records = _records()
    for rec in records:
        rec.update(trial_dir=trial_dir, status="failed", error="boom")
    records[0].update(status="passed")
    folder = _summary_dir(tmp_path / "sweep", records)
    code, _, err = _main(capsys, "report", str(folder))
    assert code == cli.OK, err
    page = (folder / "sweep_report.html").read_text(encoding="utf-8")
    assert "output.log" not in page.split("<h2>Every trial</h2>")[1]  # no link in the table or the failures
    assert "etc" not in "".join(line for line in page.splitlines() if "href" in line)


def test_item14_every_writer_takes_its_path_from_one_helper(tmp_path: Path) -> None:
    (tmp_path / "link").symlink_to(tmp_path)
    with pytest.raises(storage.UnsafePath, match="a symbolic link"):
        storage.sweep_path(tmp_path, "link", "x")
    for bad in ("..", ".", "", "a/b", "/etc", "a\0b"):
        with pytest.raises(storage.UnsafePath, match="not a file or folder name"):
            storage.sweep_path(tmp_path, bad)
    assert storage.sweep_path(tmp_path, "config_001", "config.txt") == tmp_path / "config_001" / "config.txt"
    assert parse_text("CONFIG_X=1\n").params  # (the module imports)
