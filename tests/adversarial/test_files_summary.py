"""Hostile ``sweep_summary.json`` and ``training_metrics.json`` files (issue 16, further round).

Read by ``pytest-sweep report`` and ``compare`` (the console script, in process), by
``--sweep-resume`` (:func:`~pytest_sweep.matrix.resume.finished_trials`) and by the plots
(:func:`~pytest_sweep.plugins.plots.history`).  Whatever a file holds: ``report`` and ``compare``
exit 0 or 4 (never 1, the code of a regression, never a traceback) with one line on stderr; a
reader of a trial's metrics keeps going and reuses only what is valid.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from synthetic import grid_records

from pytest_sweep import cli
from pytest_sweep.matrix.resume import finished_trials
from pytest_sweep.plugins.plots import history


def _records(n: int = 1) -> list[dict[str, Any]]:
    out = grid_records({"CONFIG_X": [str(i) for i in range(1, n + 1)]}, lambda v: 50.0 + float(v["CONFIG_X"]))
    for rec in out:
        rec["trial_dir"] = None  # no trial folders here: nothing for the plots to read
    return out


def _with(**fields: Any) -> str:
    record = _records()[0]
    record.update(fields)
    return json.dumps([record])


def _without(key: str) -> str:
    record = _records()[0]
    del record[key]
    return json.dumps([record])


#: name -> file content (text or bytes), and whether ``report`` must accept it (True) or refuse it (False)
SUMMARIES: dict[str, tuple[str | bytes, bool]] = {
    "empty-file": ("", False),
    "whitespace": (" \n\t", False),
    "not-json": ("{", False),
    "null": ("null", False),
    "object": ("{}", False),
    "string": ('"records"', False),
    "number": ("42", False),
    "empty-list": ("[]", True),
    "list-of-null": ("[null]", False),
    "list-of-numbers": ("[1, 2]", False),
    "list-of-lists": ("[[]]", False),
    "deep-nesting": ("[" * 100_000 + "]" * 100_000, False),
    "bom": (b"\xef\xbb\xbf" + json.dumps(_records()).encode(), False),
    "utf16": (json.dumps(_records()).encode("utf-16"), False),
    "invalid-utf8": (b'[{"config_file": "\xff"}]', False),
    "nan-literal": (_with(test_acc=float("nan")), False),
    "infinity-literal": (_with(test_acc=float("inf")), False),
    "1e400": (_with(test_acc=1e400).replace("Infinity", "1e400"), False),
    "huge-int": (_with(test_acc=10**400), False),
    "negative-huge-int": (_with(training_time=-(10**400)), False),
    "bool-acc": (_with(test_acc=True), False),
    "string-acc": (_with(test_acc="99.1"), False),
    "list-acc": (_with(test_acc=[99.1]), False),
    "object-acc": (_with(test_acc={"v": 1}), False),
    "string-sparsity": (_with(final_sparsity="0.5"), False),
    "list-time": (_with(training_time=[1, 2]), False),
    "string-rank": (_with(rank="1"), False),
    "string-seed": (_with(seed="42"), False),
    "string-epochs": (_with(epochs_run="2"), False),
    "int-status": (_with(status=1), False),
    "unknown-status": (_with(status="exploded"), True),
    "int-config-file": (_with(config_file=7), False),
    "int-trial-dir": (_with(trial_dir=7), False),
    "list-config": (_with(config=["CONFIG_X", "1"]), False),
    "string-config": (_with(config="CONFIG_X=1"), False),
    "nested-config-value": (_with(config={"CONFIG_X": {"a": 1}}), False),
    "number-config-value": (_with(config={"CONFIG_X": 1.5}), True),
    "string-swept": (_with(swept="CONFIG_X"), False),
    "number-in-swept": (_with(swept=[1]), False),
    "swept-key-missing": (_with(swept=["CONFIG_NOPE"]), True),
    "swept-column-list": (_with(CONFIG_X=[1]), False),
    "lone-surrogate": (json.dumps([{**_records()[0], "error": "\ud800"}]), False),
    "surrogate-in-config": (json.dumps([{**_records()[0], "config": {"CONFIG_X": "\udfff"}}]), False),
    "no-fields": ("[{}]", True),
    "negative-acc": (_with(test_acc=-5.0), True),
    "acc-1e308": (_with(test_acc=1e308), True),
    "tiny-acc": (_with(test_acc=5e-324), True),
    "duplicate-records": (json.dumps(_records() * 2), True),
    "duplicate-keys": ('[{"config_file": "a", "config_file": "b"}]', True),
    "unicode-everywhere": (
        _with(config_file="c\u00f6nfig_\U0001f600", config={"CONFIG_X": "\u202e\u2028x"}, error="\x1b[2J"),
        True,
    ),
    "control-chars": (_with(error="a\x00b\x07c\rd\ne"), True),
    "huge-text": (_with(error="x" * 1_000_000), True),
    "html-in-values": (
        _with(config_file="<script>alert(1)</script>", error="</pre><img src=x onerror=alert(1)>"),
        True,
    ),
    "formula-in-values": (_with(error='=HYPERLINK("http://evil")', config={"CONFIG_X": "@SUM(1)"}), True),
    "missing-config-file": (_without("config_file"), True),
    "missing-status": (_without("status"), True),
}


def _folder(tmp_path: Path, content: str | bytes) -> Path:
    folder = tmp_path / "sweep"
    folder.mkdir()
    data = content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass")
    (folder / "sweep_summary.json").write_bytes(data)
    return folder


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str], list[str]]:
    try:
        code = cli.main(list(args))
    except SystemExit as exc:  # argparse's own exits
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    joined = out + err
    assert "Traceback" not in joined
    assert "\x1b" not in joined and "\x00" not in joined and "\x07" not in joined, repr(joined[:300])
    return code, out.splitlines(), err.splitlines()


@pytest.mark.parametrize(("content", "accepted"), list(SUMMARIES.values()), ids=list(SUMMARIES))
def test_report_of_a_hostile_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | bytes, accepted: bool
) -> None:
    folder = _folder(tmp_path, content)
    code, _, err = _run(capsys, "report", str(folder))
    if accepted:
        assert code == cli.OK, err
        page = (folder / "sweep_report.html").read_text(encoding="utf-8")
        assert "<script>alert" not in page and "<img src=x" not in page
        csv_text = (folder / "sweep_summary.csv").read_text(encoding="utf-8")
        assert ",=" not in csv_text and ",@" not in csv_text
    else:
        assert code == cli.USAGE_ERROR and len(err) == 1, err
        assert err[0].startswith("pytest-sweep: error: report=") and "sweep_summary.json is not readable" in err[0]
        assert sorted(p.name for p in folder.iterdir()) == ["sweep_summary.json"]  # nothing written


@pytest.mark.parametrize(("content", "accepted"), list(SUMMARIES.values()), ids=list(SUMMARIES))
def test_compare_with_a_hostile_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | bytes, accepted: bool
) -> None:
    folder = _folder(tmp_path, content)
    good = tmp_path / "good"
    good.mkdir()
    (good / "sweep_summary.json").write_text(json.dumps(_records(2)), encoding="utf-8")
    for args in (("compare", str(good), str(folder), "--fail", "test_acc:1"), ("compare", str(folder), str(good))):
        code, _, err = _run(capsys, *args)
        if accepted:
            assert code in (cli.OK, cli.REGRESSION), err
        else:
            assert code == cli.USAGE_ERROR and len(err) == 1, err


def test_a_summary_that_is_a_folder_or_a_loop(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = tmp_path / "a"
    (a / "sweep_summary.json").mkdir(parents=True)
    b = tmp_path / "b"
    b.mkdir()
    os.symlink("sweep_summary.json", b / "sweep_summary.json")
    for folder, why in ((a, "sweep_summary.json is a folder"), (b, "cannot read sweep_summary.json")):
        code, _, err = _run(capsys, "report", str(folder))
        assert code == cli.USAGE_ERROR and len(err) == 1 and why in err[0], err


# -- training_metrics.json: --sweep-resume and the learning curves ---------------------------------------------
METRICS: dict[str, str | bytes] = {
    "empty": "",
    "null": "null",
    "list": "[]",
    "deep": "[" * 50_000 + "]" * 50_000,
    "no-status": '{"config_file": "config_001"}',
    "status-list": '{"status": ["passed"], "config_file": "config_001"}',
    "config-file-number": '{"status": "passed", "config_file": 1}',
    "epochs-string": '{"status": "passed", "config_file": "config_001", "epochs": "abc"}',
    "epochs-numbers": '{"status": "passed", "config_file": "config_001", "epochs": [1, 2]}',
    "epoch-acc-text": '{"status": "passed", "config_file": "config_001", "epochs": [{"test_acc": "x"}]}',
    "epoch-acc-nan": '{"status": "passed", "config_file": "config_001", "epochs": [{"test_acc": NaN}, {"test_acc": 1e999}]}',
    "binary": b"\x00\xff\xfe\x89PNG",
}


@pytest.mark.parametrize("content", list(METRICS.values()), ids=list(METRICS))
def test_hostile_training_metrics_never_break_resume_or_the_plots(tmp_path: Path, content: str | bytes) -> None:
    trial = tmp_path / "config_001"
    trial.mkdir()
    (trial / "training_metrics.json").write_bytes(content if isinstance(content, bytes) else content.encode())
    found = finished_trials(tmp_path)
    assert set(found) <= {"config_001"}
    record = {"trial_dir": "config_001", "status": "passed", "test_acc": 50.0}
    assert all(isinstance(x, float) for x in history(tmp_path, record))


def test_metrics_through_a_linked_trial_folder_are_not_reused_or_read(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "training_metrics.json").write_text(
        json.dumps({"status": "passed", "config_file": "config_001", "epochs": [{"test_acc": 1.0}]})
    )
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "config_001").symlink_to(outside)
    assert finished_trials(sweep) == {}
    assert history(sweep, {"trial_dir": "config_001"}) == []
    (sweep / "config_002").mkdir()
    (sweep / "config_002" / "training_metrics.json").symlink_to(outside / "training_metrics.json")
    assert finished_trials(sweep) == {}


# -- earlier sweeps' summaries, read for the runtime estimate -----------------------------------------------
@pytest.mark.parametrize("content", list(METRICS.values()), ids=list(METRICS))
def test_an_earlier_hostile_summary_is_left_out_of_the_estimate(tmp_path: Path, content: str | bytes) -> None:
    from pytest_sweep.matrix import estimate

    folder = tmp_path / "sweep_20200101_000000"
    folder.mkdir()
    (folder / "sweep_summary.json").write_bytes(content if isinstance(content, bytes) else content.encode())
    skipped: list[str] = []
    assert estimate.history(tmp_path, {"toy"}, skipped) == {}
    assert all("\n" not in line for line in skipped)


# -- sweep_pareto.json, read back into the HTML report by `pytest-sweep report` --------------------------------
PARETO: dict[str, str | bytes] = {
    "list": "[]",
    "null": "null",
    "front-text": '{"front": "x", "objectives": ["test_acc:max"]}',
    "front-numbers": '{"front": [1, 2], "objectives": ["test_acc:max"]}',
    "markup-counts": '{"front": [], "configurations": "<b>x</b>", "infeasible": "<script>x</script>", "constraints": ["<i>"]}',
    "markup-point": (
        '{"objectives": ["test_acc:max"], "front": [{"config": "<script>x</script>", "n": "<img src=x onerror=y>",'
        ' "values": {"test_acc": "<b>"}, "swept": {"<u>": "<s>"}}]}'
    ),
    "deep": "[" * 50_000 + "]" * 50_000,
    "binary": b"\xff\xfe\x00",
}


@pytest.mark.parametrize("content", list(PARETO.values()), ids=list(PARETO))
def test_a_hostile_pareto_file_never_breaks_the_html_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | bytes
) -> None:
    folder = _folder(tmp_path, json.dumps(_records()))
    (folder / "sweep_pareto.json").write_bytes(content if isinstance(content, bytes) else content.encode())
    code, _, err = _run(capsys, "report", str(folder))
    assert code == cli.OK, err
    page = (folder / "sweep_report.html").read_text(encoding="utf-8")
    for markup in ("<b>x", "<script>x", "<img src=x", "<i>", "<u>", "<s>", "<b></td>"):
        assert markup not in page, markup


# -- environment.json, summed up by `pytest-sweep report` ---------------------------------------------------------
ENVIRONMENTS: dict[str, str | bytes] = {
    "list": "[]",
    "deep": "[" * 50_000 + "]" * 50_000,
    "gpus-number": '{"gpus": 3}',
    "fields-of-the-wrong-type": '{"torch": "x", "cuda": [1], "python": 7, "host": {"hostname": ["a"]}, "code": 5}',
    "ansi-in-values": '{"python": {"version": "\\u001b[2J3.11"}, "host": {"hostname": "a\\nb"}}',
    "binary": b"\xff\x00",
}


@pytest.mark.parametrize("content", list(ENVIRONMENTS.values()), ids=list(ENVIRONMENTS))
def test_a_hostile_environment_file_never_breaks_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | bytes
) -> None:
    folder = _folder(tmp_path, json.dumps(_records()))
    (folder / "environment.json").write_bytes(content if isinstance(content, bytes) else content.encode())
    code, out, err = _run(capsys, "report", str(folder))
    assert code == cli.OK, err
    (line,) = [line for line in out if line.startswith("environment: ")]
    assert line.isprintable()
    code, out, err = _run(capsys, "compare", str(folder), str(folder))
    assert code == cli.OK, err
    assert all(line.isprintable() for line in out)
