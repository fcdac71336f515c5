"""Writing the range-config language: values, assignments and comments that read back as written.

Every file this project writes in the range-config language (``refine_range``, the configs of
``--sweep-generate``, each trial's ``config.txt``) is made of these lines, so that
:func:`~pytest_sweep.matrix.rangeconfig.parse_text` gives back exactly the values they were written
from: a string keeps its ``|``, ``:``, ``#``, quotes, backslashes and spaces, and never becomes
choices, a range or a comment; a name or a value echoed into a comment never starts a line of its
own.  What the language cannot hold (a line break in a value, a key that is not a symbol name)
raises :class:`Unwritable` instead of being written wrong.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pytest_sweep.matrix.errors import printable as one_line
from pytest_sweep.matrix.rangeconfig import _range_parts, _same_value

__all__ = ["Unwritable", "assignment", "comment", "one_line", "quote", "value"]

_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: A value that reads back as itself without quotes: not empty, no space (``str.strip``'s) at either
#: end, no ``"``, ``|``, ``#`` (syntax) and no line break (the parser splits lines at ``\r`` and
#: ``\n``); and, checked apart, not a range (:func:`_bare`).
_PLAIN_RE = re.compile(r'[^\s"|#](?:[^"|#\r\n]*[^\s"|#])?')
_NOT_SET_RE = re.compile(r"#\s*CONFIG_\w+ is not set")


class Unwritable(ValueError):
    """A key or value the range-config language cannot hold; the message names it and why."""


def _check(text: str, what: str) -> None:
    if "\n" in text or "\r" in text:
        raise Unwritable(f"{what} {one_line(text)!s} holds a line break, which a range config cannot hold")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise Unwritable(f"{what} {one_line(text)!s} is not valid Unicode text (a lone surrogate)") from None


def quote(text: str) -> str:
    r"""``text`` as a double-quoted value that reads back as exactly ``text``, a string.

    A backslash, a double quote and ``|`` get a backslash before them, and so does ``:`` in a
    text that would read as a range: the value is never split into choices or expanded
    (``a|b`` -> ``"a\|b"``, ``1:2:3`` -> ``"1\:2\:3"``, ``12:30`` stays ``"12:30"``).
    """
    _check(text, "value")
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("|", "\\|")
    if ":" in text and _range_parts(text) is not None:
        escaped = escaped.replace(":", "\\:")
    return f'"{escaped}"'


def _bare(text: str) -> bool:
    """Whether ``text`` reads back as itself without quotes (a number, ``y``, a plain word)."""
    return _PLAIN_RE.fullmatch(text) is not None and (":" not in text or _range_parts(text) is None)


def value(text: str, *, string: bool) -> str:
    """One value as written in a range config: quoted when ``string`` or when bare it would not
    read back as itself (an empty value, ``1:2:3``, a ``|``...), else bare (``0.5``, ``y``)."""
    if not string and _bare(text):
        _check(text, "value")
        return text
    return quote(text)


def assignment(key: str, values: Sequence[str], *, string: bool) -> str:
    """``KEY=v1|v2|...``: one line that reads back as ``key`` with exactly ``values``, in order.

    All values are quoted, or none (the parser refuses a mix): quoted when ``string`` or when any
    of them needs quotes.  Raises :class:`Unwritable` for a key that is not a symbol name, no
    values, or values that would read back as one (``0.1`` and ``0.10``: the same number).
    """
    if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
        raise Unwritable(f"key {one_line(str(key))} is not a symbol name (letters, digits and '_')")
    if not values:
        raise Unwritable(f"{key} has no value to write")
    quoted = string or not all(_bare(v) for v in values)
    if quoted:
        rendered = [quote(v) for v in values]
    else:
        for v in values:
            _check(v, "value")  # a bare value holds no line break; a lone surrogate is still refused
        rendered = list(values)
    if len(values) > 1:
        seen = {_same_value(v, quoted) for v in values}
        if len(seen) != len(values):
            raise Unwritable(f"{key}: the values {one_line('|'.join(values))} repeat a value")
    return f"{key}={'|'.join(rendered)}"


def comment(text: str) -> str:
    """``# text`` as one comment line that no parser reads as anything else.

    Names and values echoed into it (a path with a line break, ``CONFIG_X=1``) stay inside the
    comment; a comment that would read as kconfig's ``# CONFIG_X is not set`` is bracketed.
    """
    line = f"# {one_line(text)}"
    return f"# ({one_line(text)})" if _NOT_SET_RE.fullmatch(line) else line
