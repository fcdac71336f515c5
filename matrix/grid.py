"""Expand a range config into its combinations, in the reference order.

Swept keys are sorted alphabetically and combined as a Cartesian product with the last key
varying fastest; the combinations are named ``config_001``, ``config_002``, ... in that order.
A config with an explicit run list (:class:`~pytest_sweep.matrix.rangeconfig.Run`, from a plugin's
rewrite) crosses each run, in list order, with that product.
The order depends only on the file's contents, so every worker and machine agrees on it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

from pytest_sweep.matrix.errors import RangeConfigError
from pytest_sweep.matrix.rangeconfig import RangeConfig, quoted_keys


@dataclass(frozen=True, slots=True)
class Combination:
    """One point of the sweep grid.

    :param index: 1-based position in the sweep
    :param name: ``config_001``... (zero-padded to at least three digits)
    :param values: every key (fixed and swept) and its value, sorted by key
    :param swept: the swept keys only and their values, sorted by key
    :param lines: key -> line in ``source`` that set it (for error messages)
    :param source: the file the combination came from (range file or generated config)
    :param quoted: keys whose values were written in double quotes (strings)
    :param label: the run's name (and the other swept values) when the config lists its runs
        (``resnet18_sgd_movement_70``); trial ids and folders show it instead of the swept values
    """

    index: int
    name: str
    values: dict[str, str]
    swept: dict[str, str]
    lines: dict[str, int]
    source: str
    quoted: frozenset[str] = frozenset()
    label: str = ""


def expand(rc: RangeConfig, limit: int = 10_000) -> list[Combination]:
    """All combinations of ``rc``; more than ``limit`` is an error (checked before expanding)."""
    count = rc.count
    if count > limit:
        raise RangeConfigError(
            rc.path,
            None,
            f"{count} combinations exceed the limit of {limit}; "
            f"narrow the ranges or raise the limit with --sweep-max-combinations={count}",
        )
    return list(iter_combinations(rc))


def iter_combinations(rc: RangeConfig) -> Iterator[Combination]:
    """Yield the combinations of ``rc`` lazily, in order, without a limit."""
    if rc.runs:
        yield from _iter_runs(rc)
        return
    swept_params = rc.swept
    swept_keys = tuple(p.key for p in swept_params)
    ordered = sorted(rc.params, key=lambda p: p.key)
    # Every combination copies this sorted template and overwrites its swept slots, which
    # keeps the key order without sorting anything per combination.
    template = {p.key: p.values[0] for p in ordered}
    lines = {p.key: p.line for p in ordered}
    quoted = frozenset(quoted_keys(rc))
    name = f"config_{{:0{max(3, len(str(rc.count)))}d}}".format
    source = rc.path
    rows = itertools.product(*(p.values for p in swept_params))
    for index, row in enumerate(rows, start=1):
        swept = dict(zip(swept_keys, row, strict=False))
        values = template.copy()
        values.update(swept)
        yield Combination(
            index=index,
            name=name(index),
            values=values,
            swept=swept,
            lines=lines.copy(),
            source=source,
            quoted=quoted,
        )


def _iter_runs(rc: RangeConfig) -> Iterator[Combination]:
    """The combinations of a config with a run list: each run crossed with the swept parameters.

    A run's keys that differ between runs count as swept (records and tables show them).
    """
    fixed = {p.key: p for p in rc.params if not p.swept}
    for run in rc.runs:
        for key in run.values:
            if key not in fixed:
                raise RangeConfigError(
                    rc.path,
                    None,
                    f"run {run.label}: {key} must be a fixed parameter of the config (a plugin's rewrite)",
                )
    swept_params = rc.swept
    swept_keys = tuple(p.key for p in swept_params)
    ordered = sorted(rc.params, key=lambda p: p.key)
    template = {p.key: p.values[0] for p in ordered}
    varying = {k for k in fixed if len({run.values.get(k, template[k]) for run in rc.runs}) > 1}
    order = sorted(varying | set(swept_keys))
    lines = {p.key: p.line for p in ordered}
    quoted = frozenset(quoted_keys(rc))
    name = f"config_{{:0{max(3, len(str(rc.count)))}d}}".format
    index = 0
    for run in rc.runs:
        for row in itertools.product(*(p.values for p in swept_params)):
            index += 1
            values = template.copy()
            values.update(run.values)
            values.update(zip(swept_keys, row, strict=True))
            extra = "".join(f"-{k.removeprefix('CONFIG_')}={v}" for k, v in zip(swept_keys, row, strict=True))
            yield Combination(
                index=index,
                name=name(index),
                values=values,
                swept={k: values[k] for k in order},
                lines=lines.copy(),
                source=rc.path,
                quoted=quoted,
                label=run.label + extra,
            )
