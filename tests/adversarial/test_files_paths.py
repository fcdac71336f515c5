"""Links and odd paths inside a sweep folder and a ``--sweep-generate`` folder (issue 16, further round).

A symbolic link planted where a writer writes (a report file, ``plots/``, a plot, a trial's log)
must never carry a write out of the folder: the writer refuses it with one line naming the path,
the link's target stays as it was, and the other files are still written.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from synthetic import grid_records

from pytest_sweep import cli
from pytest_sweep.matrix import storage
from pytest_sweep.matrix.errors import RangeConfigError
from pytest_sweep.matrix.generate import write_sweep_configs
from pytest_sweep.matrix.rangeconfig import parse_text

from sweep_helpers import SweepPytester

REPORT_FILES = [
    "sweep_importance.json",
    "refine_range",
    "sweep_summary.csv",
    "sweep_analysis.txt",
    "sweep_report.html",
    "plots",
    "plots/test_acc_vs_x.png",
    "plots/learning_curves.png",
]


def _sweep(folder: Path, plotted: bool = True) -> Path:
    """A sweep folder with its trial folders; ``plotted``: three passed trials (else one: no plots to draw)."""
    folder.mkdir(parents=True)
    records = grid_records(
        {"CONFIG_X": ["1", "2", "3"]}, lambda v: 50.0 + float(v["CONFIG_X"]), failed=set() if plotted else {2, 3}
    )
    for rec in records:
        (folder / rec["trial_dir"]).mkdir()
        (folder / rec["trial_dir"] / "training_metrics.json").write_text(
            json.dumps({"epochs": [{"test_acc": 40.0}, {"test_acc": rec["test_acc"]}]})
        )
    (folder / "sweep_summary.json").write_text(json.dumps(records), encoding="utf-8")
    return folder


@pytest.mark.parametrize("target_kind", ["file", "folder", "dangling"])
@pytest.mark.parametrize("name", REPORT_FILES)
def test_report_never_writes_through_a_planted_link(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, target_kind: str
) -> None:
    folder = _sweep(tmp_path / "sweep", plotted=name.startswith("plots"))  # matplotlib only where it is the point
    outside = tmp_path / "outside"
    if target_kind == "file":
        outside.write_text("precious")
    elif target_kind == "folder":
        outside.mkdir()
        (outside / "precious").write_text("precious")
    link = folder / name
    link.parent.mkdir(exist_ok=True)
    link.symlink_to(outside)
    code = cli.main(["report", str(folder)])
    _, err = capsys.readouterr()
    assert code == cli.USAGE_ERROR and len(err.splitlines()) == 1, err
    assert "a symbolic link in the sweep folder" in err
    if target_kind == "file":
        assert outside.read_text() == "precious"
    elif target_kind == "folder":
        assert sorted(p.name for p in outside.iterdir()) == ["precious"]
    else:
        assert not outside.exists()
    assert link.is_symlink()
    if name != "sweep_report.html":
        assert (folder / "sweep_report.html").is_file()  # the other reports are still written
        assert "precious" not in (folder / "sweep_report.html").read_text(encoding="utf-8")


def test_the_sweep_folder_itself_may_be_a_link(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The folder the user names is theirs: only what is inside it is checked."""
    real = _sweep(tmp_path / "real", plotted=False)
    (tmp_path / "named").symlink_to(real)
    assert cli.main(["report", str(tmp_path / "named")]) == cli.OK, capsys.readouterr().err
    assert (real / "sweep_report.html").is_file()


@pytest.mark.parametrize("planted", ["config_001", "combinations_summary.txt"])
def test_sweep_generate_never_writes_through_a_planted_link(tmp_path: Path, planted: str) -> None:
    out = tmp_path / "gen"
    out.mkdir()
    outside = tmp_path / "outside"
    outside.write_text("precious")
    (out / planted).symlink_to(outside)
    with pytest.raises(RangeConfigError, match="a symbolic link in the sweep folder") as exc:
        write_sweep_configs(parse_text("CONFIG_X=1|2\n"), out)
    assert "\n" not in str(exc.value)
    assert outside.read_text() == "precious"


@pytest.mark.parametrize("case", ["a-file", "under-a-file", "a-link-to-a-folder"])
def test_sweep_generate_into_an_odd_folder(tmp_path: Path, case: str) -> None:
    rc = parse_text("CONFIG_X=1|2\n")
    if case == "a-file":
        (tmp_path / "gen").write_text("x")
        target = tmp_path / "gen"
    elif case == "under-a-file":
        (tmp_path / "file").write_text("x")
        target = tmp_path / "file" / "gen"
    else:
        (tmp_path / "real").mkdir()
        (tmp_path / "gen").symlink_to(tmp_path / "real")
        target = tmp_path / "gen"
    try:
        written = write_sweep_configs(rc, target)
    except RangeConfigError as exc:
        assert case != "a-link-to-a-folder" and "cannot write sweep configs" in str(exc) and "\n" not in str(exc)
        return
    assert case == "a-link-to-a-folder" and [p.name for p in written] == ["config_001", "config_002"]


# -- a running sweep: the summary and a trial's log linked elsewhere -------------------------------------------
TOY = """\
import pytest
from pytest_sweep.matrix import Symbol


@pytest.hookimpl
def pytest_sweep_declare_symbols():
    return [Symbol("CONFIG_TOY_X", "float", 1.0, "A number")]


class Toy:
    def run(self, trial, ctx):
        return {"test_acc": 50.0 + trial["CONFIG_TOY_X"], "epochs_run": 1}


@pytest.hookimpl
def pytest_sweep_make_trainer(trial, config):
    return Toy()
"""


@pytest.fixture
def toy(sweep_pytester: SweepPytester) -> SweepPytester:
    sweep_pytester.pytester.makeconftest(TOY)
    sweep_pytester.pytester.makeini("[pytest]\n")
    sweep_pytester.range_config("CONFIG_TOY_X=1|2\n")
    assert sweep_pytester.run("--range-config=sweep.rc", "--sweep-output=out").ret == 0
    return sweep_pytester


@pytest.mark.parametrize(
    "planted", ["sweep_summary.json", "sweep_analysis.txt", "sweep_summary.csv", "output.log", "config.txt"]
)
def test_a_resumed_sweep_never_writes_through_a_planted_link(toy: SweepPytester, planted: str) -> None:
    (sweep,) = storage.sweep_dirs(toy.path / "out")
    outside = toy.path / "outside"
    outside.write_text("precious")
    trial = next(sweep.glob("config_002*"))
    where = trial if planted in ("output.log", "config.txt") else sweep
    if where is trial:
        (trial / "training_metrics.json").unlink()  # it trains again
    (where / planted).unlink()
    (where / planted).symlink_to(outside)
    result = toy.run("--range-config=sweep.rc", "--sweep-output=out", f"--sweep-resume={sweep}")
    output = result.stdout.str()
    assert "INTERNALERROR" not in output and "Traceback" not in output
    assert outside.read_text() == "precious"
    if where is trial:
        result.assert_outcomes(passed=1, failed=1)
        result.stdout.fnmatch_lines(["*config_002: cannot write its folder *: a symbolic link in the sweep folder*"])
    else:
        result.assert_outcomes(passed=2)
        assert len([line for line in result.outlines if "could not write" in line]) == 1
        assert os.path.islink(where / planted)


# -- files shipped back from Ray actors --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "rel",
    ["../outside/x", "/tmp/x", "config_001/../../outside/x", "linked/output.log", "", "config_001//x", "./x"],
)
def test_files_shipped_from_a_ray_node_land_only_inside_the_sweep_folder(tmp_path: Path, rel: str) -> None:
    from pytest_sweep.matrix.ray.shipping import Download

    sweep = tmp_path / "sweep"
    sweep.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (sweep / "linked").symlink_to(outside)
    with pytest.raises(storage.UnsafePath):
        Download(sweep, rel, 7)
    good = Download(sweep, "config_001/output.log", 2)
    good.write(0, b"ok")
    good.finish()
    assert list(outside.iterdir()) == []
    assert (sweep / "config_001" / "output.log").read_bytes() == b"ok"
    assert sorted(p.name for p in sweep.iterdir()) == ["config_001", "linked"]
    assert sorted(p.name for p in (sweep / "config_001").iterdir()) == ["output.log"]  # no temp file left


# -- pytest-sweep reproduce: the record names the folder and the file it writes ---------------------------------
@pytest.mark.parametrize(
    ("field", "value"),
    [("trial_dir", "../../outside"), ("trial_dir", "/tmp"), ("config_file", "../outside"), ("config_file", "a/b")],
)
def test_reproduce_never_writes_where_a_record_points(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], field: str, value: str
) -> None:
    folder = _sweep(tmp_path / "sweep", plotted=False)
    records = json.loads((folder / "sweep_summary.json").read_text())
    records[0][field] = value
    (folder / "sweep_summary.json").write_text(json.dumps(records))
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "config_keep").write_text("precious")
    code = cli.main(["reproduce", str(folder), records[0]["config_file"], f"--output={tmp_path / 'out' / 'x'}"])
    _, err = capsys.readouterr()
    assert code == cli.USAGE_ERROR and len(err.splitlines()) == 1, err
    assert "not a file or folder name inside the sweep folder" in err
    assert sorted(p.name for p in outside.iterdir()) == ["config_keep"]


def test_reproduce_echoes_a_hostile_record_in_one_line_each(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _sweep(tmp_path / "sweep", plotted=False)
    records = json.loads((folder / "sweep_summary.json").read_text())
    records[0].update(status="skipped", error="no GPU\nCONFIG_X=9\x1b[2J", source="a\nb.rc")
    (folder / "sweep_summary.json").write_text(json.dumps(records))
    code = cli.main(["reproduce", str(folder), records[0]["config_file"], f"--output={tmp_path / 'out'}"])
    out, err = capsys.readouterr()
    assert code == cli.OK, err
    notes = [line for line in out.splitlines() if line.startswith("note: ")]
    assert any("no GPU\\nCONFIG_X=9\\x1b[2J" in line for line in notes), out
    assert all(line.isprintable() for line in notes)
    (config,) = (tmp_path / "out" / records[0]["trial_dir"]).glob("config_*")
    assert not any(line.startswith("CONFIG_X=9") for line in config.read_text().splitlines())
