r"""Parse a range config (the sweep guide's format) into ordered parameter specs.

One ``KEY=VALUE`` per line. A value is a single value (``0.999``, ``y``, ``"state"``), a list of
choices (``0.85|0.87|0.89``) or an inclusive decimal range (``0.03:0.02:0.09``); a double-quoted
whole value with choices or a range (``"0.85|0.87"``, ``"0.03:0.02:0.09"``) expands the same way,
as the reference's generator does. Inside double quotes a backslash makes the next ``\``,
``"``, ``|`` or ``:`` literal (``"a\|b"`` is the one string ``a|b``, ``"1\:2\:3"`` is not a range,
``"say \"hi\""`` holds quotes); any other backslash is itself (``"C:\data"``).
:mod:`~pytest_sweep.matrix.rangewrite` writes values so. Lines that start with ``#`` are comments, except
``# CONFIG_X is not set`` (kconfig's spelling), kept as an ``"unset"`` parameter: ``n`` for a bool
symbol, the symbol's default for any other type (:func:`resolve_not_set`, once the types are known).
An inline comment starts at the first ``#`` outside double quotes. Values stay strings here:
the plugin types them later from the symbols its plugins declare.

Every problem raises :class:`~pytest_sweep.matrix.errors.RangeConfigError` with ``file:line`` and the fix.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal, DecimalTuple
from pathlib import Path

from pytest_sweep.matrix.errors import RangeConfigError

#: The most values a single ``start:step:end`` range may produce.
MAX_RANGE_VALUES = 1_000_000
#: The most digits a range value may have (guards against ``1e999999``).
_MAX_DIGITS = 60

_EXAMPLE = "CONFIG_BATCH_SIZE=128"
_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NOT_SET_RE = re.compile(r"#\s*(CONFIG_\w+) is not set")
_NUMBER_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


@dataclass(frozen=True)
class Param:
    """One ``KEY=VALUE`` line of a range config.

    :param key: the symbol, e.g. ``CONFIG_ADAMWPRUNE_BETA1``
    :param values: canonical string values in the order they will be swept, quotes removed
    :param line: 1-based line number in the file
    :param kind: ``"fixed"``, ``"choice"``, ``"range"`` or ``"unset"`` (``# CONFIG_X is not set``:
        ``n`` for a bool, the default for any other type; see :func:`resolve_not_set`)
    :param quoted: the value (every value) was written in double quotes, so it is a string
    """

    key: str
    values: tuple[str, ...]
    line: int
    kind: str
    quoted: bool = False

    @property
    def swept(self) -> bool:
        """Whether this parameter takes more than one value."""
        return len(self.values) > 1


@dataclass(frozen=True)
class Run:
    """One point of an explicit run list, which a plugin may put in place of a product of axes.

    The reference's defconfigs describe runs that are not a Cartesian product (a run without
    pruning has no sparsity; only AdamWPrune has variants), so a plugin that reads them
    (:func:`~pytest_sweep.matrix.hookspecs.pytest_sweep_rewrite_range_config`) lists the runs.

    :param label: the run's name, shown in its trial id and folder (``resnet18_sgd_movement_70``)
    :param values: ``KEY -> value`` of this run; every key is also a fixed parameter of the config
        (its line, quoting and default value), which the run's value replaces
    """

    label: str
    values: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RangeConfig:
    """A parsed range config: its parameters in file order.

    :param runs: an explicit run list (empty: none); each run is crossed with the swept
        parameters, runs outermost, so the config has ``len(runs) x`` their product combinations.
    """

    path: str
    params: tuple[Param, ...]
    runs: tuple[Run, ...] = ()

    def param(self, key: str) -> Param | None:
        """The parameter named ``key``, or ``None``."""
        for param in self.params:
            if param.key == key:
                return param
        return None

    @property
    def swept(self) -> tuple[Param, ...]:
        """Parameters with more than one value, sorted by key (the expansion order)."""
        return tuple(sorted((p for p in self.params if p.swept), key=_by_key))

    @property
    def fixed(self) -> tuple[Param, ...]:
        """Parameters with exactly one value, sorted by key."""
        return tuple(sorted((p for p in self.params if not p.swept), key=_by_key))

    @property
    def count(self) -> int:
        """Number of combinations (product of the swept parameters' sizes, times the runs; at least 1)."""
        return math.prod(len(p.values) for p in self.params) * max(1, len(self.runs))


@dataclass(frozen=True)
class Rewritten:
    """What a plugin's ``pytest_sweep_rewrite_range_config`` returns.

    :param config: the config to expand instead of the parsed one (its keys must be declared symbols)
    :param notes: lines shown once for this file after collection (e.g. what has no effect)
    """

    config: RangeConfig
    notes: tuple[str, ...] = ()


def resolve_not_set(rc: RangeConfig, is_bool: Callable[[str], bool]) -> RangeConfig:
    """``# CONFIG_X is not set`` as kconfig means it: ``n`` for a bool, the default for other types.

    ``is_bool(key)`` says whether the symbol is a bool; other ``"unset"`` parameters are dropped,
    so the symbol keeps its default (a string symbol no longer gets the value ``n``).
    """
    if not any(p.kind == "unset" for p in rc.params):
        return rc
    params = [
        p if p.kind != "unset" else replace(p, kind="fixed") for p in rc.params if p.kind != "unset" or is_bool(p.key)
    ]
    return replace(rc, params=tuple(params))


def quoted_keys(rc: RangeConfig) -> set[str]:
    """Keys whose values were written in double quotes (strings, re-quoted when rendered)."""
    return {p.key for p in rc.params if p.quoted}


def parse_file(path: str | os.PathLike[str]) -> RangeConfig:
    """Read and parse the range config at ``path``."""
    name = os.fspath(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise RangeConfigError(
            name, None, f"cannot read range config: {reason}; check the --range-config path"
        ) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        reason = f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        raise RangeConfigError(
            name, None, f"cannot read range config: {reason}; check the --range-config path"
        ) from None
    return parse_text(text, name)


def parse_text(text: str, path: str = "<string>") -> RangeConfig:
    """Parse range-config ``text``; ``path`` names it in error messages."""
    params: list[Param] = []
    first_line: dict[str, int] = {}
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    for lineno, raw in enumerate(lines, start=1):
        try:
            param = _parse_line(raw.strip(), lineno)
        except _LineError as exc:
            raise RangeConfigError(path, lineno, str(exc)) from None
        if param is None:
            continue
        if param.key in first_line:
            raise RangeConfigError(
                path,
                lineno,
                f"{param.key} is already set on line {first_line[param.key]}; "
                "keep one definition (list several values as a|b)",
            )
        first_line[param.key] = lineno
        params.append(param)
    if not params:
        what = "the file is empty" if not text.strip() else "no parameters found"
        raise RangeConfigError(path, None, f"{what}; add at least one CONFIG_...=value line")
    return RangeConfig(path=path, params=tuple(params))


class _LineError(Exception):
    """A problem on one line; :func:`parse_text` adds the path and line number."""


def _by_key(param: Param) -> str:
    return param.key


def _short(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def _parse_line(line: str, lineno: int) -> Param | None:
    if not line:
        return None
    if line.startswith("#"):
        match = _NOT_SET_RE.fullmatch(line)
        return Param(match.group(1), ("n",), lineno, "unset") if match else None
    body = _strip_comment(line)
    key, eq, value = body.partition("=")
    if not eq:
        raise _LineError(f"expected KEY=VALUE, e.g. {_EXAMPLE}; got {_short(body)}")
    key, value = key.strip(), value.strip()
    if not key:
        raise _LineError(f"missing key before '='; write KEY=VALUE, e.g. {_EXAMPLE}")
    if not _KEY_RE.fullmatch(key):
        raise _LineError(
            f"invalid key {_short(key)}; use letters, digits and '_' "
            "(not starting with a digit), e.g. CONFIG_BATCH_SIZE"
        )
    if not value:
        raise _LineError(f"{key} has no value; write a value (e.g. {key}=y) or remove the line")
    kind, values, quoted = _parse_value(key, value)
    return Param(key, values, lineno, kind, quoted)


#: Inside double quotes, a backslash before one of these makes it literal (kconfig escapes ``\\``
#: and ``"``; ``|`` and ``:`` so that a string holding them is neither choices nor a range).
ESCAPED = '\\"|:'


def _unquoted(text: str, char: str) -> list[int]:
    """Positions of ``char`` outside double quotes; raises on an unterminated quote."""
    positions: list[int] = []
    in_quotes = False
    i = 0
    while i < len(text):
        c = text[i]
        if in_quotes and c == "\\" and text[i + 1 : i + 2] in tuple(ESCAPED):
            i += 2  # an escaped character inside quotes
            continue
        if c == '"':
            in_quotes = not in_quotes
        elif c == char and not in_quotes:
            if char == "#":  # everything after an inline comment is ignored
                return [i]
            positions.append(i)
        i += 1
    if in_quotes:
        hint = " (a backslash before a quote makes it part of the value: write \\\\ for a backslash)"
        raise _LineError(
            f"unterminated double quote in {_short(text)}; add the closing '\"'" + (hint if '\\"' in text else "")
        )
    return positions


def _split_escaped(text: str, char: str) -> list[str]:
    """``text`` (the inside of a quoted value, escapes kept) split at each ``char`` not escaped."""
    pieces: list[str] = []
    start = i = 0
    while i < len(text):
        if text[i] == "\\" and text[i + 1 : i + 2] in tuple(ESCAPED):
            i += 2
            continue
        if text[i] == char:
            pieces.append(text[start:i])
            start = i + 1
        i += 1
    pieces.append(text[start:])
    return pieces


def unescape(text: str) -> str:
    r"""The inside of a quoted value with its escapes resolved (``a\|b`` -> ``a|b``)."""
    if "\\" not in text:
        return text
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "\\" and text[i + 1 : i + 2] in tuple(ESCAPED):
            out.append(text[i + 1])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _strip_comment(line: str) -> str:
    hashes = _unquoted(line, "#")
    return line[: hashes[0]].rstrip() if hashes else line


def _split_choices(value: str) -> list[str]:
    items: list[str] = []
    start = 0
    for pos in _unquoted(value, "|"):
        items.append(value[start:pos].strip())
        start = pos + 1
    items.append(value[start:].strip())
    return items


def _unquote(key: str, item: str) -> tuple[str, bool]:
    r"""``"abc"`` -> (``abc``, True); ``abc`` -> (``abc``, False); misplaced quotes raise.

    The inside of a quoted item keeps its escapes (``"a\|b"`` -> ``a\|b``): whether it expands
    into choices or a range is decided on them; :func:`unescape` gives the value.
    """
    if '"' not in item:
        return item, False
    if item[0] == '"' and _closes_last(item):
        return item[1:-1], True
    raise _LineError(f'misplaced double quote in {_short(item)}; quote the whole value, e.g. {key}="state"')


def _closes_last(item: str) -> bool:
    """Whether the quote that opens ``item`` is closed by its last character (and by no other)."""
    i = 1
    while i < len(item):
        c = item[i]
        if c == "\\" and item[i + 1 : i + 2] in tuple(ESCAPED):
            i += 2
            continue
        if c == '"':
            return i == len(item) - 1
        i += 1
    return False


def _parse_value(key: str, value: str) -> tuple[str, tuple[str, ...], bool]:
    items = _split_choices(value)
    if len(items) == 1:
        text, quoted = _unquote(key, value)
        if not quoted:
            parts = _range_parts(text)
            if parts is not None:
                return "range", _expand_range(*parts), False
            return "fixed", (text,), False
        # the reference's generator strips the quotes before it looks for '|' and ':' (escaped
        # ones excepted: they are the value's own)
        pieces = _split_escaped(text, "|")
        if len(pieces) > 1:
            tokens = [(p.strip(), unescape(p.strip()), False) for p in pieces]
            return "choice", _choices(key, text, tokens)[0], True
        parts = _range_parts(text)
        if parts is not None:
            return "range", _expand_range(*parts), True
        return "fixed", (unescape(text),), True
    tokens = []
    for item in items:
        raw, quoted = _unquote(key, item) if item else ("", False)
        tokens.append((raw, unescape(raw) if quoted else raw, quoted))
    values, quoted = _choices(key, value, tokens)
    return "choice", values, quoted


def _choices(key: str, value: str, tokens: list[tuple[str, str, bool]]) -> tuple[tuple[str, ...], bool]:
    """The values of a list of choices, each ``(as written, its value, quoted)``; whether quoted."""
    values: list[str] = []
    quoting: set[bool] = set()
    seen: dict[str, int] = {}
    for pos, (raw, text, quoted) in enumerate(tokens, start=1):
        if not raw and not quoted:
            raise _LineError(
                f"empty choice at position {pos} of {len(tokens)} in {_short(value)}; "
                "remove the extra '|' or write a value there"
            )
        if not quoted and _range_parts(raw) is not None:
            raise _LineError(
                f"range {text} cannot be one of several choices; list its values with '|' or use the range alone"
            )
        same = _same_value(text, quoted)
        if same in seen:
            raise _LineError(
                f"duplicate choice {_short(text)} at positions {seen[same]} and {pos}; list each value once"
            )
        seen[same] = pos
        quoting.add(quoted)
        values.append(text)
    if len(quoting) > 1:
        raise _LineError(
            f'some choices in {_short(value)} are quoted and some are not; quote all of them ("a"|"b") or none'
        )
    return tuple(values), quoting.pop()


def _same_value(text: str, quoted: bool) -> str:
    """A key under which equal values meet: ``0.001`` and ``1e-3`` are one number."""
    if not quoted and _NUMBER_RE.fullmatch(text):
        try:
            return "number:" + str(Decimal(text).normalize())
        except ArithmeticError:
            pass
    return "text:" + text


def _range_parts(text: str) -> tuple[str, str, str] | None:
    """The stripped ``start, step, end`` of a numeric range, or ``None`` for any other text."""
    parts = text.split(":")
    if len(parts) != 3:
        return None
    start, step, end = (p.strip() for p in parts)
    if all(_NUMBER_RE.fullmatch(p) for p in (start, step, end)):
        return start, step, end
    return None


def _expand_range(start_s: str, step_s: str, end_s: str) -> tuple[str, ...]:
    """Exact inclusive decimal range, rendered with the inputs' largest number of places.

    The numbers are scaled to integers (``0.03:0.02:0.09`` -> ``3:2:9`` in hundredths), so no
    value drifts and each is rendered with exactly ``places`` decimals.
    """
    spec = f"{start_s}:{step_s}:{end_s}"
    numbers = [Decimal(s).as_tuple() for s in (start_s, step_s, end_s)]
    exponents = [n.exponent for n in numbers]
    assert all(isinstance(e, int) for e in exponents)  # _NUMBER_RE admits no inf or nan
    places = max(0, *(-int(e) for e in exponents))
    if max(len(n.digits) + int(n.exponent) + places for n in numbers) > _MAX_DIGITS:
        raise _LineError(
            f"{spec} needs more than {_MAX_DIGITS} digits per value; use fewer digits or a smaller exponent"
        )
    start, step, end = (_scaled(n, places) for n in numbers)

    def show(number: int) -> str:
        if not places:
            return str(number)
        digits = str(abs(number)).rjust(places + 1, "0")
        return f"{'-' if number < 0 else ''}{digits[:-places]}.{digits[-places:]}"

    if step <= 0:
        raise _LineError(
            f"step {show(step)} in {spec} must be greater than 0; write start:step:end, e.g. 0.03:0.02:0.09"
        )
    if start > end:
        raise _LineError(
            f"start {show(start)} is greater than end {show(end)} in {spec}; "
            f"write the smaller number first, e.g. {show(end)}:{show(step)}:{show(start)}"
        )
    steps, remainder = divmod(end - start, step)
    count = steps + 1
    if count > MAX_RANGE_VALUES:
        raise _LineError(
            f"{spec} gives {count} values, more than the {MAX_RANGE_VALUES} one range may have; use a larger step"
        )
    if remainder:
        below = start + steps * step
        if count <= 6:
            shown = ", ".join(map(show, range(start, below + 1, step)))
        else:
            shown = ", ".join(map(show, range(start, start + 3 * step, step)))
            shown += f", ..., {show(below)}"
        raise _LineError(
            f"{spec} does not land on {show(end)} (it gives {shown}); "
            f"use an end of {show(below)} or {show(below + step)}"
        )
    return tuple(map(show, range(start, end + 1, step)))


def _scaled(number: DecimalTuple, places: int) -> int:
    """``number * 10**places`` as an exact integer (``places`` covers its decimals)."""
    zeros = "0" * (int(number.exponent) + places)
    magnitude = int("".join(map(str, number.digits)) + zeros)
    return -magnitude if number.sign else magnitude
