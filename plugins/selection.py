"""Kconfig-style selection: ``CONFIG_MODEL_SELECT_RESNET18=y`` or ``CONFIG_MODEL="resnet18"``.

The reference configs pick a model or optimizer with one ``*_SELECT_<NAME>=y`` boolean;
ours also accept the plain string symbol.  Both spellings resolve to one name, and a
contradiction is a reason to skip the trial rather than a silent choice.
"""
from __future__ import annotations

from matrix import Symbol, Trial


def select_symbols(prefix: str, names: tuple[str, ...], what: str) -> list[Symbol]:
    return [
        Symbol(f"{prefix}_SELECT_{n.upper()}", "bool", False, f"Select {n} as the {what} (same as {prefix}=\"{n}\")")
        for n in names
    ]


_KEYS: dict[tuple[str, tuple[str, ...]], tuple[tuple[str, str], ...]] = {}


def _select_keys(prefix: str, names: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    keys = _KEYS.get((prefix, names))
    if keys is None:
        keys = _KEYS[(prefix, names)] = tuple((n, f"{prefix}_SELECT_{n.upper()}") for n in names)
    return keys


def resolve(trial: Trial, prefix: str, names: tuple[str, ...]) -> tuple[str | None, str | None]:
    """``(name, None)`` or ``(None, reason)``; name is None when nothing chose one (use the default).

    Collection calls this several times per trial (validation, description), so the
    answer is cached on the trial.
    """
    cache: dict[str, tuple[str | None, str | None]] = trial.__dict__.setdefault("_resolved", {})
    found = cache.get(prefix)
    if found is None:
        found = cache[prefix] = _resolve(trial, prefix, names)
    return found


def _resolve(trial: Trial, prefix: str, names: tuple[str, ...]) -> tuple[str | None, str | None]:
    values = trial.values
    chosen = [n for n, key in _select_keys(prefix, names) if values.get(key)]
    explicit = trial.raw.get(prefix)
    if len(chosen) > 1:
        return None, f"{' and '.join(f'{prefix}_SELECT_{n.upper()}' for n in chosen)} are both y; select one"
    if chosen and explicit is not None and explicit != chosen[0]:
        return None, f'{prefix}_SELECT_{chosen[0].upper()}=y contradicts {prefix}="{explicit}"'
    if chosen:
        return chosen[0], None
    value = values.get(prefix)
    return (str(value) if value is not None else None), None
