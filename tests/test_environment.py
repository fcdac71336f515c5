"""``environment.json``: what a sweep ran on (code, versions, machine, command, options), and its readers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from landscape import CONFTEST, RANGE

from pytest_sweep import cli
from pytest_sweep.matrix import environment, files
from pytest_sweep.plugins import environment as env_plugin

from sweep_helpers import XDIST_PLUGIN_ARGS, SweepPytester

GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.invalid",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.invalid",
    "GIT_CONFIG_GLOBAL": os.devnull,
}


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=repo, env={**os.environ, **GIT_ENV}, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def make_repo(path: Path, files: dict[str, str]) -> str:
    for name, text in files.items():
        (path / name).write_text(text, encoding="utf-8")
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "first")
    return git(path, "rev-parse", "HEAD")


# -- the pieces ------------------------------------------------------------------------------------


def test_git_state_clean_dirty_untracked_and_the_output_folder(tmp_path: Path) -> None:
    commit = make_repo(tmp_path, {"model.py": "WIDTH = 16\n", ".gitignore": "ignored/\n"})
    out = tmp_path / "test_matrix_results"
    out.mkdir()
    (out / "result.json").write_text("{}")  # results inside the repository are not code
    (tmp_path / "ignored").mkdir()
    (tmp_path / "ignored" / "x").write_text("x")
    clean = environment.git_state(tmp_path, [out], tmp_path / "d.diff")
    assert clean == {
        "repository": str(tmp_path),
        "commit": commit,
        "branch": "main",
        "dirty": False,
        "changed": [],
        "untracked": [],
        "diff": None,
    }
    (tmp_path / "model.py").write_text("WIDTH = 32\n")
    (tmp_path / "new_model.py").write_text("X = 1\n")
    dirty = environment.git_state(tmp_path, [out], out / "environment.diff")
    assert dirty["dirty"] is True and dirty["commit"] == commit
    assert dirty["changed"] == ["model.py"] and dirty["untracked"] == ["new_model.py"]
    assert dirty["diff"] == "environment.diff"
    # the saved diff is the change: reverting it gives the committed file back
    git(tmp_path, "apply", "-R", str(out / "environment.diff"))
    assert (tmp_path / "model.py").read_text() == "WIDTH = 16\n"


def test_git_state_outside_a_repository_and_without_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert environment.git_state(tmp_path) == {
        "repository": None,
        "error": f"{tmp_path} is not in a git repository",
    }
    monkeypatch.setenv("PATH", str(tmp_path))  # no git on the PATH
    assert environment.git_state(tmp_path) == {"repository": None, "error": "git is not installed"}


def test_torch_and_cuda_versions_are_read_without_importing_torch(tmp_path: Path) -> None:
    version_py = tmp_path / "version.py"
    version_py.write_text(
        "from typing import Optional\n__version__ = '9.1.0+cu130'\ncuda: Optional[str] = '13.0'\nhip = None\n"
    )
    assert environment.torch_build(version_py) == {
        "version": "9.1.0+cu130",
        "cuda": "13.0",
        "hip": None,
        "git_version": None,
    }
    code = (
        "import sys; from pathlib import Path; from pytest_sweep.matrix import environment as e;"
        "env = e.gather(rootdir=Path('.'), sweep_dir=Path('s'), invocation_dir=Path('.'), args=[], options={},"
        " resolved={}, sources=[]);"
        "print(env['torch']['version'], env['packages'].get('torch'), 'torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    torch_version, listed, imported = done.stdout.split()
    assert imported == "False"
    assert torch_version.startswith(listed) and listed == environment.dist_version("torch")


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (None, "no environment.json (a sweep from before pytest-sweep recorded its environment)"),
        ("{not json", "environment.json is not readable (JSONDecodeError)"),
        ("[1, 2]", "environment.json is not readable (not a JSON object)"),
    ],
    ids=["missing", "broken", "a-list"],
)
def test_a_missing_or_damaged_environment_reads_as_a_reason(tmp_path: Path, content: str | None, why: str) -> None:
    if content is not None:
        (tmp_path / "environment.json").write_text(content)
    assert environment.load(tmp_path) == (None, why)
    assert env_plugin.compare_lines(tmp_path, tmp_path) == []
    assert "<p>" + why + "</p>" in "".join(env_plugin.html_section(tmp_path)).replace("&#x27;", "'")


def fake_env(torch: str, cuda: str | None, gpus: list[str]) -> dict[str, Any]:
    return {
        "torch": {"version": torch},
        "cuda": {"runtime": cuda, "cudnn": "9.1" if cuda else None, "driver": "580.1" if gpus else None},
        "gpus": [{"name": g} for g in gpus],
        "code": {"repository": None},
        "python": {"version": "3.11.7"},
        "pytest_sweep": {"version": "0.2.0"},
        "host": {"hostname": "h"},
    }


def test_compare_warns_when_torch_or_cuda_differ(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from synthetic import grid_records

    a, b = tmp_path / "a", tmp_path / "b"
    for folder, env in ((a, fake_env("2.14.1", "13.0", ["H100"])), (b, fake_env("2.15.0", "13.0", ["H100", "H200"]))):
        folder.mkdir()
        (folder / "environment.json").write_text(json.dumps(env))
        (folder / "sweep_summary.json").write_text(json.dumps(grid_records({"CONFIG_X": ["1", "2"]}, lambda s: 90.0)))
    (line,) = env_plugin.compare_lines(a, b)
    assert line.startswith("WARNING: the environments differ (torch 2.14.1 -> 2.15.0; GPUs H100 -> H100, H200): ")
    assert cli.main(["compare", str(a), str(b)]) == 0
    assert line in capsys.readouterr().out
    (b / "environment.json").write_text(json.dumps(fake_env("2.14.1", "13.0", ["H100"])))
    assert env_plugin.compare_lines(a, b) == []


# -- end to end ------------------------------------------------------------------------------------


def test_a_sweep_records_its_environment_and_a_resume_keeps_the_earlier_one(sweep_pytester: SweepPytester) -> None:
    sp = sweep_pytester
    sp.pytester.makeconftest(CONFTEST)
    rc = sp.range_config(RANGE, name="lr.rc")
    commit = make_repo(sp.path, {"conftest.py": (sp.path / "conftest.py").read_text(), "lr.rc": RANGE})
    (sp.path / "conftest.py").write_text(CONFTEST + "\n# an uncommitted change\n")
    result = sp.run("--range-config=lr.rc", "--sweep-set", "CONFIG_NUM_EPOCHS=2", "--sweep-progress=none")
    result.assert_outcomes(passed=3)
    sweep_dir = sp.only_sweep_dir(sp.path / "test_matrix_results")
    env = json.loads((sweep_dir / "environment.json").read_text())
    args = env["command"]["args"]
    assert args[args.index("--range-config=lr.rc") :][:4] == [
        "--range-config=lr.rc",
        "--sweep-set",
        "CONFIG_NUM_EPOCHS=2",
        "--sweep-progress=none",
    ]
    assert env["command"]["invocation_dir"] == str(sp.path)
    assert env["options"]["range_config"] == ["lr.rc"] and env["options"]["sweep_set"] == ["CONFIG_NUM_EPOCHS=2"]
    assert env["resolved"]["overrides"] == {"CONFIG_NUM_EPOCHS": "2"}
    assert env["resolved"]["backend"] == "serial" and env["resolved"]["scheduler"] == "none"
    assert env["sources"] == [
        {
            "path": str(rc),
            "given": "lr.rc",
            "kind": "range",
            "sha256": environment.file_digest(rc),
            "text": RANGE,
        }
    ]
    # the code under test: the rootdir's repository, dirty through the conftest (not through the results)
    assert env["code"]["commit"] == commit and env["code"]["dirty"] is True
    assert env["code"]["changed"] == ["conftest.py"] and env["code"]["untracked"] == []
    assert "+# an uncommitted change" in (sweep_dir / "environment.diff").read_text()
    assert env["python"]["version"] == ".".join(map(str, sys.version_info[:3]))
    assert env["pytest_sweep"]["version"] == environment.dist_version("pytest-sweep")
    assert env["packages"]["pytest"] == pytest.__version__
    assert env["env"]["OMP_NUM_THREADS"] == "1" and env["host"]["cpu_count"] == os.cpu_count()
    # the HTML report shows it, collapsed
    page = (sweep_dir / files.REPORT_HTML).read_text()
    assert '<details id="environment"><summary>code: ' in page and f"at {commit[:12]} (dirty" in page
    # a resume keeps the earlier run's record and writes its own
    sp.run("--range-config=lr.rc", f"--sweep-resume={sweep_dir}", "--sweep-progress=none").assert_outcomes(passed=3)
    assert json.loads((sweep_dir / "environment.1.json").read_text()) == env
    assert json.loads((sweep_dir / "environment.json").read_text())["options"]["sweep_resume"] == str(sweep_dir)
    # --collect-only writes no folder, so no environment either
    sp.run("--range-config=lr.rc", "--collect-only").assert_outcomes()
    assert sp.sweep_dirs(sp.path / "test_matrix_results") == [sweep_dir]


def test_under_xdist_only_the_controller_writes_it(sweep_pytester: SweepPytester) -> None:
    sp = sweep_pytester
    sp.pytester.makeconftest(CONFTEST)
    sp.range_config(RANGE, name="lr.rc")
    result = sp.pytester.runpytest_subprocess(*XDIST_PLUGIN_ARGS, "--range-config=lr.rc", "-n", "2", timeout=300)
    result.assert_outcomes(passed=3)
    sweep_dir = sp.only_sweep_dir(sp.path / "test_matrix_results")
    assert sorted(p.name for p in sweep_dir.glob("environment*")) == ["environment.json"]
    env = json.loads((sweep_dir / "environment.json").read_text())
    assert env["options"]["numprocesses"] == 2 and env["options"]["dist"] == "load"
    assert env["code"] == {"repository": None, "error": f"{sp.path} is not in a git repository"}
