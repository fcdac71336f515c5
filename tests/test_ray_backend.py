"""``--sweep-backend=ray`` without a cluster: usage errors, actor sizing, the worker's environment."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pytest_sweep.matrix.ray.backend import worker_env, worker_sys_path
from pytest_sweep.matrix.ray.plan import plan_actors
from pytest_sweep.matrix.ray.worker import preimported_plugins, preimported_plugins_args, warning_data
from pytest_sweep.matrix.remote.loop import warning_message

if TYPE_CHECKING:
    from sweep_helpers import SweepPytester


def test_one_actor_per_gpu_never_more_than_items() -> None:
    plan = plan_actors({"GPU": 8.0, "CPU": 64.0}, 2.0, items=36)
    assert (plan.count, plan.resources) == (8, {"GPU": 1.0, "CPU": 2.0})
    assert plan.describe() == "8 workers (1 GPU + 2 CPU each)"
    assert plan_actors({"GPU": 8.0, "CPU": 64.0}, 1.0, items=3).count == 3


def test_k_workers_per_gpu_are_k_actors_with_a_kth_of_a_gpu_each() -> None:
    plan = plan_actors({"GPU": 2.0, "CPU": 4.0}, 0.5, items=36, per_gpu=4)
    assert (plan.count, plan.resources) == (8, {"GPU": 0.25, "CPU": 0.5})
    assert plan.describe() == "8 workers (0.25 GPU + 0.5 CPU each)"
    assert plan_actors({"GPU": 2.0, "CPU": 4.0}, 1.0, items=3, per_gpu=4).count == 3
    assert plan_actors({"CPU": 4.0}, 1.0, items=36, per_gpu=4).resources == {"CPU": 1.0}  # no GPU to share
    with pytest.raises(pytest.UsageError, match=r"--sweep-workers-per-gpu 10001: Ray divides a GPU into at most 10000"):
        plan_actors({"GPU": 1.0}, 0.1, items=36, per_gpu=10_001)


def test_without_gpus_the_cpus_per_trial_size_the_actors() -> None:
    plan = plan_actors({"CPU": 16.0}, 4.0, items=100)
    assert (plan.count, plan.resources) == (4, {"CPU": 4.0})
    assert plan.describe() == "4 workers (4 CPU each)"
    with pytest.raises(
        pytest.UsageError, match=r"no GPU and 2 CPUs: no room for a worker of --sweep-ray-cpus-per-trial=4"
    ):
        plan_actors({"CPU": 2.0}, 4.0, items=1)


def test_the_worker_environment_follows_the_controller() -> None:
    env = worker_env({"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PATH": "/bin"}, 2.0)
    assert env == {
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
        "PYTEST_PLUGINS": None,  # unset on the actor, as here
        "PYTEST_ADDOPTS": None,
        "PYTHONPATH": None,
        "OMP_NUM_THREADS": "2",  # the actor's CPU share, not Ray's choice
        "MKL_NUM_THREADS": "2",
    }
    assert worker_env({"OMP_NUM_THREADS": "3"}, 0.5)["MKL_NUM_THREADS"] == "3"  # a user's setting wins
    assert worker_env({}, 0.5)["OMP_NUM_THREADS"] == "1"
    assert worker_sys_path(Path("/proj"), {"PYTHONPATH": "site:/abs"}) == ["/proj", "/proj/site", "/abs"]


def test_only_imported_modules_of_pytest_plugin_distributions_are_spared_the_rewrite_warning() -> None:
    # xdist and anyio ship pytest11 entry points (anyio's module is anyio/pytest_plugin.py: the
    # whole package is marked); os and ray do not
    assert preimported_plugins({"os", "ray", "anyio", "anyio.pytest_plugin", "xdist"}) == ["anyio", "xdist"]
    assert preimported_plugins({"os", "ray"}) == []
    assert preimported_plugins_args({"anyio"}) == [
        "-Wignore:Module already imported so cannot be rewritten; anyio:pytest.PytestAssertRewriteWarning"
    ]


class CustomWarning(UserWarning):
    pass


def test_a_workers_warning_comes_back_as_this_process_warning() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.warn("deprecated here", DeprecationWarning)
        warnings.warn("custom", CustomWarning)
    data = [warning_data(w, "a.py::t", ("a.py", 1, "t")) for w in caught]
    assert data[0]["category"] == ["builtins", "DeprecationWarning"]
    back = [warning_message(d) for d in data]
    assert [(w.category, str(w.message), w.filename, w.lineno) for w in back] == [
        (DeprecationWarning, "deprecated here", __file__, caught[0].lineno),
        (CustomWarning, "custom", __file__, caught[1].lineno),  # its module is imported here
    ]
    # a category this process has not imported (only the worker loaded it) is never imported here
    unknown = warning_message({**data[1], "category": ["plugin_only_on_the_node", "NodeWarning"]})
    assert unknown.category is UserWarning and str(unknown.message) == "plugin_only_on_the_node.NodeWarning: custom"
    assert "plugin_only_on_the_node" not in sys.modules


def test_n_with_the_ray_backend_is_a_usage_error(sweep_pytester: SweepPytester) -> None:
    sweep_pytester.range_config("CONFIG_SEED=1|2\n")
    result = sweep_pytester.run("-p", "xdist.plugin", "--range-config=sweep.rc", "--sweep-backend=ray", "-n", "2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: -n and --sweep-backend=ray do not go together: Ray starts one worker per GPU itself; drop -n"]
    )


def test_without_ray_the_backend_is_a_one_line_usage_error(
    sweep_pytester: SweepPytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets where Ray is not installed
    sweep_pytester.range_config("CONFIG_SEED=1|2\n")
    result = sweep_pytester.run("--range-config=sweep.rc", "--sweep-backend=ray")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.stderr.lines == [
        "ERROR: --sweep-backend=ray needs Ray, which is not installed: pip install pytest-sweep[ray]",
        "",
    ]


def test_the_backend_and_its_settings_come_from_the_ini_file_too(
    ray_imported: None, sweep_pytester: SweepPytester
) -> None:
    sweep_pytester.range_config("CONFIG_SEED=1|2\n")
    sweep_pytester.pytester.makeini("[pytest]\nsweep_backend = ray\n")
    result = sweep_pytester.run("-p", "xdist.plugin", "--range-config=sweep.rc", "-n", "2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: -n and --sweep-backend=ray do not go together*"])
    result = sweep_pytester.run("--range-config=sweep.rc", "--collect-only")  # collecting needs no cluster
    result.assert_outcomes()
    assert result.ret == pytest.ExitCode.OK
    sweep_pytester.pytester.makeini("[pytest]\nsweep_backend = ray\nsweep_ray_node_retries = many\n")
    result = sweep_pytester.run("--range-config=sweep.rc", "--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: ini value sweep_ray_node_retries = 'many': 'many' is not a whole number"])


def test_an_address_where_nothing_answers_is_a_usage_error_at_once(
    ray_imported: None, sweep_pytester: SweepPytester
) -> None:
    sweep_pytester.range_config("CONFIG_SEED=1|2\n")
    result = sweep_pytester.run("--range-config=sweep.rc", "--sweep-backend=ray", "--sweep-ray-address=127.0.0.1:1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --sweep-ray-address=127.0.0.1:1: nothing answers there (Connection refused); is the Ray cluster up?"]
    )


def test_outside_a_ray_actor_there_is_no_state_actor_to_reach(pytestconfig: pytest.Config) -> None:
    """Serial runs and xdist workers keep their files: only a worker session started by the Ray
    pool has ``sweep_state`` in its workerinput (and only there is Ray imported for it)."""
    from pytest_sweep.matrix.ray.state import WORKERINPUT_KEY, worker_state

    assert worker_state(pytestconfig) is None
    assert WORKERINPUT_KEY == "sweep_state"
