"""A plugin trainer with a known landscape and real epochs, no torch (the trackers' and reproduce's tests).

``test_acc`` after epoch ``e`` is ``100 - 10 |log10(lr) + 2| - 20 / e``: best at lr 0.01, every epoch
better than the last.  ``CONFIG_LEARNING_RATE=0.5`` fails its trial after its first epoch (a
failed run to log).  With ``LANDSCAPE_LIVE`` set, each epoch after the first reads the trial's own
TensorBoard event file and fails the trial unless the previous epoch is already in it (the
events are written live, by the process that trains).
"""

from __future__ import annotations

CONFTEST = """
import math
import os
import sys
from pathlib import Path

import pytest
from pytest_sweep.matrix import TrialFailed


def seen_epochs(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return [e.step for e in acc.Scalars("test_acc")] if "test_acc" in acc.Tags()["scalars"] else []


class Landscape:
    def run(self, trial, ctx):
        lr = trial["CONFIG_LEARNING_RATE"]
        acc = 0.0
        for epoch in range(1, trial["CONFIG_NUM_EPOCHS"] + 1):
            if os.environ.get("LANDSCAPE_LIVE") and epoch > 1:
                logdir = Path(os.environ["LANDSCAPE_LIVE"]) if os.environ["LANDSCAPE_LIVE"] != "1" else ctx.dir
                if epoch - 1 not in seen_epochs(logdir):
                    raise TrialFailed(f"epoch {epoch - 1} is not in the event file yet")
            acc = 100 - 10 * abs(math.log10(lr) + 2) - 20 / epoch
            ctx.log(f"epoch {epoch}: {acc:.2f}%")
            stop = ctx.epoch_ended({"epoch": epoch, "test_acc": acc, "train_loss": 1 / epoch, "lr": lr})
            if lr == 0.5:
                raise TrialFailed("diverged on purpose")
            if stop:
                break
        return {"test_acc": acc, "best_acc": acc, "final_sparsity": 0.0}


@pytest.hookimpl
def pytest_sweep_make_trainer(trial, config):
    return Landscape()


def pytest_sessionfinish(session):
    # which heavy libraries this process imported (the trackers must import theirs only when asked)
    who = getattr(session.config, "workerinput", {}).get("workerid", "main")
    mods = [m for m in ("mlflow", "tensorboard", "torch") if m in sys.modules]
    with open(Path(session.config.rootpath) / f"imported-{who}.txt", "w") as fh:
        fh.write(" ".join(mods))
"""

#: Three learning rates, three epochs (config_002, lr 0.01, is the best).
RANGE = "CONFIG_NUM_EPOCHS=3\nCONFIG_LEARNING_RATE=0.001|0.01|0.1\n"
#: The same plus a trial that fails after its first epoch (config_004).
RANGE_WITH_FAILURE = "CONFIG_NUM_EPOCHS=3\nCONFIG_LEARNING_RATE=0.001|0.01|0.1|0.5\n"


def expected_acc(lr: float, epoch: int) -> float:
    import math

    return 100 - 10 * abs(math.log10(lr) + 2) - 20 / epoch
