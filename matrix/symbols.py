"""Config symbols: what a plugin consumes, with its type, default and help.

Every ``CONFIG_*`` key in a range config must be declared by some plugin through
``pytest_sweep_declare_symbols``; a key nobody declares is an error naming ``file:line``
(the reference silently ignored such keys, so whole sweeps trained one config).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from pytest_sweep.matrix.errors import RangeConfigError

TYPES = ("bool", "int", "float", "str")
_TRUE = {"y", "yes", "true", "1", "on"}
_FALSE = {"n", "no", "false", "0", "off"}
#: The largest decimal exponent an int or float symbol takes (``int(Decimal("1e999999"))`` runs for minutes).
MAX_EXPONENT = 300


def finite_decimal(text: str, max_exponent: int | None = None) -> Decimal | None:
    """``text`` as an exact finite number, or None (not a number, nan or inf).  With ``max_exponent``
    a number whose decimal exponent is larger in size (``1e999999``, ``1e-999999``) is None too."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    if not value.is_finite() or (max_exponent is not None and abs(value.adjusted()) > max_exponent):
        return None
    return value


@dataclass(frozen=True)
class Symbol:
    """One config symbol a plugin consumes.

    :param name: the full key, e.g. ``CONFIG_ADAMWPRUNE_BETA1``.
    :param type: ``"bool"`` (``y``/``n``), ``"int"``, ``"float"`` or ``"str"``.
    :param default: the value used when a config does not set it (``None``: the
        consumer picks one, e.g. the optimizer's own learning rate).
    :param help: one line shown by ``pytest --sweep-symbols``.
    :param choices: for ``str`` symbols, the accepted values.
    :param low/high: inclusive bounds for numbers.
    """

    name: str
    type: str
    default: Any
    help: str
    choices: tuple[str, ...] | None = None
    low: float | None = None
    high: float | None = None
    plugin: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError(f"symbol {self.name}: type must be one of {TYPES}, not {self.type!r}")

    def coerce(self, raw: str) -> Any:
        """Turn a raw config string into a typed value; ``ValueError`` names the fix."""
        text = raw.strip()
        if self.type == "bool":
            low = text.lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError(f"{self.name}={raw} is not a boolean; use y or n")
        if self.type in ("int", "float"):
            try:
                num = Decimal(text)
            except InvalidOperation:
                raise ValueError(f"{self.name}={raw} is not a number; {self.help_hint()}") from None
            # nan/inf slipped past the bounds (nan compares false) or crashed int() (OverflowError,
            # InvalidOperation for sNaN); a huge exponent made int() run for minutes.
            if not num.is_finite():
                raise ValueError(f"{self.name}={raw} is not a finite number; {self.help_hint()}")
            if num.adjusted() > MAX_EXPONENT:
                raise ValueError(f"{self.name}={raw} is too large; {self.help_hint()}")
            if self.type == "int":
                if num != num.to_integral_value():
                    raise ValueError(f"{self.name}={raw} must be a whole number")
                value: Any = int(num)
            else:
                value = float(num)
                if value == 0 and num != 0:
                    raise ValueError(
                        f"{self.name}={raw} is too small for a float (it would be 0.0); {self.help_hint()}"
                    )
            if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
                raise ValueError(f"{self.name}={raw} is out of range; {self.help_hint()}")
            return value
        if self.choices is not None and text not in self.choices:
            raise ValueError(f"{self.name}={raw} is not one of {'|'.join(self.choices)}")
        return text

    def help_hint(self) -> str:
        parts = [self.type]
        if self.low is not None and self.high is not None:
            parts.append(f"from {self.low:g} to {self.high:g}")
        elif self.low is not None:
            parts.append(f"at least {self.low:g}")
        elif self.high is not None:
            parts.append(f"at most {self.high:g}")
        if self.choices:
            parts.append("one of " + "|".join(self.choices))
        return "expected " + ", ".join(parts)

    def render(self, value: Any) -> str:
        """Inverse of :meth:`coerce` for config files: ``True`` -> ``y``."""
        if isinstance(value, bool):
            return "y" if value else "n"
        return str(value)


class SymbolTable:
    """All declared symbols, by name; duplicate declarations must agree on type."""

    def __init__(self, symbols: Iterable[Symbol] = ()) -> None:
        self._by_name: dict[str, Symbol] = {}
        for sym in symbols:
            self.add(sym)

    def add(self, sym: Symbol) -> None:
        old = self._by_name.get(sym.name)
        if old is not None and old.type != sym.type:
            raise ValueError(
                f"symbol {sym.name} declared as {old.type} by {old.plugin or '?'} "
                f"and as {sym.type} by {sym.plugin or '?'}"
            )
        if old is None:
            self._by_name[sym.name] = sym

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __getitem__(self, name: str) -> Symbol:
        return self._by_name[name]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(sorted(self._by_name.values(), key=lambda s: s.name))

    def __len__(self) -> int:
        return len(self._by_name)

    def defaults(self) -> dict[str, Any]:
        return {s.name: s.default for s in self}

    def suggest(self, name: str) -> str:
        # Compare without the CONFIG_ prefix that every symbol shares: with it, CONFIG_NOPE
        # was "close" to CONFIG_COMPILE, and BATCH_SIZE was not close to CONFIG_BATCH_SIZE.
        by_short = {n.removeprefix("CONFIG_"): n for n in self._by_name}
        close = difflib.get_close_matches(name.removeprefix("CONFIG_"), list(by_short), n=1, cutoff=0.75)
        return f"; did you mean {by_short[close[0]]}?" if close else ""

    def check_known(self, key: str, path: str, line: int) -> None:
        if key not in self._by_name:
            raise RangeConfigError(
                path,
                line,
                f"{key} is not a known symbol: no installed plugin consumes it{self.suggest(key)} "
                "(pytest --sweep-symbols lists them)",
            )

    def check_all_known(self, keys: Iterable[tuple[str, int]], path: str) -> None:
        """Every ``(key, line)`` must be declared; one error names all the unknown ones, in order.

        A reference defconfig carries dozens of symbols: naming one per run made cleaning up a
        file take as many runs as it had unknown symbols.
        """
        unknown = [(key, line) for key, line in keys if key not in self._by_name]
        if len(unknown) == 1:
            self.check_known(unknown[0][0], path, unknown[0][1])
        if unknown:
            listed = "\n".join(f"  {path}:{line}: {key}{self.suggest(key)}" for key, line in unknown)
            raise RangeConfigError(
                path,
                None,
                f"{len(unknown)} unknown symbols: no installed plugin consumes them "
                f"(pytest --sweep-symbols lists them); fix or remove each:\n{listed}",
            )

    def coerce(self, key: str, raw: str, path: str, line: int) -> Any:
        self.check_known(key, path, line)
        try:
            return self._by_name[key].coerce(raw)
        except ValueError as exc:
            raise RangeConfigError(path, line, str(exc)) from None
