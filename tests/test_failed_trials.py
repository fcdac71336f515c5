"""A failed trial fails its item in one line and gives its memory back (issue 13, items 3 and 4).

One real sweep in a subprocess: LeNet-5 on the digits with the built-in trainer, where a
``conftest.py`` plants one fault per trial through the factory hooks: a loss that turns NaN, the
CUDA allocator's out-of-memory error, a trainer whose broad ``except`` swallows the timeout alarm,
one that re-raises the alarm as its own error (as torch.compile does).  The recorder looks at each
trial's model through a weak reference when ``pytest_sweep_trial_finished`` has run (the
built-in clean-up, ``trylast`` after it): a failed trial's model must be gone by then, before the
next trial starts, and not when pytest drops the exception later.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

FAULTS = r"""
import json
import time
import weakref
from pathlib import Path

import pytest
import torch

from pytest_sweep.matrix import Symbol

MODELS = {}
ALIVE = {}


def pytest_sweep_declare_symbols():
    return [Symbol("CONFIG_FAULT", "str", "none", "A fault planted in the trial",
                   choices=("none", "nan", "oom", "swallow", "wrap"))]


class Faulty(torch.nn.Module):
    def __init__(self, model, fault):
        super().__init__()
        self.model, self.fault, self.calls = model, fault, 0

    def forward(self, x):
        out = self.model(x)
        if self.training:
            self.calls += 1
            if self.fault == "oom" and self.calls == 2:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
            if self.fault == "nan" and self.calls >= 3:
                return out * float("nan")
        return out


@pytest.hookimpl(wrapper=True)
def pytest_sweep_make_model(trial, data):
    model = Faulty((yield), trial["CONFIG_FAULT"])
    MODELS[trial.name] = weakref.ref(model)
    return model


def spin(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


class Swallows:
    def run(self, trial, ctx):
        try:
            spin(6)
        except Exception:  # a library's broad except
            pass
        spin(6)
        return {"test_acc": 1.0}


class Wraps:
    def run(self, trial, ctx):
        try:
            spin(6)
        except Exception as exc:  # as torch.compile does: its own lines added to the error it caught
            exc.args = (f"{exc.args[0]}\n\nfrom user code:\n\nSet TORCHDYNAMO_VERBOSE=1 ...",)
            raise RuntimeError("InductorError: compilation failed") from exc
        return {"test_acc": 1.0}


@pytest.hookimpl
def pytest_sweep_make_trainer(trial, config):
    return {"swallow": Swallows, "wrap": Wraps}.get(trial["CONFIG_FAULT"], lambda: None)()


@pytest.hookimpl(trylast=True)
def pytest_sweep_trial_finished(trial, record):
    ref = MODELS.get(trial.name)
    ALIVE[trial.name] = None if ref is None else ref() is not None
    Path("alive.json").write_text(json.dumps(ALIVE))
"""


@pytest.fixture(scope="module")
def faulty_sweep(tmp_path_factory: pytest.TempPathFactory, sweep_tools: Any) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("faults")
    (work / "conftest.py").write_text(FAULTS, encoding="utf-8")
    (work / "range").write_text(
        sweep_tools.digits_config('CONFIG_FAULT="none"|"nan"|"oom"|"swallow"|"wrap"'), encoding="utf-8"
    )
    result = sweep_tools.run_process(
        work, "--range-config=range", "--sweep-output=out", "--sweep-trial-timeout=4", "-p", "no:cacheprovider"
    )
    records = {r["config"]["CONFIG_FAULT"]: r for r in sweep_tools.summary(sweep_tools.only_sweep_dir(work / "out"))}
    alive = json.loads((work / "alive.json").read_text())
    names = {fault: r["config_file"] for fault, r in records.items()}
    return {"result": result, "records": records, "alive": {f: alive[n] for f, n in names.items()}, "names": names}


def test_each_fault_fails_only_its_item_in_one_line(faulty_sweep: dict[str, Any]) -> None:
    result: pytest.RunResult = faulty_sweep["result"]
    result.assert_outcomes(passed=1, failed=4)
    records = faulty_sweep["records"]
    assert records["none"]["status"] == "passed"
    expected = {
        "nan": "loss became nan/inf at epoch 1, step 3; lower the learning rate",
        "oom": "CPU out of memory at epoch 1, batch 2 (batch size 64); lower CONFIG_BATCH_SIZE",
        "swallow": "timed out after 4 s (--sweep-trial-timeout)",
        "wrap": "timed out after 4 s (--sweep-trial-timeout)",
    }
    for fault, error in expected.items():
        assert records[fault]["error"] == error, fault
        result.stdout.fnmatch_lines([f"*{faulty_sweep['names'][fault]}: {error} (log: *output.log)"])
    assert records["swallow"]["training_time"] < 8  # not the 12 s of work it swallowed the alarm in
    assert "Traceback" not in result.stdout.str() and "TORCHDYNAMO_VERBOSE" not in result.stdout.str()


def test_a_failed_trials_model_is_freed_before_the_next_trial(faulty_sweep: dict[str, Any]) -> None:
    alive = faulty_sweep["alive"]
    assert alive["nan"] is False and alive["oom"] is False, alive
    assert alive["swallow"] is None and alive["wrap"] is None  # their trainers build no model
