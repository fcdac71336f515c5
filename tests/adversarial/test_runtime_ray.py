"""``--sweep-backend=ray`` without a cluster: every bad combination or value is one usage line before Ray starts.

In process; nothing here connects to Ray (a malformed address is refused before ``ray.init``, an
unreachable one by a socket probe), so no cluster and no Ray process is needed.
"""

from __future__ import annotations

import pytest
from runtime_toy import write_toy

from sweep_helpers import XDIST_PLUGIN_ARGS, SweepPytester, assert_usage_error

RAY = "--sweep-backend=ray"
# Ray may be imported in process (the address probe): once per process, before pytester runs, and
# on the worker that runs the other Ray tests (tests/conftest.py: ray_imported, the "ray" group)
pytestmark = pytest.mark.usefixtures("ray_imported")


@pytest.mark.parametrize(
    ("args", "ini", "env", "expected"),
    [
        (["--sweep-ray-address=http://x"], "", {}, "ERROR: --sweep-ray-address=http://x: not auto, local or HOST:PORT*"),
        (["--sweep-ray-address="], "", {}, "ERROR: --sweep-ray-address=: not auto, local or HOST:PORT*"),
        (["--sweep-ray-address=host:99999"], "", {}, "ERROR: --sweep-ray-address=host:99999: port 99999 is not from 1*"),
        (["--sweep-ray-address=::1:6379"], "", {}, "ERROR: --sweep-ray-address=::1:6379: *"),
        ([], "sweep_ray_address = http://x", {}, "ERROR: ini value sweep_ray_address = 'http://x': not auto*"),
        ([], "", {"RAY_ADDRESS": "http://x"}, "ERROR: RAY_ADDRESS=http://x (--sweep-ray-address=auto connects there)*"),
        ([], "", {"RAY_ADDRESS": "host:abc"}, "ERROR: RAY_ADDRESS=host:abc *"),
        (["--sweep-ray-cpus-per-trial=0"], "", {}, "*--sweep-ray-cpus-per-trial: 0 must be above 0*"),
        (["--sweep-ray-cpus-per-trial=inf"], "", {}, "*--sweep-ray-cpus-per-trial: inf*"),
        (["--sweep-ray-node-retries=-1"], "", {}, "*--sweep-ray-node-retries: -1 must be 0 or more*"),
        ([], "sweep_ray_cpus_per_trial = nan", {}, "ERROR: ini value sweep_ray_cpus_per_trial = 'nan'*"),
        ([], "sweep_ray_cpus_per_trial = -2", {}, "ERROR: ini value sweep_ray_cpus_per_trial = '-2'*"),
        ([], "sweep_ray_cpus_per_trial = inf", {}, "ERROR: ini value sweep_ray_cpus_per_trial = 'inf'*"),
        ([], "sweep_ray_node_retries = 1.5", {}, "ERROR: ini value sweep_ray_node_retries = '1.5'*"),
        ([], "sweep_ray_node_retries = x", {}, "ERROR: ini value sweep_ray_node_retries = 'x'*"),
        ([], "sweep_ray_ship_files = maybe", {}, "ERROR: *sweep_ray_ship_files*"),
        (["--sweep-ray-ship-limit=lots"], "", {}, "*--sweep-ray-ship-limit: 'lots' is not a size; give bytes with a unit (e.g. 100MiB, 2GiB) or off*"),
        (["--sweep-ray-ship-limit=0"], "", {}, "*--sweep-ray-ship-limit: '0' must be at least 1 byte*"),
        (["--sweep-ray-ship-limit=-5MiB"], "", {}, "*--sweep-ray-ship-limit: '-5MiB' is not a size*"),
        (["--sweep-ray-ship-limit=2EiB"], "", {}, "*--sweep-ray-ship-limit: '2EiB' is not a size*"),
        ([], "sweep_ray_ship_limit = 1e9", {}, "ERROR: ini value sweep_ray_ship_limit = '1e9': '1e9' is not a size*"),
        ([], "sweep_ray_ship_limit = 99999999TiB", {}, "ERROR: ini value sweep_ray_ship_limit = '99999999TiB': *at most 1 EiB*"),
        ([], "sweep_ray_verbose = loud", {}, "ERROR: ini value sweep_ray_verbose: *; use true or false"),
        (["--sweep-workers-per-gpu=0"], "", {}, "ERROR: --sweep-workers-per-gpu 0: use a whole number of at least 1"),
        (["--sweep-workers-per-gpu=10001"], "", {}, "ERROR: --sweep-workers-per-gpu 10001: Ray divides a GPU into at most 10000 parts; use fewer"),
        (["--pdb"], "", {}, "ERROR: --pdb is incompatible with distributing tests*"),
        (["--sweep-ray-address=127.0.0.1:1"], "", {}, "ERROR: --sweep-ray-address=127.0.0.1:1: nothing answers there*"),
    ],
)  # fmt: skip
def test_a_bad_ray_setting_is_one_usage_line(
    sweep_pytester: SweepPytester,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    ini: str,
    env: dict[str, str],
    expected: str,
) -> None:
    rc = write_toy(sweep_pytester.pytester, "CONFIG_TOY_Q=1|2\n")
    if ini:
        sweep_pytester.pytester.makeini(f"[pytest]\n{ini}\n")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    result = sweep_pytester.run(f"--range-config={rc}", RAY, *args)
    assert_usage_error(result, expected)
    assert not list((sweep_pytester.path / "test_matrix_results").glob("sweep_*/sweep_summary.json"))


def test_ray_with_xdist_is_one_usage_line(sweep_pytester: SweepPytester) -> None:
    rc = write_toy(sweep_pytester.pytester, "CONFIG_TOY_Q=1|2\n")
    result = sweep_pytester.pytester.runpytest(*XDIST_PLUGIN_ARGS, f"--range-config={rc}", RAY, "-n", "2")
    assert_usage_error(result, "ERROR: -n and --sweep-backend=ray do not go together*")


def test_ray_collect_only_needs_no_cluster(sweep_pytester: SweepPytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")  # nothing there: collection must not connect
    rc = write_toy(sweep_pytester.pytester, "CONFIG_TOY_Q=1|2\n")
    result = sweep_pytester.run(f"--range-config={rc}", RAY, "--collect-only", "-q")
    assert result.ret == 0 and "2 tests collected" in result.stdout.str()


@pytest.mark.parametrize("what", ["rungs", "study"])
def test_a_damaged_store_of_a_resumed_ray_sweep_is_one_usage_line_before_connecting(
    sweep_pytester: SweepPytester, monkeypatch: pytest.MonkeyPatch, what: str
) -> None:
    """On Ray the rung store and the study are opened by an actor on the controller's node; their
    files in the sweep folder are still checked by the controller first, before Ray is reached
    (nothing answers at RAY_ADDRESS: connecting would be the other usage line).  In subprocesses:
    Optuna is imported there."""
    sp = sweep_pytester
    rc = write_toy(sp.pytester, "CONFIG_NUM_EPOCHS=3\nCONFIG_TOY_Q=1|2|3|4|5|6\n")
    uses = ["--sweep-scheduler=asha"] if what == "rungs" else ["--sweep-search=random", "--sweep-trials=2"]
    sp.run_subprocess(f"--range-config={rc}", *uses).assert_outcomes(passed=2 if what == "study" else 6)
    (folder,) = sorted((sp.path / "test_matrix_results").glob("sweep_*"))
    damaged = folder / ("rungs.sqlite" if what == "rungs" else "search_study.journal")
    for extra in folder.glob("rungs.sqlite-*"):
        extra.unlink()
    damaged.write_bytes(b"{this is not a store\n" * 50)
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")
    result = sp.run_subprocess(f"--range-config={rc}", RAY, *uses, f"--sweep-resume={folder}")
    expected = (
        f"ERROR: --sweep-scheduler: {damaged} is not a usable rung store (*); remove it*"
        if what == "rungs"
        else f"ERROR: --sweep-resume={folder}: the study * cannot be read (*; start a new sweep*"
    )
    assert_usage_error(result, expected)


@pytest.mark.parametrize(
    ("text", "size"),
    [("100MiB", 100 * 2**20), ("2GiB", 2 * 2**30), ("1.5GB", 1_500_000_000), ("4096", 4096), (" 12 kib ", 12288),
     ("off", None), ("OFF", None), ("1b", 1)],
)  # fmt: skip
def test_ship_limit_sizes(text: str, size: int | None) -> None:
    from pytest_sweep.matrix.options import parse_size

    assert parse_size(text) == size


@pytest.mark.parametrize(
    "text", ["", "MiB", "1e9", "-1", "0", "0.4", "nan", "inf", "1 PiB", "5 MiBs", "1_000", "１MiB"]
)
def test_a_hostile_ship_limit_is_refused_with_the_fix(text: str) -> None:
    import argparse

    from pytest_sweep.matrix.options import parse_size

    with pytest.raises(argparse.ArgumentTypeError, match=r"is not a size|must be at least 1 byte"):
        parse_size(text)
