from __future__ import annotations


class RangeConfigError(Exception):
    """A mistake in a range config, reported as one ``file:line: message`` line."""

    def __init__(self, path: str, line: int | None, message: str) -> None:
        super().__init__(path, line, message)
        self.path = str(path)
        self.line = line
        self.message = message

    def __str__(self) -> str:
        path = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in self.path)
        where = path if self.line is None else f"{path}:{self.line}"
        return f"{where}: {clip(self.message)}"


def printable(text: str) -> str:
    r"""``text`` as one line a terminal or a text file shows as it is: every character that is not
    printable (line breaks, tabs, ANSI escapes, NUL, bidi overrides, lone surrogates) written as its
    Python escape (``\n``, ``\x1b``, ``\u202e``).  A value echoed into a report never starts a line
    of its own or moves the cursor."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


#: Longest run of non-blank characters an error line shows before it is cut.
CLIP_RUN = 200


def clip(text: str) -> str:
    """``text`` made safe for the terminal, line by line: control characters escaped, huge values cut.

    A value of 100,000 characters, or one holding NUL bytes, would otherwise be echoed in full
    (or raw) by an error message.
    """
    return "\n".join(_clip_line(line) for line in text.split("\n"))


def _clip_line(line: str) -> str:
    out: list[str] = []
    for word in line.split(" "):
        safe = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in word)
        if len(safe) > CLIP_RUN:
            safe = f"{safe[: CLIP_RUN - 10]}...({len(word)} characters)"
        out.append(safe)
    return " ".join(out)
