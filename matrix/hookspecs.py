"""Every hook pytest-sweep defines.

The hooks are added to pytest's own plugin manager (``pytest_addhooks`` of the entry point
``pytest_sweep.entry``, in every run, with or without a sweep), so any pytest plugin implements
them: a ``conftest.py``, a module given with ``-p``, or a package registered through a
``pytest11`` entry point; pluggy checks each implementation against its spec, also one
registered before this module was added.  This module stays cheap to import (pluggy only;
its type names are imported for type checkers alone).  The built-in plugins in
``pytest_sweep.plugins`` use exactly these hooks, and their factory implementations are
``trylast`` so that yours win.  The objects the factories return are described by the
protocols in :mod:`pytest_sweep.matrix.contracts`.  The core calls every hook through pluggy,
so a wrapper implementation (``wrapper=True`` or ``hookwrapper=True``) of any of them runs.

The built-in trainer's own factories (``pytest_sweep_make_dataset``, ``_make_model``,
``_make_optimizer``, ``_make_pruner``) are not the core's: their specs are in
:mod:`pytest_sweep.plugins.trainer_hookspecs`, added by the entry point beside these.

All hook names start with ``pytest_sweep_`` (pytest only takes hooks named ``pytest_*``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from pathlib import Path

    import pytest

    from pytest_sweep.matrix.contracts import CheckpointCodec, Scheduler, Trainer
    from pytest_sweep.matrix.rangeconfig import RangeConfig, Rewritten
    from pytest_sweep.matrix.records import SweepResult
    from pytest_sweep.matrix.symbols import Symbol, SymbolTable
    from pytest_sweep.matrix.trial import Stage, Stop, Trial

hookspec = pluggy.HookspecMarker("pytest")


@hookspec
def pytest_sweep_declare_symbols() -> list[Symbol]:
    """Declare the config symbols this plugin consumes.

    Called once per run on every process.  A ``CONFIG_*`` key that no plugin
    declares is a usage error naming ``file:line``.

    :return: a list of :class:`~pytest_sweep.matrix.symbols.Symbol`.

    A wrapper gets the lists of the plugins inside it and may change them; a symbol it adds is
    tagged with the wrapper's plugin name.

    Example::

        def pytest_sweep_declare_symbols():
            return [Symbol("CONFIG_DROPOUT", "float", 0.0, "Dropout before the classifier", low=0, high=1)]
    """


@hookspec(firstresult=True)
def pytest_sweep_rewrite_range_config(rc: RangeConfig, symbols: SymbolTable) -> Rewritten | None:
    """Rewrite a parsed range file before it is expanded; ``None`` leaves it as it is.

    Called once per range file (``--range-config``) on every process, after every key was
    checked against the declared symbols and ``# CONFIG_X is not set`` was resolved, before
    the combinations are made.  A plugin that reads another config language written with
    ``CONFIG_*`` keys (the built-in ``sweep.reference`` reads the reference's defconfigs) turns
    its symbols into ordinary parameters here, and may list explicit runs
    (:class:`~pytest_sweep.matrix.rangeconfig.Run`) where they are not a Cartesian product.
    Every key of the returned config must be a declared symbol.  Raise
    :class:`~pytest_sweep.matrix.errors.RangeConfigError` (with the file and line) for a
    mistake: it becomes a usage error.

    :param rc: the parsed file: parameters in file order, each with its line.
    :param symbols: every declared symbol (``symbols[key].type``, ``.default``, ``.plugin``).

    ``firstresult``: the first plugin that returns a
    :class:`~pytest_sweep.matrix.rangeconfig.Rewritten` rewrites the file; the others are not
    asked.  Its ``notes`` are printed once for the file after collection.

    Example (a legacy alias, declared as a symbol of its own so that the file passes the check)::

        from dataclasses import replace
        from pytest_sweep.matrix.rangeconfig import Rewritten


        def pytest_sweep_rewrite_range_config(rc, symbols):
            if rc.param("CONFIG_EPOCHS") is None:
                return None
            params = tuple(replace(p, key="CONFIG_NUM_EPOCHS") if p.key == "CONFIG_EPOCHS" else p for p in rc.params)
            return Rewritten(replace(rc, params=params), notes=("CONFIG_EPOCHS read as CONFIG_NUM_EPOCHS",))
    """


@hookspec
def pytest_sweep_validate_trial(trial: Trial) -> str | None:
    """Check one combination at collection time; return a reason to skip it.

    Every implementation is called; each non-``None`` reason is shown on the
    skipped item.  Use this for combinations that cannot work (state pruning
    without AdamWPrune, a pruning warmup longer than the run).  Do not import
    heavy libraries here: it runs for every combination during collection.

    :param trial: the combination, with typed values (``trial.dir`` is unset).

    Example::

        def pytest_sweep_validate_trial(trial):
            if trial["CONFIG_BATCH_SIZE"] > 4096:
                return "batch size above 4096 does not fit in memory"
    """


@hookspec(firstresult=True)
def pytest_sweep_make_trainer(trial: Trial, config: pytest.Config) -> Trainer | None:
    """Return the trainer for a trial (:class:`~pytest_sweep.matrix.contracts.Trainer`).

    :param trial: the trial to train, with typed values.
    :param config: the pytest config of the process that runs it.

    ``firstresult``: the first non-``None`` answer wins; the built-in trainer is
    ``trylast``, so a plugin returning its own trainer replaces it.  Its
    ``run(trial, ctx)`` returns the metrics (keys of
    :data:`pytest_sweep.matrix.records.METRIC_KEYS`) and raises to fail the trial;
    ``ctx`` is the :class:`~pytest_sweep.matrix.trial.TrialContext` (folder, log,
    epoch hook).

    Example::

        class MyTrainer:
            def run(self, trial, ctx):
                for epoch in range(1, trial.get("CONFIG_NUM_EPOCHS", 10) + 1):
                    acc = train_one_epoch()
                    ctx.log(f"epoch {epoch}: {acc:.2f}%")
                    if ctx.epoch_ended({"epoch": epoch, "test_acc": acc}):
                        break
                return {"test_acc": acc}


        @pytest.hookimpl
        def pytest_sweep_make_trainer(trial, config):
            if trial["CONFIG_MODEL"] == "mymodel":
                return MyTrainer()
    """


@hookspec(firstresult=True)
def pytest_sweep_make_scheduler(config: pytest.Config, sweep_dir: Path) -> Scheduler | None:
    """Return the early-stopping scheduler of the sweep (:class:`~pytest_sweep.matrix.contracts.Scheduler`).

    Called once per process of an active sweep, at session start (on the xdist controller too,
    where the answer only checks the options).  The scheduler is asked after every epoch of every
    trial through ``pytest_sweep_epoch_ended``, so every trainer that reports its epochs gets
    early stopping.

    :param config: the process's pytest config
        (``pytest_sweep.matrix.options.sweep_options(config).scheduler`` is the name asked for,
        from ``--sweep-scheduler`` or the ini value: ``none``, ``asha``, ``median`` or a name of yours).
    :param sweep_dir: the sweep folder (the built-in schedulers keep their rung store there).  On
        a Ray actor whose node does not see the controller's folder (or with
        ``--sweep-ray-ship-files``) it is a folder of that node's own: a store shared by the trials
        must not be opened there; ``pytest_sweep.matrix.ray.state.worker_state(config)`` is then the
        handle of the actor holding the sweep's rung store (``RayRungStore(handle)`` reaches it).

    ``firstresult``: the first non-``None`` answer wins; the built-in implementation (``asha``,
    ``median``, ``none``) is ``trylast`` and raises a usage error for a name nobody provides.
    The core calls this hook (the built-in plugin ``sweep.schedulers`` only answers it), so a
    scheduler of yours still works with ``-p no:sweep.schedulers``; a name other than ``none``
    that no implementation answers is then a usage error.

    Example::

        class StopBelow:
            def epoch_ended(self, trial, metrics):
                if metrics["epoch"] >= 2 and metrics["test_acc"] < 20:
                    return Stop(metrics["epoch"], f"stopped at epoch {metrics['epoch']}: below 20%")
                return None

            def trial_finished(self, trial, record):
                pass


        from pytest_sweep.matrix.options import sweep_options


        def pytest_sweep_make_scheduler(config, sweep_dir):
            if sweep_options(config).scheduler == "below20":
                return StopBelow()
    """


@hookspec(firstresult=True)
def pytest_sweep_trial_stages(trial: Trial, config: pytest.Config) -> list[int] | None:
    """Split a trial into stage items: the epochs where its stages end (the last: its final epoch), or None.

    Called at collection for every trial that is not skipped, on every process (keep it cheap:
    no torch).  With ``[1, 3, 9, 27]``, a 27-epoch trial is collected as four items,
    ``config_001[...-to_epoch1]``, ``-to_epoch3``, ``-to_epoch9`` and ``-to_epoch27``; the first
    trains it to epoch 1 and pauses it there (checkpointed), each later one continues it from its
    checkpoint when ``pytest_sweep_promote`` promotes it.  The items run in waves: every trial's
    first stage, then every second stage, and so on (``--sweep-order`` orders the trials in each
    wave).

    ``firstresult``; the built-in implementation answers for ``--sweep-asha-mode=promotion``
    (the rungs of ``--sweep-scheduler=asha``) and is ``trylast``.

    :param trial: a collected trial, with typed values.
    :param config: the process's pytest config.
    """


@hookspec(firstresult=True)
def pytest_sweep_promote(trial: Trial, stage: Stage, metrics: dict[str, Any]) -> Stop | None:
    """A stage item is about to continue a trial paused at ``stage.after``: promote it or not.

    Called on the process that runs the stage item, before it trains.  Return None to promote
    (the item continues the trial from its checkpoint up to ``stage.until``), or a
    :class:`~pytest_sweep.matrix.trial.Stop` to end the trial at the rung for good (the item is
    skipped with its reason; the record says ``stopped``).  With no answer the trial is promoted.

    ``firstresult``; the built-in ASHA scheduler in promotion mode answers it.

    :param trial: the paused trial.
    :param stage: the stage about to run.
    :param metrics: the trial's epoch metrics at the rung (the last entry of its history).
    """


@hookspec
def pytest_sweep_checkpoint_codecs() -> list[CheckpointCodec]:
    """Serialisers for the states trainers save with ``ctx.save_checkpoint`` (:class:`~pytest_sweep.matrix.contracts.CheckpointCodec`).

    Called once per process that trains.  Every implementation's codecs are tried in hook order
    (``tryfirst`` first): the first whose ``accepts(state)`` says yes writes the payload, and its
    ``name`` in the file picks it again to read it.  Built in: ``torch`` (states holding torch
    tensors; ``torch.save``, read back with ``weights_only=True``, from the built-in trainer's
    plugin) and, always last, the core's ``plain`` (plain Python data, no torch).

    Example (NumPy arrays as lists)::

        class NumpyCodec:
            name = "numpy-json"

            def accepts(self, state):
                return None if isinstance(state, dict) and "weights" in state else "not mine"

            def dumps(self, state):
                return json.dumps({"weights": state["weights"].tolist()}).encode()

            def loads(self, data):
                return {"weights": numpy.array(json.loads(data)["weights"])}


        def pytest_sweep_checkpoint_codecs():
            return [NumpyCodec()]
    """


@hookspec
def pytest_sweep_trial_started(trial: Trial) -> None:
    """A trial is about to train (on the process that runs it).

    :param trial: the trial; ``trial.context`` holds its folder and log.

    Raising here fails the trial (its record says why), not the sweep.
    """


@hookspec
def pytest_sweep_epoch_ended(trial: Trial, metrics: dict[str, Any]) -> bool | None:
    """An epoch ended; return ``True`` to stop this trial early.

    :param trial: the running trial.
    :param metrics: ``epoch``, ``train_loss``, ``train_acc``, ``test_loss``,
        ``test_acc`` (%), ``sparsity`` (0..1), ``lr``, ``epoch_time``, ``images_per_s``.

    Every implementation is called; any ``True`` stops the trial after this epoch.  Its record
    says ``passed`` unless the plugin also leaves a :class:`~pytest_sweep.matrix.trial.Stop` in
    ``trial.stash[STOP_KEY]``: then it says ``stopped``, with the rung and the reason (the
    schedulers of ``--sweep-scheduler`` answer this hook that way; see
    ``pytest_sweep_make_scheduler``).

    Example (stop a hopeless trial)::

        def pytest_sweep_epoch_ended(trial, metrics):
            if metrics["epoch"] >= 5 and metrics["test_acc"] < 20:
                trial.stash[STOP_KEY] = Stop(metrics["epoch"], "stopped at epoch 5: below 20%")
                return True
            return None
    """


@hookspec
def pytest_sweep_trial_finished(trial: Trial, record: dict[str, Any]) -> None:
    """A trial finished (passed, failed or interrupted), on the process that ran it.

    :param trial: the trial.
    :param record: its summary row (see :mod:`pytest_sweep.matrix.records`).
    """


@hookspec
def pytest_sweep_finished(config: pytest.Config, sweep: SweepResult) -> None:
    """The whole sweep ended; reporters write their outputs.

    :param config: the controller's pytest config.
    :param sweep: every record, in collection order, and the sweep folder (``sweep.dir``).

    Called on the controller only (never on an xdist worker), also after an
    interrupt, with every record known so far.  ``sweep.dir`` is the sweep folder.

    Each implementation runs on its own: one that raises (a full disk, a read-only folder) is
    named in one red line (``sweep: NAME could not write its files: ...``) and the others still
    write theirs.  A wrapper runs once around them all and sees the call succeed (its result is
    the implementations' non-``None`` answers); if the wrapper itself raises, it is named so.

    ``pytest-sweep report DIR`` calls this hook too, on the records of the folder's
    ``sweep_summary.json`` (``sweep.from_summary`` is true; no session ran, ``pytest_configure``
    was not called): the built-in plugins and every installed ``pytest11`` plugin answer it.
    """


@hookspec
def pytest_sweep_analysis_sections(config: pytest.Config, sweep: SweepResult) -> str | None:
    r"""A section to append to ``sweep_analysis.txt``: its text, or ``None`` for none.

    Called on the controller whenever the analysis is written (at the end, and in interim
    summaries, where ``sweep.running`` is true).  Every implementation is called; the sections
    follow the guide's layout in call order, each after a rule: use ``tryfirst``/``trylast`` to
    move yours.  The built-in importance section is ``tryfirst``, the plots section ``trylast``.

    :param sweep: the sweep as the reporters get it.

    Example::

        def pytest_sweep_analysis_sections(config, sweep):
            return f"MY SECTION:\n{len(sweep.records)} trials"
    """


@hookspec
def pytest_sweep_progress(config: pytest.Config, sweep: SweepResult) -> None:
    """The sweep so far, while it runs; reporters may write interim outputs.

    :param config: the controller's pytest config.
    :param sweep: the records so far (``sweep.running`` is true).

    Called on the controller only, after a trial's result arrives: at once for the first result
    (a process killed seconds later still leaves a summary), then at most every
    ``--sweep-summary-interval`` seconds (and, unless that is 0, never more often than ten times
    the previous call's duration, so a huge sweep does not spend its time rewriting files).
    ``sweep.running`` is true and every record written says ``"interim": true``; trials that have
    not finished are ``not_run`` with the error "not finished when this summary was written".  The
    built-in reporter rewrites ``sweep_summary.json`` and ``sweep_analysis.txt``, so a sweep whose
    process dies hard still leaves a summary of the trials that finished.
    ``pytest_sweep_finished`` follows at the end as usual.
    """


@hookspec(firstresult=True)
def pytest_sweep_describe_trial(trial: Trial, config: pytest.Config) -> str | None:
    """A short name for what trains a trial, e.g. ``resnet18/cifar10/adamwprune e100 b128``.

    :param trial: a collected trial.
    :param config: the pytest config (new in issue 16; an implementation may leave it out).

    ``firstresult``.  Stored as the record's ``trainer``; the runtime estimate of ``--collect-only``
    uses the mean time of earlier trials with the same description.  Cheap: no torch.  The built-in
    trainer (``trylast``) describes only the trials it trains; a trial with no description gets the
    class of the trainer that ran it (``package.module.Class``) once it ran.
    """


@hookspec(firstresult=True)
def pytest_sweep_estimate_trial(trial: Trial, config: pytest.Config) -> float | None:
    """Estimate how many seconds one trial will take, before the sweep starts.

    :param trial: a collected trial, standing for every trial with the same description
        (``pytest_sweep_describe_trial``): it is asked once per distinct description.
    :param config: the controller's pytest config.

    ``firstresult``.  Asked only when neither ``--sweep-minutes-per-trial``, pytest's cache of earlier
    trials on this machine nor earlier sweep folders give a figure.  Answer cheaply: collection
    waits for it.  The built-in trainer (``trylast``) answers only with ``--sweep-estimate``: it
    times a few real optimizer steps of the trial's model and batch on the trial's device in a
    child process (seconds; this process never imports torch) and scales them to the whole run.
    Return ``None`` when you cannot tell (the estimate then follows the first passed trial);
    raising is treated the same way.  The answer is shown as an interval around it.

    Example::

        @pytest.hookimpl
        def pytest_sweep_estimate_trial(trial, config):
            if trial["CONFIG_MODEL"] == "mymodel":
                return 12.0 * trial["CONFIG_NUM_EPOCHS"]
    """
