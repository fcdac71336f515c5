"""The reference's run matrix: which runs one of its defconfigs describes (``shared/reference/test-matrix.md``).

Per axis the user-facing symbol decides (``*_MODE_*`` + ``*_SELECT_*`` / ``*_ENABLE_*``); an older
spelling (``TEST_*``, ``PRUNING_ENABLED_*``, ``TEST_MODELS="a,b"``...) fills only what it leaves
unset; where the file says nothing, kconfig's defaults apply.  Unlike kconfig, a value given to a
symbol kconfig would have dropped (an older spelling, a ``*_SELECT_*`` without its mode) still
states the file's intent and is honoured.  The runs come in the reference's order (model,
optimizer, pruning method, then sparsity and AdamWPrune variant) and carry its run names; a pair
the reference drops (state pruning without AdamWPrune, AdamWPrune with magnitude or movement) is
one run that the built-in plugins skip with the reason.  Pure Python: no pytest, no torch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pytest_sweep.matrix import RangeConfigError
from pytest_sweep.matrix.rangeconfig import Param
from pytest_sweep.plugins.reference_symbols import (
    DEFAULT_VARIANT_ALIASES,
    LEVELS,
    REFERENCE_MODELS,
    REFERENCE_VARIANTS,
    VARIANT_PREFIXES,
)
from pytest_sweep.trainers.names import OPTIMIZERS, PRUNING_METHODS

#: Pairs of optimizer and pruning method the reference runs (the others it drops).
PAIRS_NOTE = "state pruning runs only with AdamWPrune, and AdamWPrune prunes only by its state"


@dataclass(frozen=True)
class RefRun:
    """One run of the reference's matrix, with its run name."""

    label: str
    model: str
    optimizer: str
    method: str
    sparsity: str
    variant: str

    @property
    def runnable(self) -> bool:
        """Whether the reference runs this pair (it drops the others)."""
        return (self.method == "state") == (self.optimizer == "adamwprune") or (
            self.optimizer == "adamwprune" and self.method == "none"
        )


@dataclass
class Matrix:
    """The axes a defconfig selects, and what decided each (``key -> line``, for the notes)."""

    models: list[str]
    optimizers: list[str]
    methods: list[str]
    sparsities: list[str]
    variants: list[str]
    multiple_pruning: bool
    used: dict[str, int] = field(default_factory=dict)

    def runs(self) -> list[RefRun]:
        """The runs in the reference's order (model, optimizer, method, sparsity, variant)."""
        out: list[RefRun] = []
        first = self.sparsities[0] if self.sparsities else "0.0"
        for model in self.models:
            for opt in self.optimizers:
                for method in self.methods:
                    probe = RefRun(f"{model}_{opt}_{method}", model, opt, method, first, self.variants[0])
                    if not probe.runnable:
                        out.append(probe)  # a pair the reference drops: skipped with the reason
                    elif method == "none":
                        variant = f"_{self.variants[0]}" if opt == "adamwprune" else ""
                        out.append(RefRun(f"{model}_{opt}{variant}_none", model, opt, "none", "0.0", self.variants[0]))
                    else:
                        for sparsity in self.sparsities:
                            for variant in self.variants if opt == "adamwprune" else self.variants[:1]:
                                name = f"{model}_{opt}_{variant}" if opt == "adamwprune" else f"{model}_{opt}"
                                label = f"{name}_{method}_{percent(sparsity)}"
                                out.append(RefRun(label, model, opt, method, sparsity, variant))
        return out


def percent(sparsity: str) -> str:
    """``0.7`` -> ``70`` (the reference's run names: ``int(float(s) * 100)``, without its float error)."""
    return str(round(float(sparsity) * 100))


class Reader:
    """A parsed defconfig's values, read as kconfig reads them."""

    def __init__(self, params: Sequence[Param], path: str) -> None:
        self.params = {p.key.removeprefix("CONFIG_"): p for p in params}
        self.path = path
        self.used: dict[str, int] = {}

    def error(self, name: str, message: str) -> RangeConfigError:
        param = self.params.get(name)
        return RangeConfigError(self.path, param.line if param else None, message)

    def one(self, name: str) -> str | None:
        """The single value of ``CONFIG_<name>``, or None when the file does not set it."""
        param = self.params.get(name)
        if param is None:
            return None
        if param.swept:
            raise self.error(
                name, f"CONFIG_{name} selects the reference's runs: give it one value, not {'|'.join(param.values)}"
            )
        self.used[f"CONFIG_{name}"] = param.line
        return param.values[0]

    def flag(self, name: str) -> bool | None:
        """A bool as kconfig reads it (its first character); None when not set."""
        value = self.one(name)
        return None if value is None else value.strip().lower().startswith("y")

    def values(self, name: str) -> list[str] | None:
        """Every value of one of our own symbols (a choice list of them counts), or None."""
        param = self.params.get(name)
        if param is None:
            return None
        self.used[f"CONFIG_{name}"] = param.line
        return list(param.values)

    def listed(self, name: str) -> list[str] | None:
        """A comma-separated list (``TEST_MODELS="lenet5,resnet18"``), or None."""
        value = self.one(name)
        return None if value is None else [v.strip().lower() for v in value.split(",") if v.strip()]

    def pick(self, *names: str, listed: tuple[str, str] | None = None, default: bool) -> bool:
        """The first of ``names`` the file sets decides; then membership in a listed older spelling."""
        for name in names:
            value = self.flag(name)
            if value is not None:
                return value
        if listed is not None:
            items = self.listed(listed[0])
            if items is not None:
                return listed[1] in items
        return default

    def mode(self, prefix: str, modes: tuple[str, ...], infer: Callable[[], str | None], default: str) -> str:
        """``<prefix>_MODE_<X>=y`` (at most one), else what the other symbols imply, else kconfig's default."""
        chosen = [m for m in modes if self.flag(f"{prefix}_MODE_{m.upper()}")]
        if len(chosen) > 1:
            names = " and ".join(f"CONFIG_{prefix}_MODE_{m.upper()}" for m in chosen)
            raise self.error(f"{prefix}_MODE_{chosen[1].upper()}", f"{names} are both y; choose one mode")
        return chosen[0] if chosen else (infer() or default)

    def single(self, prefix: str, names: Sequence[str]) -> list[str]:
        """The one ``<prefix>_SELECT_<X>=y`` (kconfig's choice), or []."""
        chosen = [n for n in names if self.flag(f"{prefix}_SELECT_{n.upper()}")]
        if len(chosen) > 1:
            listed = " and ".join(f"CONFIG_{prefix}_SELECT_{n.upper()}" for n in chosen)
            raise self.error(f"{prefix}_SELECT_{chosen[1].upper()}", f"{listed} are both y; select one")
        return chosen


def read_matrix(reader: Reader) -> Matrix:
    """The axes of the defconfig behind ``reader``."""
    models = _models(reader)
    optimizers = _optimizers(reader)
    pruning_mode = reader.mode(
        "PRUNING",
        ("none", "single", "multiple"),
        lambda: "single" if reader.single("PRUNING", PRUNING_METHODS) or "PRUNING_METHOD" in reader.params else None,
        "multiple",
    )
    methods = _methods(reader, pruning_mode, optimizers)
    sparsities = _sparsities(reader, pruning_mode, methods)
    return Matrix(models, optimizers, methods, sparsities, _variants(reader), pruning_mode == "multiple", reader.used)


def _models(r: Reader) -> list[str]:
    mode = r.mode("MODEL", ("single", "multiple"), lambda: None, "single")
    if mode == "multiple":
        found = [
            m
            for m in REFERENCE_MODELS
            if r.pick(
                f"MODEL_ENABLE_{m.upper()}",
                f"TEST_MODEL_{m.upper()}",
                listed=("TEST_MODELS", m),
                default=m in ("lenet5", "resnet18"),
            )
        ]
        return found or ["lenet5"]
    chosen = r.single("MODEL", REFERENCE_MODELS)
    older = [m for m in ("lenet5", "resnet18") if r.flag(f"MODEL_{m.upper()}")]
    return chosen or older or r.values("MODEL") or r.listed("TEST_MODELS") or ["lenet5"]


def _optimizers(r: Reader) -> list[str]:
    def infer() -> str | None:
        return "single" if r.single("OPTIMIZER", OPTIMIZERS) or "OPTIMIZER" in r.params else None

    mode = r.mode("OPTIMIZER", ("single", "multiple", "none"), infer, "multiple")
    if mode == "multiple":
        found = [
            o
            for o in OPTIMIZERS
            if r.pick(
                f"OPTIMIZER_ENABLE_{o.upper()}",
                f"TEST_OPTIMIZER_ENABLED_{o.upper()}",
                listed=("TEST_OPTIMIZERS", o),
                default=True,
            )
        ]
        if not found:
            raise r.error("OPTIMIZER_MODE_MULTIPLE", "no optimizer is enabled; set one CONFIG_OPTIMIZER_ENABLE_X=y")
        return found
    older = [o for o in OPTIMIZERS if r.flag(f"TEST_OPTIMIZER_ENABLED_{o.upper()}")]
    return r.single("OPTIMIZER", OPTIMIZERS) or r.values("OPTIMIZER") or older or ["sgd"]


def _methods(r: Reader, mode: str, optimizers: list[str]) -> list[str]:
    if mode == "none":
        return ["none"]
    if mode == "multiple":
        found = [
            m
            for m in PRUNING_METHODS
            if r.pick(
                f"PRUNING_ENABLE_{m.upper()}",
                f"PRUNING_ENABLED_{m.upper()}",
                f"TEST_PRUNING_{m.upper()}",
                listed=("TEST_PRUNING_METHODS", m),
                default=m != "state" or "adamwprune" in optimizers,
            )
        ]
        return found or ["none"]
    older = r.listed("TEST_PRUNING_METHODS") or [m for m in PRUNING_METHODS if r.flag(f"PRUNING_ENABLED_{m.upper()}")]
    return r.single("PRUNING", PRUNING_METHODS) or r.values("PRUNING_METHOD") or older or ["magnitude"]


def _sparsities(r: Reader, mode: str, methods: list[str]) -> list[str]:
    if all(m == "none" for m in methods):
        return []
    if mode == "multiple":
        # kconfig offers SPARSITY_ENABLE_* (50, 70, 90 on) only when magnitude or movement is enabled
        offered = "magnitude" in methods or "movement" in methods
        found = [
            _fraction(n)
            for n in LEVELS
            if r.pick(f"SPARSITY_ENABLE_{n}", f"TEST_SPARSITY_{n}", default=offered and n in ("50", "70", "90"))
        ]
        return found or r.values("TARGET_SPARSITY") or ["0.9"]
    target = r.values("TARGET_SPARSITY")
    explicit = [_fraction(n) for n in LEVELS if r.pick(f"SPARSITY_ENABLE_{n}", f"TEST_SPARSITY_{n}", default=False)]
    return target or explicit or ["0.9"]


def _fraction(level: str) -> str:
    """``"50"`` -> ``"0.5"``, ``"95"`` -> ``"0.95"``."""
    return f"0.{level.rstrip('0')}"


def _variants(r: Reader) -> list[str]:
    chosen = [
        v
        for v in REFERENCE_VARIANTS
        if any(r.flag(f"{prefix}_ADAMWPRUNE_VARIANT_{v.upper()}") for prefix in VARIANT_PREFIXES)
    ]
    if chosen:
        return chosen
    native = r.values("ADAMWPRUNE_VARIANT")
    if native:
        return native
    for name in DEFAULT_VARIANT_ALIASES:
        value = r.one(name)
        if value:
            return [value]
    return ["bitter0"]
