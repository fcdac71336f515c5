"""Compatibility with the reference's defconfigs: ``pytest --range-config=<its defconfig>`` runs its runs.

A pytest plugin (``sweep.reference``).  It declares every symbol of the reference's
ResNet-18 and LeNet-5 defconfigs that pytest-sweep does not have
(:mod:`~pytest_sweep.plugins.reference_symbols`) and rewrites a range file that sets any of them
(``pytest_sweep_rewrite_range_config``), before expansion:

- aliases become our symbols; the run selection (``MULTIPLE`` / ``SINGLE`` / ``NONE`` modes and
  their older spellings, :mod:`~pytest_sweep.plugins.reference_matrix`) becomes the runs, each an
  ordinary combination of ``CONFIG_MODEL``, ``CONFIG_OPTIMIZER``, ``CONFIG_PRUNING_METHOD``,
  ``CONFIG_TARGET_SPARSITY`` and ``CONFIG_ADAMWPRUNE_VARIANT`` named like the reference's run
  (``resnet18_sgd_movement_70``), crossed with whatever else the file sweeps;
- ``CONFIG_LEARNING_RATE`` means what it means to the reference (``CONFIG_REFERENCE_LR=y``:
  x0.001 for the Adam family on ResNet-18), so a pasted defconfig never trains Adam at 0.1;
- one note per file lists the no-effect symbols, the settings that are not implemented, and
  every place where pytest-sweep deliberately trains differently from the reference;
- ``CONFIG_REFERENCE_AS_PUBLISHED=y`` trains a ResNet-18 file as the reference's code did at
  cf07123, the commit behind its published table (``defconfigs/resnet18-published-table``).

Sweeping a symbol that has no effect, or that is not implemented, is a usage error: every trial
would train the same.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal, InvalidOperation

import pytest

from pytest_sweep.matrix import RangeConfigError, Symbol, SymbolTable
from pytest_sweep.matrix.rangeconfig import Param, RangeConfig, Rewritten, Run
from pytest_sweep.plugins.reference_matrix import Matrix, Reader, RefRun, read_matrix
from pytest_sweep.plugins.reference_symbols import (
    ALIASES,
    AS_PUBLISHED,
    BOOL_ALIASES,
    DATASET_ALIASES,
    NO_EFFECT,
    NOT_IMPLEMENTED,
    reference_symbols,
)
from pytest_sweep.trainers.names import DEFAULT_DATASET

#: Our symbols the runs set; the file's own values of them are read into the runs.
AXES = {
    "CONFIG_MODEL": "model",
    "CONFIG_OPTIMIZER": "optimizer",
    "CONFIG_PRUNING_METHOD": "method",
    "CONFIG_TARGET_SPARSITY": "sparsity",
    "CONFIG_ADAMWPRUNE_VARIANT": "variant",
}
_CONSUMED_PREFIXES = ("CONFIG_MODEL_SELECT_", "CONFIG_OPTIMIZER_SELECT_", "CONFIG_MODEL_MODE_SINGLE")
_SYMBOLS = reference_symbols()
_OWN = frozenset(s.name for s in _SYMBOLS)
#: What the reference's ResNet-18 script trained at cf07123 for every run (fixed settings).
_PUBLISHED = {
    "CONFIG_PRUNING_FREQUENCY": "100",
    "CONFIG_PRUNING_RAMP_END_STEP": "3000",
    "CONFIG_PRUNING_RAMP": "linear",
    "CONFIG_AMP": "n",
    "CONFIG_CHANNELS_LAST": "n",
    "CONFIG_ADAM_BETA1": "0.9",
    "CONFIG_ADAM_BETA2": "0.999",
}
#: ... and its weight decay per optimizer (the configured one was never forwarded).
_PUBLISHED_DECAY = {"sgd": "0.0005", "adam": "0.0", "adamw": "0.0005", "adamwadv": "0.0005", "adamwspam": "0.0005"}


@pytest.hookimpl
def pytest_sweep_declare_symbols() -> list[Symbol]:
    return list(_SYMBOLS)


@pytest.hookimpl(trylast=True)
def pytest_sweep_rewrite_range_config(rc: RangeConfig, symbols: SymbolTable) -> Rewritten | None:
    own = [p for p in rc.params if p.key in _OWN]
    if not own:
        return None  # a range file in our own language
    return _Defconfig(rc, own[0]).rewrite()


def _short(key: str) -> str:
    return key.removeprefix("CONFIG_")


def _same(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    """Equal values, numbers compared as numbers (``0.1`` and ``0.10``)."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        try:
            if Decimal(x) != Decimal(y):
                return False
        except InvalidOperation:
            if x != y:
                return False
    return True


class _Defconfig:
    """One reference defconfig being rewritten."""

    def __init__(self, rc: RangeConfig, first: Param) -> None:
        self.rc = rc
        self.path = rc.path
        self.first = first
        self.params: dict[str, Param] = {}  # ours, in file order
        self.origins: dict[str, Param] = {}  # the file's line behind each of them
        self.notes: list[str] = []

    def error(self, param: Param, message: str) -> RangeConfigError:
        return RangeConfigError(self.path, param.line, message)

    def rewrite(self) -> Rewritten:
        no_effect, not_implemented, selection, datasets = self._sort_params()
        reader = Reader(list(self.params.values()) + selection, self.path)
        matrix = read_matrix(reader)
        self._conflicts(matrix)
        self._datasets(datasets, matrix.models)
        runs = matrix.runs()
        published = self._published(runs)
        for key in [k for k in self.params if k in AXES or k.startswith(_CONSUMED_PREFIXES)]:
            del self.params[key]
        lines = {axis: self._axis_line(reader.used, axis) for axis in AXES}
        first = runs[0]
        for key, attr in AXES.items():
            self.params[key] = Param(key, (getattr(first, attr),), lines[key], "fixed", quoted=attr != "sparsity")
        self.params.setdefault("CONFIG_REFERENCE_LR", Param("CONFIG_REFERENCE_LR", ("y",), self.first.line, "fixed"))
        run_list = tuple(Run(r.label, self._run_values(r, published)) for r in runs)
        self._notes(matrix, runs, no_effect, not_implemented, published)
        config = replace(self.rc, params=tuple(self.params.values()), runs=run_list)
        return Rewritten(config, tuple(self.notes))

    # -- the file's symbols, by what they become ---------------------------------------------
    def _sort_params(self) -> tuple[list[Param], list[Param], list[Param], list[Param]]:
        no_effect: list[Param] = []
        not_implemented: list[Param] = []
        selection: list[Param] = []
        datasets: list[Param] = []
        for p in self.rc.params:
            name = _short(p.key)
            if name in NO_EFFECT or name in NOT_IMPLEMENTED:
                what = "has no effect in pytest-sweep" if name in NO_EFFECT else "is not implemented in pytest-sweep"
                if p.swept:
                    raise self.error(
                        p,
                        f"{p.key} {what}: sweeping it ({'|'.join(p.values)}) would train identical trials; give one value",
                    )
                (no_effect if name in NO_EFFECT else not_implemented).append(p)
            elif name in ALIASES:
                self._merge(replace(p, key=f"CONFIG_{ALIASES[name]}"), p)
            elif name in BOOL_ALIASES:
                ours, value = BOOL_ALIASES[name]
                if p.values[0].lower().startswith("y"):
                    self._merge(Param(f"CONFIG_{ours}", (value,), p.line, "fixed", quoted=True), p)
            elif name in DATASET_ALIASES:
                datasets.append(p)
            elif p.key in _OWN and name != AS_PUBLISHED:
                selection.append(p)
            elif name != AS_PUBLISHED:
                self._merge(p, p)
        return no_effect, not_implemented, selection, datasets

    def _merge(self, new: Param, origin: Param) -> None:
        """Add one of our parameters; the reference's name for one the file sets too must agree."""
        old = self.params.get(new.key)
        if old is None:
            self.params[new.key] = new
            self.origins[new.key] = origin
        elif not _same(old.values, new.values):
            alias, other = (origin, old) if origin.key != new.key else (self.origins[new.key], new)
            raise self.error(
                alias,
                f"{alias.key}={'|'.join(alias.values)} sets {new.key}, which line {other.line} sets to "
                f"{'|'.join(other.values)}; keep one of them",
            )

    def _datasets(self, datasets: list[Param], models: list[str]) -> None:
        """``RESNET18_DATASET="cifar10"``: a model's own dataset is our default; another needs one model."""
        for p in datasets:
            model, dataset = DATASET_ALIASES[_short(p.key)]
            if dataset is None:
                dataset = p.values[0].lower()
            elif not p.values[0].lower().startswith("y"):
                continue
            if dataset == DEFAULT_DATASET.get(model):
                continue  # what pytest-sweep trains that model on anyway
            if models != [model]:
                raise self.error(
                    p, f"{p.key} sets the dataset of {model} only; pytest-sweep's CONFIG_DATASET is one per file"
                )
            self._merge(Param("CONFIG_DATASET", (dataset,), p.line, "fixed", quoted=True), p)

    def _conflicts(self, matrix: Matrix) -> None:
        """One of our own run symbols (``CONFIG_MODEL``, ``CONFIG_OPTIMIZER``...) that the file sets to
        something its reference selection overrides: a usage error naming both lines (the runs would
        otherwise train the selection's values without a word).

        ``CONFIG_TARGET_SPARSITY`` is also the reference's own symbol, which it reads in its single
        pruning mode only; the reference's defconfigs set it in the multiple mode too (6 of its 36
        do), so there it is a note naming both lines, as the reference ignores it there.
        """
        chosen = {
            "CONFIG_MODEL": matrix.models,
            "CONFIG_OPTIMIZER": matrix.optimizers,
            "CONFIG_PRUNING_METHOD": matrix.methods,
            "CONFIG_TARGET_SPARSITY": matrix.sparsities,
            "CONFIG_ADAMWPRUNE_VARIANT": matrix.variants,
        }
        for key, values in chosen.items():
            ours = self.params.get(key)
            if ours is None or key in matrix.used or _same_set(ours.values, tuple(values)):
                continue  # not set, read into the runs, or the same values anyway
            origin = self.origins.get(key, ours)
            words = _DECIDERS[key]
            deciders = sorted(
                ("_MODE_" in k, line, k)
                for k, line in matrix.used.items()
                if k not in AXES and any(w in k for w in words)
            )
            if deciders:
                _, line, decider = deciders[0]
                param = self.rc.param(decider)
                shown = f"{decider}={'|'.join(param.values)}" if param is not None else decider
                other = f"{self.path}:{line}: {shown}"
            else:
                other = f"{self.path}:{self.first.line}: the reference's defaults for this defconfig ({self.first.key})"
            selected = ", ".join(values) if values else "no sparsity (no pruning)"
            if key == "CONFIG_TARGET_SPARSITY":
                self.notes.append(
                    f"{origin.key}={'|'.join(origin.values)} ({self.path}:{origin.line}) has no effect, as in the "
                    f"reference: {other} selects {selected}"
                )
                continue
            raise self.error(
                origin,
                f"{origin.key}={'|'.join(origin.values)} conflicts with {other}, which selects {selected}; "
                f"keep one of them (remove {origin.key} or change the reference's selection)",
            )

    @staticmethod
    def _axis_line(used: dict[str, int], axis: str) -> int:
        """The first line among the symbols that chose this axis (0: kconfig's default chose it)."""
        stem = {"model": "MODEL", "optimizer": "OPTIMIZER", "method": "PRUNING", "sparsity": "SPARSITY"}
        word = stem.get(AXES[axis], "VARIANT")
        found = [line for key, line in used.items() if word in key]
        return min(found) if found else 0

    # -- the reference at its published commit ------------------------------------------------
    def _published(self, runs: list[RefRun]) -> Param | None:
        param = self.rc.param(f"CONFIG_{AS_PUBLISHED}")
        if param is None or not param.values[0].lower().startswith("y"):
            return None
        if param.swept:
            raise self.error(param, f"{param.key} describes the file, not a trial: give it one value")
        others = sorted({r.model for r in runs} - {"resnet18"})
        if others:
            raise self.error(
                param,
                f"{param.key} reproduces the reference's ResNet-18 runs; this file also selects {', '.join(others)}",
            )
        for key, value in _PUBLISHED.items():
            old = self.params.get(key)
            if old is not None and not _same(old.values, (value,)):
                self.notes.append(
                    f"as published, {key}={'|'.join(old.values)} (line {old.line}) is ignored, as the reference did: {value}"
                )
            self.params[key] = Param(key, (value,), param.line, "fixed", quoted=key == "CONFIG_PRUNING_RAMP")
        decay = self.params.get("CONFIG_WEIGHT_DECAY")
        if decay is not None:
            self.notes.append(f"as published, CONFIG_WEIGHT_DECAY (line {decay.line}) is ignored, as the reference did")
        self.params["CONFIG_WEIGHT_DECAY"] = Param("CONFIG_WEIGHT_DECAY", ("0.0005",), param.line, "fixed")
        return param

    def _run_values(self, run: RefRun, published: Param | None) -> dict[str, str]:
        values = {key: getattr(run, attr) for key, attr in AXES.items()}
        if published is None or not run.runnable:
            return values
        if run.optimizer == "adamwprune":
            # cf07123 passed --pruning-method movement for "state" and never enabled AdamWPrune's own
            # pruning, with none of its settings forwarded: AdamW, weight decay 0, amsgrad off
            values.update(
                CONFIG_OPTIMIZER="adamw", CONFIG_PRUNING_METHOD="movement" if run.method == "state" else "none"
            )
            values["CONFIG_WEIGHT_DECAY"] = "0.0"
        else:
            values["CONFIG_WEIGHT_DECAY"] = _PUBLISHED_DECAY[run.optimizer]
        return values

    # -- what the user reads once per file -------------------------------------------------------
    def _notes(
        self,
        matrix: Matrix,
        runs: list[RefRun],
        no_effect: list[Param],
        not_implemented: list[Param],
        published: Param | None,
    ) -> None:
        dropped = sum(1 for r in runs if not r.runnable)
        ran = len(runs) - dropped
        head = (
            f"the reference's defconfig ({self.first.key}, line {self.first.line}): {ran} run{'s' if ran != 1 else ''}"
        )
        if dropped:
            head += f", and {dropped} pair{'s' if dropped > 1 else ''} it drops (collected as skipped)"
        notes = [head + ("; as at its published commit cf07123" if published else "")]
        if no_effect:
            notes.append("no effect in pytest-sweep: " + ", ".join(p.key for p in no_effect))
        differ = [p for p in not_implemented if not _matches(p)]
        if differ:
            listed = ", ".join(f"{p.key}={p.values[0]} (line {p.line})" for p in differ)
            notes.append(f"not implemented, so these runs train without them: {listed}")
        lr = self.params.get("CONFIG_LEARNING_RATE")
        scaled = any(r.runnable and r.model == "resnet18" and r.optimizer != "sgd" for r in runs)
        if lr is not None and scaled and self.params["CONFIG_REFERENCE_LR"].values[0] == "y":
            notes.append(
                f"CONFIG_LEARNING_RATE={'|'.join(lr.values)} is read as the reference reads it: SGD at that rate, "
                "the Adam family on ResNet-18 at 0.001 times it (CONFIG_REFERENCE_LR=y)"
            )
        notes += [f"differs from the reference: {d}" for d in _differences(self.params, runs, published)]
        self.notes[:0] = notes


#: Words in the reference's symbols that decide each of our run symbols (``MODEL_SELECT_RESNET18``...).
_DECIDERS = {
    "CONFIG_MODEL": ("MODEL",),
    "CONFIG_OPTIMIZER": ("OPTIMIZER",),
    "CONFIG_PRUNING_METHOD": ("PRUNING",),
    "CONFIG_TARGET_SPARSITY": ("SPARSITY", "PRUNING_MODE"),
    "CONFIG_ADAMWPRUNE_VARIANT": ("VARIANT",),
}


def _same_set(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    """The same values in any order, numbers compared as numbers and words without case."""

    def norm(value: str) -> str:
        try:
            return "number:" + str(Decimal(value.strip()).normalize())
        except InvalidOperation:
            return "text:" + value.strip().lower()

    return {norm(v) for v in a} == {norm(v) for v in b}


def _matches(param: Param) -> bool:
    """A not-implemented setting whose value is what pytest-sweep does anyway."""
    is_bool, match = NOT_IMPLEMENTED[_short(param.key)]
    value = param.values[0].strip().lower()
    if match is None:
        return False
    return value[:1] == match if is_bool else _same((value,), (match,))


def _differences(params: dict[str, Param], runs: list[RefRun], published: Param | None) -> list[str]:
    """Where pytest-sweep deliberately trains these runs differently from the reference, one line each."""
    ran = [r for r in runs if r.runnable]
    methods = {r.method for r in ran}
    optimizers = {r.optimizer for r in ran}
    resnet = any(r.model == "resnet18" for r in ran)
    out: list[str] = []
    amp = params.get("CONFIG_AMP")
    if amp is None or amp.values != ("n",):
        out.append(
            "precision: bf16 autocast and channels_last on CUDA (the reference: fp32 on ResNet-18, fp16 with a "
            "GradScaler on LeNet-5); CONFIG_AMP=n and CONFIG_CHANNELS_LAST=n train in fp32"
        )
    scheduled = methods & {"magnitude", "movement"}
    if scheduled and resnet and published is None:
        out.append(
            "magnitude/movement on ResNet-18 follow CONFIG_PRUNING_FREQUENCY and CONFIG_PRUNING_RAMP_END_EPOCH "
            "(the reference's script ignores both: every 100 steps, a ramp ending at step 3000)"
        )
    if scheduled:
        out.append(
            "magnitude/movement masks only grow, pruned weights get no gradient and no optimizer moments (the "
            "reference recomputes its masks from scratch, so a pruned weight can come back)"
        )
    if methods & {"magnitude", "state"} and "CONFIG_PRUNING_RAMP" not in params:
        out.append(
            "the sparsity ramp of magnitude and state pruning is cubic, as at the reference's HEAD (its published "
            'commit ramped them linearly: CONFIG_PRUNING_RAMP="linear")'
        )
    if "state" in methods and published is None:
        out.append(
            "state pruning is AdamWPrune's own, with an exact threshold (the published table's 'state' runs were AdamW, "
            "weight decay 0, with movement pruning: CONFIG_REFERENCE_AS_PUBLISHED=y; HEAD samples 2% of the scores)"
        )
    if any(r.optimizer == "adamwprune" and r.model == "resnet18" for r in ran) and published is None:
        out.append(
            "AdamWPrune on ResNet-18 takes its configured settings: CONFIG_ADAMWPRUNE_WEIGHT_DECAY (default 0.01, on "
            "weights), betas, amsgrad (the reference's ResNet-18 script forwards none of them: weight decay 0 on "
            "every parameter, amsgrad off)"
        )
    if any(r.optimizer == "adamwprune" and r.method == "none" for r in ran) and published is None:
        out.append(
            "AdamWPrune without pruning runs once, unpruned (the reference at HEAD runs it at each sparsity, "
            "training what state pruning does)"
        )
    if resnet and optimizers & {"adamwadv", "adamwspam"}:
        out.append(
            "AdamWAdv/AdamWSpam on ResNet-18 clip gradients at 1.0 and AdamWSpam handles spikes (the reference's "
            "ResNet-18 script drops both)"
        )
    decay = params.get("CONFIG_WEIGHT_DECAY")
    if decay is not None and resnet and published is None and optimizers - {"adamwprune"}:
        out.append(
            f"CONFIG_WEIGHT_DECAY={decay.values[0]} applies (the reference's ResNet-18 script never forwards it: 5e-4)"
        )
    return out
