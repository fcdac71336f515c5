"""``refine_range``: the next sweep, written for you (the guide's "Refine Around Best Values").

Every finished sweep with a passed trial writes ``refine_range`` into its folder: a range config
that runs as is with ``--range-config``.  The fixed keys are kept as the trials ran them; an
unimportant swept parameter (:mod:`~pytest_sweep.plugins.importance`) is fixed at its best mean
value; an important numeric one gets a finer grid centred on the best configuration's value, the
midpoints to its neighbours (best 0.87 in ``0.85|0.87|0.89`` gives ``0.86|0.87|0.88``, the
guide's example), one step of the old grid outward where the best value is at the edge (best 0.89
gives ``0.88|0.89|0.91``); values spanning decades (``1e-4|1e-3|1e-2``) get geometric midpoints
instead, to two significant figures (best 1e-3 gives ``0.00032|0.001|0.0032``); an important
categorical one keeps its best two values by mean; a
swept ``CONFIG_SEED`` keeps its seeds.  Arithmetic is exact decimal, as in the range language;
a value outside the symbol's bounds is dropped, and an integer symbol's midpoint is rounded.
Comments in the file say where each line came from.  The next sweep runs as is under the
``--sweep-max-combinations`` of this one: a grid that would exceed it is narrowed (:func:`narrow`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

import pytest

from pytest_sweep.matrix import rangewrite, storage
from pytest_sweep.matrix.files import REFINE_RANGE
from pytest_sweep.matrix.options import DEFAULT_MAX_COMBINATIONS, sweep_options
from pytest_sweep.matrix.records import SweepResult
from pytest_sweep.matrix.symbols import MAX_EXPONENT, Symbol, SymbolTable, finite_decimal
from pytest_sweep.plugins import importance as imp_mod
from pytest_sweep.plugins.importance import Importance, Parameter, best_configuration, focus, swept_keys, value_order
from pytest_sweep.plugins.replicates import configurations, origin, seed_swept

THIN = "-" * 40
_BOOLS = {"y", "n"}


@dataclass(frozen=True)
class Line:
    """One swept parameter of the next sweep: its values and why."""

    key: str
    old: tuple[str, ...]
    new: tuple[str, ...]
    why: str
    kind: str  # "fixed" | "finer" | "best-two" | "seeds" | "kept"


@dataclass(frozen=True)
class Refinement:
    fixed: dict[str, str]
    lines: tuple[Line, ...]
    best_name: str
    best_acc: str  # in words: "98.89% mean test accuracy over 3 seeds"
    scope: str | None
    source: str = ""
    #: the largest grid the next sweep may have (``--sweep-max-combinations`` of this one)
    limit: int = DEFAULT_MAX_COMBINATIONS
    #: keys fixed to fit ``limit`` (the least important first), and the grid refining all would have
    narrowed: tuple[str, ...] = ()
    unnarrowed: int = 0

    @property
    def combinations(self) -> int:
        return math.prod(len(line.new) for line in self.lines)


def _decimal(text: str) -> Decimal | None:
    """``text`` as a number, or None; a number no symbol takes (``1e999999``: its grid would need a
    million digits) is text here, as :meth:`~pytest_sweep.matrix.symbols.Symbol.coerce` refuses it."""
    return finite_decimal(text, max_exponent=MAX_EXPONENT)


def show(value: Decimal) -> str:
    """An exact decimal without exponent or trailing zeros: ``0.86``, ``9750``."""
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def _numeric(key: str, values: list[str], symbols: SymbolTable | None) -> bool:
    # every value a number either way: a summary read by `pytest-sweep report` may hold anything
    numbers = all(_decimal(v) is not None for v in values)
    if symbols is not None and key in symbols:
        return symbols[key].type in ("int", "float") and numbers
    return numbers and not set(values) <= _BOOLS


def _integer(key: str, values: list[str], symbols: SymbolTable | None) -> bool:
    if symbols is not None and key in symbols:
        return symbols[key].type == "int"
    return all(v.lstrip("+-").isdigit() for v in values)


#: Positive values spanning this factor or more (decades of a learning rate) are refined on a log scale.
LOG_SPAN = 100


def _two_figures(value: Decimal) -> Decimal:
    """``value`` to two significant figures (``0.0031623`` -> ``0.0032``)."""
    return value.quantize(Decimal(1).scaleb(value.adjusted() - 1)).normalize()


def _geometric(
    ordered: list[str], numbers: list[Decimal], i: int, best: str, symbol: Symbol | None
) -> tuple[tuple[str, ...], str]:
    """Log-spaced values (``1e-4|1e-3|1e-2``): geometric midpoints to the neighbours, two significant
    figures; at an edge, half a step of the old grid (in log) outward."""
    b = numbers[i]
    notes: list[str] = []
    if i > 0:
        low = (numbers[i - 1] * b).sqrt()
    else:
        low = b / (numbers[1] / b).sqrt()
        notes.append("the lowest value: half a step below")
    if i < len(numbers) - 1:
        high = (b * numbers[i + 1]).sqrt()
    else:
        high = b * (b / numbers[i - 1]).sqrt()
        notes.append("the highest value: half a step above")
    picked = []
    for new in (_two_figures(low), _two_figures(high)):
        if symbol is not None and (
            (symbol.low is not None and new < Decimal(repr(symbol.low)))
            or (symbol.high is not None and new > Decimal(repr(symbol.high)))
        ):
            notes.append(
                f"{show(new)} dropped: outside the symbol's range ({symbol.help_hint().removeprefix('expected ')})"
            )
            continue
        if new != b:
            picked.append(new)
    out = sorted({*picked, b})
    texts = tuple(best if n == b else show(n) for n in out)
    how = "geometric midpoints to its neighbours (the values span decades)"
    if notes:
        how += "; " + "; ".join(notes)
    return texts, how


def finer_grid(
    values: list[str], best: str, integer: bool = False, symbol: Symbol | None = None
) -> tuple[tuple[str, ...], str]:
    """The finer grid around ``best`` among ``values`` (numbers as text) and what was done, in words."""
    ordered = sorted(values, key=Decimal)
    numbers = [Decimal(v) for v in ordered]
    i = ordered.index(best)
    b = numbers[i]
    notes: list[str] = []
    if not integer and numbers[0] > 0 and numbers[-1] / numbers[0] >= LOG_SPAN:
        return _geometric(ordered, numbers, i, best, symbol)
    if i > 0:
        low = (numbers[i - 1] + b) / 2
    else:
        low = b - (numbers[1] - b)
        notes.append(f"the lowest value: one step ({show(numbers[1] - b)}) below")
    if i < len(numbers) - 1:
        high = (b + numbers[i + 1]) / 2
    else:
        high = b + (b - numbers[i - 1])
        notes.append(f"the highest value: one step ({show(b - numbers[i - 1])}) above")
    picked: list[Decimal] = []
    for new, outward in ((low, ROUND_FLOOR), (high, ROUND_CEILING)):
        if integer and new != new.to_integral_value():
            whole = new.to_integral_value(rounding=outward)  # away from the best value
            notes.append(f"{show(new)} rounded to {show(whole)} (a whole-number symbol)")
            new = whole
        if new == b:
            continue
        if symbol is not None and (
            (symbol.low is not None and new < Decimal(repr(symbol.low)))
            or (symbol.high is not None and new > Decimal(repr(symbol.high)))
        ):
            notes.append(
                f"{show(new)} dropped: outside the symbol's range ({symbol.help_hint().removeprefix('expected ')})"
            )
            continue
        picked.append(new)
    out = sorted({*picked, b})
    texts = tuple(best if n == b else show(n) for n in out)
    how = "midpoints to its neighbours"
    if notes:
        how += "; " + "; ".join(notes)
    return texts, how


def refine(
    records: list[dict[str, Any]],
    imp: Importance,
    symbols: SymbolTable | None = None,
    limit: int = DEFAULT_MAX_COMBINATIONS,
) -> Refinement | None:
    """The next sweep around the best configuration, or None when no trial passed.

    :param limit: the next sweep's largest grid (the ``--sweep-max-combinations`` of this one):
        a finer grid of every parameter that would exceed it is narrowed (:func:`narrow`).
    """
    best = best_configuration(records)
    if best is None:
        return None
    scoped, scope = focus(records)
    config: dict[str, str] = {k: str(v) for k, v in (best.get("config") or {}).items()}
    keys = swept_keys(scoped)
    params = {p.name: p for p in imp.parameters}
    fixed = {k: v for k, v in sorted(config.items()) if k not in keys}
    lines = []
    for key in keys:
        old = tuple(value_order([imp_mod.value_of(r, key) for r in scoped]))
        lines.append(_line(key, old, config.get(key), params.get(key), imp, symbols))
    source = origin(best) if best.get("source") else ""
    full = math.prod(len(line.new) for line in lines)
    narrowed: tuple[str, ...] = ()
    if full > limit:
        lines, narrowed = narrow(lines, params, config, limit)
    return Refinement(
        fixed, tuple(lines), best["config_file"], _best_accuracy(scoped, best), scope, source, limit, narrowed, full
    )


def _best_accuracy(records: list[dict[str, Any]], best: dict[str, Any]) -> str:
    """The best configuration's accuracy in words: its mean over seeds when the seed is swept."""
    if seed_swept(records):
        for c in configurations(records):
            if best in c.trials and c.mean is not None:
                return f"{c.mean:.2f}% mean test accuracy over {c.n} seed{'s' if c.n != 1 else ''}"
    return f"{float(best['test_acc']):.2f}% test accuracy"


def narrow(
    lines: list[Line], params: dict[str, Parameter], best: dict[str, str], limit: int
) -> tuple[list[Line], tuple[str, ...]]:
    """Fix the least important refined parameters at the best configuration's values until the
    grid fits ``limit``; the seeds go last (the first ones are kept).  Returns the lines and the
    keys fixed, least important first.

    Importance is the main-effect share; a parameter whose share is unknown is kept longest.
    """

    def rank(line: Line) -> tuple[int, float, str]:
        p = params.get(line.key)
        share = p.share if p is not None else None
        return (1, 0.0, line.key) if share is None else (0, share, line.key)

    out = list(lines)
    fixed: list[str] = []
    for line in sorted((ln for ln in lines if ln.kind in ("finer", "best-two", "kept") and len(ln.new) > 1), key=rank):
        if math.prod(len(ln.new) for ln in out) <= limit:
            break
        value = best.get(line.key)
        if value is None or value == imp_mod.NOT_SET:
            value = line.new[0]
        why = f"{line.why.split(';')[0]}; fixed at the best configuration's {value} to fit the limit of {limit} combinations"
        out[out.index(line)] = Line(line.key, line.old, (value,), why, "fixed")
        fixed.append(line.key)
    total = math.prod(len(ln.new) for ln in out)
    if total > limit:  # the seeds alone are too many: keep as many as fit
        for i, line in enumerate(out):
            if line.kind == "seeds" and len(line.new) > 1:
                others = total // len(line.new)
                keep = max(1, limit // max(1, others))
                out[i] = Line(
                    line.key, line.old, line.new[:keep], f"{line.why}; the first {keep} to fit the limit", "seeds"
                )
                total = others * keep
    return out, tuple(fixed)


def _line(
    key: str, old: tuple[str, ...], best: str | None, p: Parameter | None, imp: Importance, symbols: SymbolTable | None
) -> Line:
    if p is not None and p.replicate:
        return Line(key, old, old, "the replicate seeds, kept", "seeds")
    if p is not None and p.important is False and p.best_value is not None:
        at = "its first value (the value means are equal)" if p.tied else "its best mean value"
        why = f"unimportant: value means span {p.effect:.2f} pp, {imp_mod.verdict(imp, p)}; fixed at {at}"
        return Line(key, old, (p.best_value,), why, "fixed")
    verdict = "important" if p is not None and p.important else "importance unknown"
    if p is not None and p.important and p.share is not None:
        verdict += f": {p.share * 100:.1f}% of the variance, value means span {p.effect:.2f} pp"
    elif p is not None and p.important is None:
        verdict += f" ({imp.reason or 'fewer than two of its values passed'})"
    candidates = [v for v in old if v != imp_mod.NOT_SET]
    if best is not None and best in candidates and len(candidates) >= 2 and _numeric(key, candidates, symbols):
        symbol = symbols[key] if symbols is not None and key in symbols else None
        new, how = finer_grid(candidates, best, _integer(key, candidates, symbols), symbol)
        return Line(key, old, new, f"{verdict}; finer grid around the best configuration's {best} ({how})", "finer")
    means = {s.value: s.mean for s in p.values if s.mean is not None} if p is not None else {}
    if means:
        top = sorted(means, key=lambda v: -(means[v] or 0.0))[:2]
        return Line(key, old, tuple(top), f"{verdict}; its best two values by mean", "best-two")
    return Line(key, old, old, f"{verdict}; kept as it was", "kept")


def _string(key: str, values: tuple[str, ...] | list[str], symbols: SymbolTable | None) -> bool:
    """Whether ``key``'s values are strings (quoted): its symbol's type, else any value not a number or y/n."""
    if symbols is not None and key in symbols:
        return symbols[key].type == "str"
    return any(_decimal(v) is None and v not in _BOOLS for v in values)


def _assign(key: str, values: tuple[str, ...] | list[str], symbols: SymbolTable | None) -> str:
    return rangewrite.assignment(key, list(values), string=_string(key, values, symbols))


def render(ref: Refinement, sweep_name: str, symbols: SymbolTable | None = None) -> str:
    """The text of ``refine_range``; :class:`~pytest_sweep.matrix.rangewrite.Unwritable` when a key
    or value cannot be written in a range config (e.g. a value with a line break)."""
    comment = rangewrite.comment
    out = [
        comment(f"refine_range: the next sweep, written by pytest-sweep from {sweep_name}"),
        comment(
            f"around its best configuration {ref.best_name} ({ref.best_acc}); "
            f"{ref.combinations} combination{'s' if ref.combinations != 1 else ''}."
        ),
        comment("Run it as is: pytest --range-config=<this file>"),
    ]
    if ref.narrowed:
        keys = ", ".join(sorted(ref.narrowed))
        out.append(
            comment(
                f"Narrowed to fit --sweep-max-combinations={ref.limit} (refining all {len(ref.narrowed) + _refined(ref)} "
                f"would be {ref.unnarrowed} combinations): {keys} fixed at the best configuration's values "
                "(the least important)."
            )
        )
    if ref.scope:
        out.append(comment(f"From the trials of {ref.scope} only (the source of the best trial; the run had several)."))
    elif ref.source:
        out.append(comment(f"The last sweep ran {ref.source}."))
    out += ["", comment("Fixed keys, as every trial ran them (command-line overrides included):")]
    out += [_assign(k, [v], symbols) for k, v in ref.fixed.items()]
    if ref.lines:
        out += ["", comment("Swept in the last sweep:")]
    for line in ref.lines:
        out.append(comment(f"{line.key} was {'|'.join(line.old)}: {line.why}"))
        out.append(_assign(line.key, line.new, symbols))
    return "\n".join(out) + "\n"


def _refined(ref: Refinement) -> int:
    return sum(1 for line in ref.lines if line.kind in ("finer", "best-two", "kept") and len(line.new) > 1)


def rendered(ref: Refinement | None, sweep_name: str, symbols: SymbolTable | None) -> tuple[str | None, str | None]:
    """``(text of refine_range, None)``, or ``(None, why it is not written)``."""
    if ref is None:
        return None, "no trial passed"
    try:
        return render(ref, sweep_name, symbols), None
    except rangewrite.Unwritable as exc:
        return None, f"{exc} (a range config cannot hold it)"


def render_section(ref: Refinement | None, path: str, reason: str | None = None) -> str:
    """The ``NEXT SWEEP`` section of ``sweep_analysis.txt``; ``reason``: why the file is not written."""
    out = ["NEXT SWEEP (refine_range):", THIN]
    if ref is None or reason is not None:
        out.append(f"refine_range not written: {reason or 'no trial passed'}.")
        return "\n".join(out) + "\n"
    show_ = rangewrite.one_line
    was = math.prod(len(line.old) for line in ref.lines)
    out.append(f"{ref.combinations} combination{'s' if ref.combinations != 1 else ''} (this sweep: {was})")
    if ref.narrowed:
        out.append(
            f"Narrowed to fit --sweep-max-combinations={ref.limit} (refining all would be {ref.unnarrowed}): "
            f"{', '.join(sorted(ref.narrowed))} fixed at the best configuration's values"
        )
    for line in ref.lines:
        out.append(f"  {line.key}={show_('|'.join(line.new))}  ({line.kind}; was {show_('|'.join(line.old))})")
    out.append(f"Run it with: pytest --range-config={show_(path)}")
    return "\n".join(out) + "\n"


def builtin_symbols() -> SymbolTable:
    """The symbols the built-in plugins declare, outside a pytest run (the tests' symbol table).

    Through pluggy, as in a sweep: a plugin manager with pytest's conventions and the hookspecs
    holds every built-in plugin under its name, and :func:`~pytest_sweep.matrix.sources.declared_symbols`
    calls their ``pytest_sweep_declare_symbols``.
    """
    import importlib

    from pytest_sweep import BUILTIN_PLUGINS
    from pytest_sweep.matrix import hookspecs
    from pytest_sweep.matrix.sources import declared_symbols
    from pytest_sweep.plugins import trainer_hookspecs

    pm = pytest.PytestPluginManager()
    pm.add_hookspecs(hookspecs)
    pm.add_hookspecs(trainer_hookspecs)
    for name, module_name in BUILTIN_PLUGINS.items():
        pm.register(importlib.import_module(module_name), name)
    return declared_symbols(pm)


#: The symbols declared in a process that collected no range config (``pytest-sweep report DIR``).
_DECLARED = pytest.StashKey[SymbolTable]()


def _symbols(config: pytest.Config) -> SymbolTable:
    """The sweep's symbols: those its range configs were checked against, else every registered
    plugin's ``pytest_sweep_declare_symbols`` (``pytest-sweep report DIR``: the built-in plugins and
    the installed ones)."""
    from pytest_sweep.matrix.sources import SOURCES_KEY, collect_symbols

    sources = config.stash.get(SOURCES_KEY, None)
    if sources is not None:
        return sources.symbols
    if _DECLARED not in config.stash:
        config.stash[_DECLARED] = collect_symbols(config)
    return config.stash[_DECLARED]


def _limit(config: pytest.Config) -> int:
    """The sweep's ``--sweep-max-combinations`` (the next sweep must run under it as is)."""
    try:
        return sweep_options(config).max_combinations
    except (ValueError, pytest.UsageError):
        return DEFAULT_MAX_COMBINATIONS


def write(
    sweep_dir: Path,
    records: list[dict[str, Any]],
    imp: Importance,
    symbols: SymbolTable | None,
    limit: int = DEFAULT_MAX_COMBINATIONS,
) -> Refinement | None:
    """Write ``refine_range`` (None when it is not written: no trial passed, or it cannot be)."""
    ref = refine(records, imp, symbols, limit)
    text, _ = rendered(ref, sweep_dir.resolve().name, symbols)
    path = storage.sweep_path(sweep_dir, REFINE_RANGE)
    if text is not None:
        storage.write_text_atomic(path, text)
        return ref
    # no next sweep (and none left from an earlier run into this folder)
    path.unlink(missing_ok=True)
    return None


def section(
    sweep_dir: Path,
    records: list[dict[str, Any]],
    imp: Importance,
    symbols: SymbolTable | None,
    limit: int = DEFAULT_MAX_COMBINATIONS,
) -> str:
    """The analysis section for the ``refine_range`` that :func:`write` writes from the same records."""
    ref = refine(records, imp, symbols, limit)
    _, reason = rendered(ref, sweep_dir.resolve().name, symbols)
    return render_section(ref, str(sweep_dir / REFINE_RANGE), reason)


@pytest.hookimpl
def pytest_sweep_finished(config: pytest.Config, sweep: SweepResult) -> None:
    write(sweep.dir, sweep.records, imp_mod.for_sweep(config, sweep), _symbols(config), _limit(config))


@pytest.hookimpl
def pytest_sweep_analysis_sections(config: pytest.Config, sweep: SweepResult) -> str | None:
    if sweep.running:
        return None
    return section(sweep.dir, sweep.records, imp_mod.for_sweep(config, sweep), _symbols(config), _limit(config))
