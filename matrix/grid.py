"""Expand a range config into its combinations, in the reference order.

Swept keys are sorted alphabetically and combined as a Cartesian product with the last key
varying fastest; the combinations are named ``config_001``, ``config_002``, ... in that order.
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
    """

    index: int
    name: str
    values: dict[str, str]
    swept: dict[str, str]
    lines: dict[str, int]
    source: str
    quoted: frozenset[str] = frozenset()


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
