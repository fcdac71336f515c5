"""The options are resolved once (issue 19, part 2).

- Only the options modules read them: no ``getoption``/``getini`` call (nor ``config.option.sweep_*``)
  anywhere else in the package (an AST check that fails on a new one);
- :class:`~pytest_sweep.matrix.options.SweepOptions` keeps the precedence: the command line over
  the ini value over the default, a relative folder from the invocation folder (option) or the
  rootdir (ini); it is frozen, kept in ``config.stash`` and built once;
- the Ray settings are read with ``--sweep-backend=ray`` only (a bad one is no error otherwise), and
  a built-in plugin turned off (``-p no:NAME``) reads none of its options;
- an xdist worker runs with its controller's object, shipped in its plain-dict form.
"""

from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path

import pytest
from landscape import CONFTEST, RANGE

from pytest_sweep.matrix.options import SweepOptions, sweep_options
from pytest_sweep.plugins import options as plugin_options

from sweep_helpers import PLUGIN_ARGS, XDIST_PLUGIN_ARGS, SweepPytester

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = ("matrix", "plugins", "trainers", "src/pytest_sweep")
#: the modules that read options: the core's, the search's (part of the core's), the built-in plugins'
OPTIONS_MODULES = {"matrix/options.py", "matrix/search_options.py", "plugins/options.py"}
READERS = ("getoption", "getini")


def option_reads(source: str) -> list[str]:
    """Where ``source`` reads an option itself: ``X.getoption(...)``, ``X.getini(...)``, or
    ``X.option.sweep_*``/``X.option.range_config``/``X.option.config_dir`` (``line: text``)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in READERS:
            found.append(f"{node.lineno}: .{node.func.attr}(...)")
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "option"
            and (node.attr.startswith("sweep_") or node.attr in ("range_config", "config_dir"))
        ):
            found.append(f"{node.lineno}: .option.{node.attr}")
    return found


def test_the_check_finds_every_kind_of_read() -> None:
    source = (
        "def f(config):\n"
        "    a = config.getoption('sweep_output')\n"
        "    b = session.config.getini('sweep_output')\n"
        "    c = config.option.sweep_resume\n"
        "    d = self.config.option.range_config\n"
        "    e = config.option.collectonly  # pytest's own: not a sweep option\n"
        "    return 'config.getoption(x)'  # text is no call\n"
    )
    assert option_reads(source) == ["2: .getoption(...)", "3: .getini(...)", "4: .option.sweep_resume",
                                    "5: .option.range_config"]  # fmt: skip


def test_no_option_is_read_outside_the_options_modules() -> None:
    offenders = []
    files = [ROOT / "conftest.py"] + [p for folder in PACKAGE_DIRS for p in sorted((ROOT / folder).rglob("*.py"))]
    for path in files:
        rel = path.relative_to(ROOT).as_posix()
        if rel in OPTIONS_MODULES:
            continue
        offenders += [f"{rel}:{where}" for where in option_reads(path.read_text(encoding="utf-8"))]
    assert not offenders, "read the options once in an options module, then pass the values:\n" + "\n".join(offenders)
    for rel in OPTIONS_MODULES:  # the allowed list names real modules that do read options
        assert option_reads((ROOT / rel).read_text(encoding="utf-8")), rel


def _config(pytester: pytest.Pytester, *args: str) -> pytest.Config:
    """Parsed, not configured: the options resolve on first use.  (Configuring in process with
    ``sweep_backend = ray`` and never running the session made a later in-process Ray test,
    test_ray_shared_nothing, segfault in protobuf: seen here, not chased.)"""
    return pytester.parseconfig(*PLUGIN_ARGS, f"--range-config={pytester.path / 'sweep.rc'}", *args)


@pytest.fixture
def range_file(sweep_pytester: SweepPytester) -> Path:
    """A range config in a hermetic pytester folder (plugin autoload off: the sweep's plugins by -p)."""
    return sweep_pytester.range_config("CONFIG_LEARNING_RATE=0.1\n")


def test_defaults_ini_then_option(pytester: pytest.Pytester, range_file: Path) -> None:
    (pytester.path / "sub").mkdir()
    default = sweep_options(_config(pytester))
    assert default.output_root == pytester.path / "test_matrix_results"
    assert (default.max_combinations, default.progress, default.summary_interval) == (10_000, "auto", 10.0)
    assert (default.backend, default.ray, default.scheduler, default.search.search) == ("serial", None, "none", "grid")
    assert (default.checkpoint.every_epochs, default.checkpoint.keep, default.checkpoint.keep_after) == (1, 1, False)
    pytester.makeini(
        "[pytest]\nsweep_output = from_ini\nsweep_max_combinations = 50\nsweep_progress = none\n"
        "sweep_summary_interval = 0\nsweep_checkpoint_every = 30s\nsweep_scheduler = asha\n"
        "sweep_backend = ray\nsweep_ray_node_retries = 3\n"
    )
    ini = sweep_options(_config(pytester))
    assert ini.output_root == pytester.path / "from_ini"
    assert (ini.max_combinations, ini.progress, ini.summary_interval, ini.scheduler) == (50, "none", 0.0, "asha")
    assert (ini.checkpoint.every_epochs, ini.checkpoint.every_seconds) == (None, 30.0)
    assert ini.ray is not None and (ini.ray.address, ini.ray.node_retries, ini.ray.cpus_per_trial) == ("auto", 3, 1.0)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(pytester.path / "sub")  # an option's relative folder is the invocation folder's
        opt = sweep_options(
            _config(pytester, "--sweep-output=from_opt", "--sweep-max-combinations=7",
                    "--sweep-progress=lines", "--sweep-scheduler=median", "--sweep-backend=serial", "--sweep-epochs=3")
        )  # fmt: skip
    assert opt.output_root == pytester.path / "sub" / "from_opt"
    assert (opt.max_combinations, opt.progress, opt.scheduler, opt.backend, opt.ray) == (
        7,
        "lines",
        "median",
        "serial",
        None,
    )
    assert opt.overrides == {"CONFIG_NUM_EPOCHS": "3"}
    assert opt.range_config == (str(pytester.path / "sweep.rc"),)


def test_resolved_once_frozen_and_kept(pytester: pytest.Pytester, range_file: Path) -> None:
    config = _config(pytester)
    first = sweep_options(config)
    assert sweep_options(config) is first
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.backend = "ray"  # type: ignore[misc]
    assert plugin_options.scheduler_options(config) is plugin_options.scheduler_options(config)
    assert plugin_options.compare_options(config) is plugin_options.compare_options(config)
    assert plugin_options.sweep_order(config) == "grid"


def test_the_plain_form_gives_the_same_object(pytester: pytest.Pytester, range_file: Path) -> None:
    config = pytester.parseconfig(  # resolved, not configured (no Ray, no study needed)
        *PLUGIN_ARGS, f"--range-config={range_file}", "--sweep-search=random", "--sweep-trials=3", "--sweep-objective=test_acc:max,final_sparsity:max",
        "--sweep-constraint=test_acc>=50", "--sweep-backend=ray", "--sweep-set=CONFIG_SEED=3",
        "--sweep-checkpoint-every=2", "--sweep-trial-timeout=60",
    )  # fmt: skip
    opts = sweep_options(config)
    plain = opts.to_dict()
    assert json.loads(json.dumps(plain)) == plain  # what execnet and Ray carry
    assert SweepOptions.from_dict(plain) == opts
    assert SweepOptions.from_dict(plain).search.constraints == opts.search.constraints != ()


def test_ray_settings_are_read_with_the_ray_backend_only(sweep_pytester: SweepPytester) -> None:
    sp = sweep_pytester
    sp.range_config("CONFIG_LEARNING_RATE=0.1\n")
    sp.pytester.makeini("[pytest]\nsweep_ray_node_retries = many\n")
    assert sp.run("--range-config=sweep.rc", "--collect-only").ret == pytest.ExitCode.OK
    result = sp.run("--range-config=sweep.rc", "--collect-only", "--sweep-backend=ray")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: ini value sweep_ray_node_retries = 'many': *"])


DUMP = """

def pytest_sessionstart(session):
    from pytest_sweep.matrix.options import sweep_options

    who = getattr(session.config, "workerinput", {}).get("workerid", "main")
    shipped = "sweep_options" in getattr(session.config, "workerinput", {})
    with open(Path(session.config.rootpath) / f"options-{who}.json", "w") as fh:
        json.dump({"options": sweep_options(session.config).to_dict(), "shipped": shipped}, fh)
"""


def test_xdist_workers_run_with_the_controllers_options(sweep_pytester: SweepPytester) -> None:
    sp = sweep_pytester
    sp.pytester.makeconftest(CONFTEST.replace("import math\n", "import json\nimport math\n") + DUMP)
    sp.range_config(RANGE, name="lr.rc")
    result = sp.pytester.runpytest_subprocess(
        *XDIST_PLUGIN_ARGS, "--range-config=lr.rc", "-n", "2", "--sweep-set=CONFIG_NUM_EPOCHS=2", timeout=300
    )
    result.assert_outcomes(passed=3)
    dumps = {p.name: json.loads(p.read_text()) for p in sorted(sp.path.glob("options-*.json"))}
    assert sorted(dumps) == ["options-gw0.json", "options-gw1.json", "options-main.json"]
    main = dumps["options-main.json"]["options"]
    assert main["overrides"] == {"CONFIG_NUM_EPOCHS": "2"} and main["range_config"] == ["lr.rc"]
    assert all(d["options"] == main for d in dumps.values())
    assert [d["shipped"] for d in dumps.values()] == [True, True, False]  # gw0, gw1: the controller's


def test_a_plugin_turned_off_reads_none_of_its_options(sweep_pytester: SweepPytester) -> None:
    sp = sweep_pytester
    sp.range_config("CONFIG_LEARNING_RATE=0.1|0.2\n")
    sp.pytester.makeini("[pytest]\nsweep_order = sideways\n")
    result = sp.run("--range-config=sweep.rc", "--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: ini value sweep_order = 'sideways': use grid, interleaved or random"])
    assert sp.run("--range-config=sweep.rc", "--collect-only", "-p", "no:sweep.ordering").ret == pytest.ExitCode.OK
