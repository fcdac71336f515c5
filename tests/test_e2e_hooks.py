"""The per-epoch hook reaches a real training loop: a plugin can stop a trial early."""

from __future__ import annotations

import json

from sweep_helpers import SweepPytester, SweepTools

STOPPER = """\
import pytest

@pytest.hookimpl
def pytest_sweep_epoch_ended(trial, metrics):
    # stop the lr-0.001 trial after its second epoch; let the other run to the end
    return trial["CONFIG_LEARNING_RATE"] == 0.001 and metrics["epoch"] >= 2
"""


def test_epoch_hook_stops_a_trial_early(sweep_pytester: SweepPytester, sweep_tools: SweepTools) -> None:
    pytester = sweep_pytester.pytester
    pytester.makeconftest(STOPPER)
    pytester.makefile("", range=sweep_tools.digits_config("CONFIG_LEARNING_RATE=0.001|0.003"))
    result = sweep_pytester.run_subprocess(
        "--range-config=range", "--sweep-epochs=4", "--sweep-output=out", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=2)
    sweep_dir = sweep_tools.only_sweep_dir(pytester.path / "out")
    records = sweep_tools.records(sweep_dir)
    assert records["config_001"]["epochs_run"] == 2
    assert records["config_002"]["epochs_run"] == 4
    metrics = json.loads((sweep_dir / records["config_001"]["trial_dir"] / "training_metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2]
