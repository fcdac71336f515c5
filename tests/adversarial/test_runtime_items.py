"""Issue 16, the runtime items (1, 2, 3, 6, 7, 8 in part, 11, 16, 17, 18, 20): each fault as the issue found it.

The sweeps are real: a torch-free plugin trainer (``runtime_toy.py``) in process where that is
safe, a subprocess where the fault is a real process death (``kill -9``, ``os._exit``), and the
built-in trainer where the fault is torch's own import.
"""

from __future__ import annotations

import fnmatch
import json
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from runtime_toy import by_name, only_sweep, summary, write_toy

from pytest_sweep.matrix import scheduling
from pytest_sweep.matrix.timeout import TrialTimeout, trial_timeout

from sweep_helpers import SweepPytester, assert_usage_error


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Fail the test instead of hanging it: ``SIGALRM`` raises after ``seconds``."""

    def expired(signum: int, frame: object) -> None:
        raise AssertionError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def glob(text: str) -> str:
    """``text`` as an fnmatch pattern where only ``*`` is special (``[0]`` stays literal)."""
    return text.replace("[", "[[]")


def _results(sp: SweepPytester) -> Path:
    return only_sweep(sp.path / "test_matrix_results")


# -- 1. a final summary is never deleted ------------------------------------------------------------
FAILING_REPORTER = """

@pytest.hookimpl(tryfirst=True)
def pytest_sweep_finished(config, sweep):
    if config.getoption("sweep_resume") is not None:
        raise OSError(28, "No space left on device")
"""


def test_item01_a_final_summary_survives_a_failing_reporter_after_a_resume(sweep_pytester: SweepPytester) -> None:
    sp = sweep_pytester
    rc = write_toy(sp.pytester, 'CONFIG_TOY_DO="ok"|"ok2"|"kill9"|"ok4"\n', extra_conftest=FAILING_REPORTER)
    died = sp.run_subprocess(f"--range-config={rc}", "--sweep-summary-interval=0")
    assert died.ret == -signal.SIGKILL
    folder = _results(sp)
    interim = summary(folder)
    assert [r["status"] for r in interim] == ["passed", "passed", "not_run", "not_run"]
    assert all(r["interim"] is True for r in interim)  # an interim summary says so in a field
    result = sp.run(f"--range-config={rc}", f"--sweep-resume={folder}", "-k", "config_004")
    result.assert_outcomes(passed=1, deselected=3)
    result.stdout.fnmatch_lines(["*conftest* could not write its files: OSError*No space left on device*"])
    final = summary(folder)  # still there: the final summary was written
    assert [r["status"] for r in final] == ["passed", "passed", "not_run", "passed"]
    assert all(r["interim"] is False for r in final)
    assert final[2]["error"] == "not run"  # the deselected trial is no longer "not finished when ..."
    assert (folder / "sweep_analysis.txt").is_file()
    assert "removed the interim summary" not in result.stdout.str()


def test_item01_an_interim_summary_is_still_removed_when_the_final_one_fails(sweep_pytester: SweepPytester) -> None:
    sp = sweep_pytester
    full_disk = """

from pytest_sweep.matrix import storage

_write = storage.write_json_atomic


def _no_space(*args, **kwargs):
    raise OSError(28, "No space left on device")


@pytest.hookimpl(tryfirst=True)
def pytest_sweep_finished(config, sweep):
    storage.write_json_atomic = _no_space  # the built-in reporter's final write fails


def pytest_unconfigure(config):
    storage.write_json_atomic = _write
"""
    rc = write_toy(sp.pytester, 'CONFIG_TOY_DO="ok"|"ok2"\n', extra_conftest=full_disk)
    from pytest_sweep.matrix import storage

    write = storage.write_json_atomic
    try:
        result = sp.run(f"--range-config={rc}", "--sweep-summary-interval=0")
    finally:
        storage.write_json_atomic = write
    result.stdout.fnmatch_lines(
        [
            "*could not write their files: OSError*",
            "*removed the interim summary files (sweep_summary.json, sweep_analysis.json, sweep_analysis.txt)*",
        ]
    )
    folder = _results(sp)
    for name in ("sweep_summary.json", "sweep_analysis.json", "sweep_analysis.txt"):
        assert not (folder / name).exists(), name  # interim, and the final write failed
    table = (folder / "sweep_summary.csv").read_text(encoding="utf-8")  # final: the CSV reporter wrote it
    assert "interim" in table.splitlines()[0] and ",true," not in table


ANALYSIS_JSON_FAILS = """

from pytest_sweep.matrix import storage

_write = storage.write_json_atomic


def _no_space_for_analysis(path, data):
    if str(path).endswith("sweep_analysis.json"):
        raise OSError(28, "No space left on device")
    return _write(path, data)


@pytest.hookimpl(tryfirst=True)
def pytest_sweep_finished(config, sweep):
    storage.write_json_atomic = _no_space_for_analysis  # only the final analysis JSON fails


def pytest_unconfigure(config):
    storage.write_json_atomic = _write
"""


def test_item01_an_interim_analysis_json_goes_and_the_final_files_stay(sweep_pytester: SweepPytester) -> None:
    """The interim ``sweep_analysis.json`` is known by its field (``"running": true``): when only
    its final write fails, it goes, and the final summary and analysis text written before it stay."""
    sp = sweep_pytester
    rc = write_toy(sp.pytester, 'CONFIG_TOY_DO="ok"|"ok2"\n', extra_conftest=ANALYSIS_JSON_FAILS)
    from pytest_sweep.matrix import storage

    write = storage.write_json_atomic
    try:
        result = sp.run(f"--range-config={rc}", "--sweep-summary-interval=0")
    finally:
        storage.write_json_atomic = write
    result.stdout.fnmatch_lines(
        ["*could not write its files: OSError*", "*removed the interim summary files (sweep_analysis.json)*"]
    )
    folder = _results(sp)
    assert not (folder / "sweep_analysis.json").exists()
    assert [r["interim"] for r in summary(folder)] == [False, False]
    assert "still running" not in (folder / "sweep_analysis.txt").read_text(encoding="utf-8")


def test_item01_the_interim_analysis_json_says_so_and_a_final_one_is_kept(sweep_pytester: SweepPytester) -> None:
    """A hard death leaves an analysis JSON with ``"running": true``; the resumed run's final one
    (``"running": false``) survives a reporter that fails after it."""
    sp = sweep_pytester
    rc = write_toy(sp.pytester, 'CONFIG_TOY_DO="ok"|"kill9"|"ok3"\n', extra_conftest=FAILING_REPORTER)
    died = sp.run_subprocess(f"--range-config={rc}", "--sweep-summary-interval=0")
    assert died.ret == -signal.SIGKILL
    folder = _results(sp)
    interim = json.loads((folder / "sweep_analysis.json").read_text(encoding="utf-8"))
    assert interim["running"] is True and interim["counts"]["passed"] == 1
    result = sp.run(f"--range-config={rc}", f"--sweep-resume={folder}", "-k", "config_003")
    result.stdout.fnmatch_lines(["*conftest* could not write its files: OSError*"])
    assert "removed the interim summary" not in result.stdout.str()
    final = json.loads((folder / "sweep_analysis.json").read_text(encoding="utf-8"))
    assert final["running"] is False and final["counts"]["passed"] == 2


# -- 2. a timeout never interrupts an import ---------------------------------------------------------
def _slow_module(folder: Path, name: str, seconds: float) -> None:
    (folder / f"{name}.py").write_text(
        f"import time\n_end = time.monotonic() + {seconds}\nwhile time.monotonic() < _end:\n    pass\nDONE = True\n",
        encoding="utf-8",
    )


def test_item02_the_alarm_waits_for_an_import_to_finish(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _slow_module(tmp_path, "slow_import_mod16", 0.6)
    monkeypatch.syspath_prepend(str(tmp_path))
    started = time.monotonic()
    with pytest.raises(TrialTimeout, match=r"timed out after 0.1 s"):
        with trial_timeout(0.1):
            import slow_import_mod16  # noqa: F401

            time.sleep(5)
    assert sys.modules["slow_import_mod16"].DONE is True  # the import ran to its end
    assert 0.55 < time.monotonic() - started < 2.0  # ... and the timeout came right after it
    sys.modules.pop("slow_import_mod16", None)


@pytest.mark.slow
def test_item02_a_timeout_landing_in_torchs_import_fails_the_trial_and_the_sweep_goes_on(
    sweep_pytester: SweepPytester,
) -> None:
    """The built-in trainer with a 0.2 s limit: the alarm is due while the first trial imports torch."""
    sp = sweep_pytester
    rc = sp.range_config(sp.digits_config("CONFIG_LEARNING_RATE=0.01|0.02"))
    result = sp.run_subprocess(f"--range-config={rc}", "--sweep-trial-timeout=0.2", "--sweep-progress=none")
    assert result.ret == 1, result.stdout.str() + result.stderr.str()
    result.assert_outcomes(failed=2)
    records = sp.records(_results(sp))
    assert [r["error"] for r in records.values()] == ["timed out after 0.2 s (--sweep-trial-timeout)"] * 2


# -- 3. a hard death leaves a summary and never exits 0 ------------------------------------------------
def test_item03_a_kill_9_in_the_first_seconds_leaves_the_summary_of_the_finished_trials(
    sweep_pytester: SweepPytester,
) -> None:
    sp = sweep_pytester
    rc = write_toy(sp.pytester, 'CONFIG_TOY_DO="ok"|"ok2"|"kill9"|"ok4"\n')
    died = sp.run_subprocess(f"--range-config={rc}")  # the default interval: 10 s
    assert died.ret == -signal.SIGKILL
    records = summary(_results(sp))  # written after the first result, then at most every 10 s
    assert records[0]["status"] == "passed" and records[0]["interim"] is True
    assert [r["config_file"] for r in records] == ["config_001", "config_002", "config_003", "config_004"]


def test_item03_a_trial_calling_os_exit_0_never_ends_a_serial_run_with_exit_code_0(
    sweep_pytester: SweepPytester,
) -> None:
    sp = sweep_pytester
    rc = write_toy(sp.pytester, 'CONFIG_TOY_DO="ok"|"exit:0"|"ok3"\n')
    result = sp.run_subprocess(f"--range-config={rc}")
    assert result.ret not in (0, 4), result.stdout.str()
    records = by_name(_results(sp))
    assert records["config_001"]["status"] == "passed"
    assert records["config_002"]["status"] == "failed"
    assert "os._exit(0)" in str(records["config_002"]["error"])
    assert all(r["interim"] is False for r in records.values())  # the summary was finished


# -- 6. rungs in closed form --------------------------------------------------------------------------
def test_item06_rungs_of_a_reduction_close_to_1_come_at_once() -> None:
    with deadline(5):
        found = scheduling.rungs(1, 1.000000000001, 10)
        assert found == sorted(set(found)) and all(1 <= r < 10 for r in found)
        assert scheduling.rungs(1, 3.0, 100) == [1, 3, 9, 27, 81]
        assert scheduling.rungs(2, 2.0, None, limit=5) == [2, 4, 8, 16, 32]


@pytest.mark.parametrize("value", ["1.000000000001", "1.0001", "1e300", "1e6"])
def test_item06_an_absurd_reduction_is_a_usage_error(sweep_pytester: SweepPytester, value: str) -> None:
    rc = write_toy(sweep_pytester.pytester, "CONFIG_TOY_Q=1|2\n")
    result = sweep_pytester.run(f"--range-config={rc}", "--sweep-scheduler=asha", f"--sweep-reduction={value}")
    assert_usage_error(result, f"*--sweep-reduction: {value} must be *")


# -- 7. timeouts below 0.1 s are usage errors; the machinery cannot livelock ------------------------------
@pytest.mark.parametrize("value", ["1e-6", "1e-5", "0.05", "0.0999"])
def test_item07_a_timeout_below_a_tenth_of_a_second_is_a_usage_error(sweep_pytester: SweepPytester, value: str) -> None:
    rc = write_toy(sweep_pytester.pytester, "CONFIG_TOY_Q=1|2\n")
    result = sweep_pytester.run(f"--range-config={rc}", f"--sweep-trial-timeout={value}")
    assert_usage_error(result, f"*--sweep-trial-timeout: {value} is below 0.1 s*")


def test_item07_a_timeout_of_a_tenth_of_a_second_works(sweep_pytester: SweepPytester) -> None:
    sp = sweep_pytester
    rc = write_toy(sp.pytester, 'CONFIG_TOY_DO="ok"|"spin:3"|"sleep:3"|"ok4"\n')
    started = time.monotonic()
    result = sp.run(f"--range-config={rc}", "--sweep-trial-timeout=0.1")
    result.assert_outcomes(passed=2, failed=2)
    assert time.monotonic() - started < 3
    errors = [r["error"] for r in summary(_results(sp))]
    assert errors[1:3] == ["timed out after 0.1 s (--sweep-trial-timeout)"] * 2


ALARM_STORM = """
import sys, time
from pytest_sweep.matrix.timeout import trial_timeout, TrialTimeout
timeouts = 0
for i in range(300):
    try:
        with trial_timeout(float(sys.argv[1])):
            sum(range(1000))
            end = time.monotonic() + 0.002
            while time.monotonic() < end:
                try:
                    sum(range(100))
                except Exception:
                    pass
    except TrialTimeout:
        timeouts += 1
print("done", timeouts)
"""


@pytest.mark.parametrize("seconds", ["1e-5", "1e-6", "0"])
def test_item07_tiny_alarms_neither_kill_nor_livelock_the_process(tmp_path: Path, seconds: str) -> None:
    """Called directly (the option refuses them): no "Alarm clock" death (rc 142), no endless spin."""
    script = tmp_path / "storm.py"
    script.write_text(ALARM_STORM, encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, str(script), seconds], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("done")


def test_item07_sigterm_ends_a_block_whose_alarms_are_swallowed(tmp_path: Path) -> None:
    script = tmp_path / "swallow.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys, time
            from pytest_sweep.matrix.timeout import trial_timeout
            import signal
            def term(signum, frame):
                raise KeyboardInterrupt
            signal.signal(signal.SIGTERM, term)
            print("ready", flush=True)
            try:
                while True:  # contexts that swallow every alarm, one after another
                    try:
                        with trial_timeout(1e-6):
                            while True:
                                try:
                                    time.sleep(0.001)
                                except Exception:
                                    pass
                    except Exception:
                        pass
            except KeyboardInterrupt:
                print("terminated", flush=True)
            """
        ),
        encoding="utf-8",
    )
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError("SIGTERM was ignored") from None
    assert out.strip() == "terminated" and proc.returncode == 0


# -- 8. resume: malformed records; Ray addresses -------------------------------------------------------------
def _finished_sweep(sp: SweepPytester, grid: str = 'CONFIG_TOY_DO="ok"|"ok2"\n') -> tuple[Path, Path]:
    rc = write_toy(sp.pytester, grid)
    sp.run(f"--range-config={rc}").assert_outcomes(passed=len(grid.split("|")))
    return rc, _results(sp)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("config", ["CONFIG_TOY_DO", "ok"], "*record 1 (config_001): 'config' is a list, not an object*"),
        ("config", "ok", "*record 1 (config_001): 'config' is a string, not an object*"),
        ("swept", 3, "*record 1 (config_001): 'swept' is a number, not a list of config keys*"),
        ("swept", [1], "*record 1 (config_001): 'swept' is not a list of config keys*"),
    ],
)
def test_item08_a_resumed_summary_with_a_malformed_record_is_one_usage_line(
    sweep_pytester: SweepPytester, field: str, value: object, message: str
) -> None:
    rc, folder = _finished_sweep(sweep_pytester)
    records = summary(folder)
    records[0][field] = value
    (folder / "sweep_summary.json").write_text(json.dumps(records), encoding="utf-8")
    result = sweep_pytester.run(f"--range-config={rc}", f"--sweep-resume={folder}")
    assert_usage_error(result, f"ERROR: --sweep-resume={folder}: {folder / 'sweep_summary.json'}: {message}")


@pytest.mark.parametrize("address", ["http://x", "host:abc", "[::1]:6379x", "host:0", "host:70000", ":6379", "a b:1"])
def test_item08_a_malformed_ray_address_is_a_usage_error_before_ray_starts(
    sweep_pytester: SweepPytester, address: str
) -> None:
    rc = write_toy(sweep_pytester.pytester, "CONFIG_TOY_Q=1|2\n")
    result = sweep_pytester.run(f"--range-config={rc}", "--sweep-backend=ray", f"--sweep-ray-address={address}")
    assert_usage_error(result, f"ERROR: --sweep-ray-address={glob(address)}: *")
    assert "ray" not in sys.modules or "ray.init" not in result.stdout.str()


# -- 11. malformed history, non-JSON values --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("do", "message"),
    [
        ("history:str", "the trainer conftest.ToyTrainer returned 'history' as str 'abc'; it must be a list of per-epoch dicts"),
        ("history:none", "the trainer conftest.ToyTrainer returned 'history' as None; it must be a list of per-epoch dicts"),
        ("history:ints", "the trainer conftest.ToyTrainer returned 'history' with int 1 at [0]; it must be a list of per-epoch dicts"),
        ("history:dict", "the trainer conftest.ToyTrainer returned 'history' as dict {'a': 1}; it must be a list of per-epoch dicts"),
        ("history:keys", "the trainer conftest.ToyTrainer returned 'history' with a key 1 at [0]; the keys must be strings"),
        ("history:obj", "the trainer conftest.ToyTrainer returned 'history' with object at [0]['loss']; give numbers, strings, lists or dicts"),
        ("object:test_acc", "the trainer conftest.ToyTrainer returned 'test_acc' as object *, not a number"),
        ("object:device", "the trainer conftest.ToyTrainer returned 'device' as object *; give a string or null"),
        ("set", "the trainer conftest.ToyTrainer returned 'device' as set *; give a string or null"),
        ("list", "the trainer conftest.ToyTrainer returned a list from run(), not a dict of metrics"),
    ],
)  # fmt: skip
def test_item11_a_malformed_return_value_fails_in_a_sentence_naming_the_trainer_and_the_field(
    sweep_pytester: SweepPytester, do: str, message: str
) -> None:
    sp = sweep_pytester
    rc = write_toy(sp.pytester, f'CONFIG_TOY_DO="{do}"|"ok"\n')
    result = sp.run(f"--range-config={rc}")
    result.assert_outcomes(passed=1, failed=1)
    records = summary(_results(sp))
    error = str(records[0]["error"])
    assert not error.startswith("call failed"), error
    assert fnmatch.fnmatchcase(error, glob(message)), error
    result.stdout.fnmatch_lines([f"*config_001: {glob(message)}*"])
    metrics = json.loads(next(_results(sp).glob("config_001*/training_metrics.json")).read_text(encoding="utf-8"))
    assert metrics["status"] == "failed" and metrics["error"] == error


# -- 16. a run() without its metric ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("do", "message"),
    [
        ("none", "the trainer conftest.ToyTrainer returned None from run(); return a dict of metrics with test_acc"),
        ("empty", "the trainer conftest.ToyTrainer returned no test_acc; return a dict of metrics with test_acc"),
        ("nometric", "the trainer conftest.ToyTrainer returned no test_acc; return a dict of metrics with test_acc"),
    ],
)
def test_item16_a_trial_without_its_metric_fails_naming_the_trainer(
    sweep_pytester: SweepPytester, do: str, message: str
) -> None:
    sp = sweep_pytester
    rc = write_toy(sp.pytester, f'CONFIG_TOY_DO="{do}"|"ok"\n')
    result = sp.run(f"--range-config={rc}")
    assert result.ret == 1
    result.assert_outcomes(passed=1, failed=1)
    assert summary(_results(sp))[0]["error"] == message


# -- 17. a NaN metric at a rung -----------------------------------------------------------------------------------
@pytest.mark.parametrize("scheduler", ["asha", "median"])
def test_item17_a_nan_metric_at_a_rung_fails_that_trial_alone(sweep_pytester: SweepPytester, scheduler: str) -> None:
    sp = sweep_pytester
    rc = write_toy(sp.pytester, 'CONFIG_NUM_EPOCHS=4\nCONFIG_TOY_DO="ok"|"nan_epoch:1"|"ok3"|"ok4"\n')
    result = sp.run(f"--range-config={rc}", f"--sweep-scheduler={scheduler}", "--sweep-startup-trials=0")
    result.assert_outcomes(passed=3, failed=1)
    records = summary(_results(sp))
    assert records[1]["error"] == (
        "test_acc is NaN at epoch 1 (the trainer's epoch metrics); "
        f"the {scheduler} scheduler cannot compare it with the other trials"
    )
    assert "IntegrityError" not in result.stdout.str()


# -- 18. a corrupt rung store on resume ------------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["garbage", "directory", "empty-table", "wrong-table", "link"])
def test_item18_a_damaged_rung_store_is_one_usage_line_at_start_up(sweep_pytester: SweepPytester, damage: str) -> None:
    sp = sweep_pytester
    rc = write_toy(sp.pytester, 'CONFIG_NUM_EPOCHS=3\nCONFIG_TOY_DO="ok"|"ok2"|"ok3"\n')
    sp.run(f"--range-config={rc}", "--sweep-scheduler=asha", "-k", "config_001").assert_outcomes(passed=1, deselected=2)
    folder = _results(sp)
    store = folder / "rungs.sqlite"
    for extra in folder.glob("rungs.sqlite-*"):
        extra.unlink()
    store.unlink()
    outside = sp.path / "elsewhere.sqlite"
    if damage == "garbage":
        store.write_bytes(b"this is not a database" * 100)
    elif damage == "link":  # a usable store, but outside the sweep folder: never written through the link
        sqlite3.connect(outside).close()
        store.symlink_to(outside)
    elif damage == "directory":
        store.mkdir()
    else:
        db = sqlite3.connect(store)
        db.execute("CREATE TABLE results (x)" if damage == "wrong-table" else "CREATE TABLE other (x)")
        if damage == "empty-table":
            db.execute("CREATE TABLE results (kind TEXT)")
        db.commit()
        db.close()
    result = sp.run(f"--range-config={rc}", "--sweep-scheduler=asha", f"--sweep-resume={folder}")
    assert_usage_error(result, f"ERROR: --sweep-scheduler: {store} is not a usable rung store (*); remove it*")
    if damage == "link":
        assert outside.stat().st_size == 0  # not made a rung store
        assert not list(sp.path.glob("elsewhere.sqlite-*"))


# -- 20. resume keeps no duplicate; a record names the trainer that ran it ----------------------------------------------
def test_item20_a_duplicated_record_is_not_kept_on_resume(sweep_pytester: SweepPytester) -> None:
    sp = sweep_pytester
    rc, folder = _finished_sweep(sp, 'CONFIG_TOY_DO="ok"|"ok2"|"ok3"\n')
    records = summary(folder)
    (folder / "sweep_summary.json").write_text(json.dumps([*records, records[1]]), encoding="utf-8")
    sp.run(f"--range-config={rc}", f"--sweep-resume={folder}", "-k", "config_003").assert_outcomes(
        passed=1, deselected=2
    )
    names = [r["config_file"] for r in summary(folder)]
    assert names == ["config_001", "config_002", "config_003"]


def test_item20_a_third_party_trainer_is_named_in_its_records(sweep_pytester: SweepPytester) -> None:
    sp = sweep_pytester
    _, folder = _finished_sweep(sp)
    trainers = {r["trainer"] for r in summary(folder)}
    assert trainers == {"conftest.ToyTrainer"}, trainers
    metrics = json.loads(next(folder.glob("config_001*/training_metrics.json")).read_text(encoding="utf-8"))
    assert metrics["trainer"] == "conftest.ToyTrainer"
    assert "resnet18" not in (folder / "sweep_analysis.txt").read_text(encoding="utf-8")


def test_item20_the_built_in_trainer_describes_only_the_trials_it_trains(sweep_pytester: SweepPytester) -> None:
    """A plugin that trains some trials (learning rate 0.02) and leaves the rest to the built-in trainer."""
    sp = sweep_pytester
    sp.pytester.makeconftest(
        "import pytest\n\n"
        "class Mine:\n"
        "    def run(self, trial, ctx):\n"
        "        return {'test_acc': 1.0}\n\n"
        "@pytest.hookimpl\n"
        "def pytest_sweep_make_trainer(trial, config):\n"
        "    return Mine() if trial['CONFIG_LEARNING_RATE'] == 0.02 else None\n"
    )
    rc = sp.range_config(sp.digits_config("CONFIG_LEARNING_RATE=0.01|0.02"))
    items = sp.sweep_items(f"--range-config={rc}", "--sweep-minutes-per-trial=1")
    described = [item.config.hook.pytest_sweep_describe_trial(trial=item.trial, config=item.config) for item in items]
    assert described == ["lenet5/digits/adamw/none e2 b64", None]
