"""The search space of a sampled sweep: the range config's swept keys as distributions.

Each swept key becomes one dimension (``CONFIG_SEED`` excepted: swept seeds are replicates, run
for every sampled configuration):

- ``ordinal``: numeric values (``0.001|0.01|0.1``, ``1:1:5``), sorted ascending; the sampler sees
  the index ``0 .. k-1`` (an integer distribution, so model-based samplers use the order);
- ``categorical``: anything else (``y|n``, ``"sgd"|"adamw"``), in file order;
- ``float`` / ``int``: with ``--sweep-continuous``, a numeric range ``a:s:b`` offered as the
  interval ``[a, b]`` (whole numbers when every value is one).

Fixed keys stay fixed.  A proposal maps back to the config's raw strings, so a sampled trial is
built, typed and recorded exactly like a grid trial.  Pure: Optuna is imported only by
:meth:`SearchSpace.distributions`.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from pytest_sweep.matrix.rangeconfig import RangeConfig
from pytest_sweep.matrix.symbols import finite_decimal

SEED_KEY = "CONFIG_SEED"


def render_float(value: float) -> str:
    """A continuous value as config text: 6 significant digits, no exponent for ordinary sizes."""
    text = f"{value:.6g}"
    if "e" in text:
        return text
    return text if "." in text else f"{text}.0"


@dataclass(frozen=True)
class Dimension:
    """One swept key: ``kind`` is ordinal, categorical, float or int; ``values`` its raw values
    (sorted for ordinal; ``(low, high)`` as text for float and int)."""

    key: str
    kind: str
    values: tuple[str, ...]

    def raw(self, param: Any) -> str:
        """The sampler's value for this key as the config's raw text."""
        if self.kind == "ordinal":
            return self.values[int(param)]
        if self.kind == "categorical":
            return str(param)
        if self.kind == "int":
            return str(int(param))
        return render_float(float(param))

    def param(self, raw: str) -> Any:
        """The raw text as the sampler's value (inverse of :meth:`raw`)."""
        if self.kind == "ordinal":
            return self.values.index(raw)
        if self.kind == "categorical":
            return raw
        if self.kind == "int":
            return int(raw)
        return float(raw)

    @property
    def size(self) -> float:
        """How many distinct values the dimension holds."""
        if self.kind == "float":
            return math.inf
        if self.kind == "int":
            return float(int(self.values[1]) - int(self.values[0]) + 1)
        return float(len(self.values))


@dataclass(frozen=True)
class SearchSpace:
    """The dimensions of a range config, and its swept seeds (replicates)."""

    dims: tuple[Dimension, ...]
    seeds: tuple[str, ...] = ()

    @classmethod
    def from_range(cls, rc: RangeConfig, continuous: bool = False) -> SearchSpace:
        dims: list[Dimension] = []
        seeds: tuple[str, ...] = ()
        for param in rc.swept:
            if param.key == SEED_KEY:
                seeds = param.values
                continue
            numbers = [finite_decimal(v) for v in param.values] if not param.quoted else [None]
            if all(n is not None for n in numbers):
                nums = [n for n in numbers if n is not None]
                if continuous and param.kind == "range":
                    lo, hi = min(nums), max(nums)
                    whole = all("." not in v and "e" not in v.lower() for v in param.values)
                    dims.append(Dimension(param.key, "int" if whole else "float", (str(lo), str(hi))))
                    continue
                order = sorted(range(len(nums)), key=lambda i: (nums[i], i))
                dims.append(Dimension(param.key, "ordinal", tuple(param.values[i] for i in order)))
            else:
                dims.append(Dimension(param.key, "categorical", tuple(param.values)))
        return cls(tuple(dims), seeds)

    @property
    def size(self) -> float:
        """How many distinct configurations the space holds (infinite with a continuous dimension)."""
        return math.prod(d.size for d in self.dims) if self.dims else 1.0

    def distributions(self) -> dict[str, Any]:
        """Optuna's distributions, by key."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        out: dict[str, Any] = {}
        for d in self.dims:
            if d.kind == "ordinal":
                out[d.key] = IntDistribution(0, len(d.values) - 1)
            elif d.kind == "categorical":
                out[d.key] = CategoricalDistribution(list(d.values))
            elif d.kind == "int":
                out[d.key] = IntDistribution(int(d.values[0]), int(d.values[1]))
            else:
                out[d.key] = FloatDistribution(float(d.values[0]), float(d.values[1]))
        return out

    def raw(self, params: dict[str, Any]) -> dict[str, str]:
        """A proposal's parameters as the config's raw strings, by key."""
        return {d.key: d.raw(params[d.key]) for d in self.dims}

    def signature(self) -> str:
        """A short fingerprint of the space (a resumed study must have the same)."""
        text = json.dumps([[d.key, d.kind, list(d.values)] for d in self.dims] + [list(self.seeds)])
        return hashlib.sha1(text.encode()).hexdigest()[:16]

    def describe(self) -> str:
        parts = []
        for d in self.dims:
            if d.kind in ("float", "int"):
                parts.append(f"{d.key} in [{d.values[0]}, {d.values[1]}] ({d.kind})")
            else:
                parts.append(f"{d.key} ({len(d.values)} {d.kind} values)")
        return "; ".join(parts)
