"""What the reference pages say, read from the installed code, and rendered as Markdown.

The options, ini values and config symbols come from a real pytest run in a child process (so
whatever registers them, and however lazily, is what the pages show): a small plugin keeps
the parser pytest hands to ``pytest_addoption`` and reads, after ``pytest --sweep-symbols``
ran, the ``sweep`` option group (``Parser.getgroup``, ``OptionGroup.options``: pytest's public
API), the ini values named ``sweep_*`` and every ``pytest_sweep_declare_symbols``
implementation, as ``pytest --sweep-symbols`` does.  The console script is found through its
``console_scripts`` entry point and asked for ``--help``; the record schema is
``records.TrialRecord``'s: its fields, their values in a new record and their meanings.

This module imports neither Sphinx nor pytest-sweep at import time, so the tests use it
directly (``tests/test_docs.py``); ``sweep_docs.py`` turns it into Sphinx directives.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The option group pytest-sweep's options live in (``parser.getgroup("sweep")``).
GROUP = "sweep"
#: Ini values of pytest-sweep: every ini value whose name starts with this.
INI_PREFIX = "sweep_"
#: Environment of the child pytest: no stray plugins or options from the caller.
_DROP_ENV = ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD", "PYTEST_CURRENT_TEST")


class FactsError(RuntimeError):
    """The child process could not read the facts (pytest-sweep not installed, a plugin broken...)."""


@dataclass(frozen=True)
class Option:
    names: tuple[str, ...]
    dest: str
    help: str
    metavar: str | None
    choices: tuple[str, ...] | None
    nargs: Any

    @property
    def name(self) -> str:
        return max(self.names, key=len)

    @property
    def signature(self) -> str:
        """``--sweep-output=DIR``, ``--sweep-resume[=DIR]``, ``--sweep-symbols``: as ``--help`` shows it."""
        if self.nargs == 0:
            return self.name
        value = self.metavar or ("{" + ",".join(self.choices) + "}" if self.choices else self.dest.upper())
        return f"{self.name}[={value}]" if self.nargs == "?" else f"{self.name}={value}"


@dataclass(frozen=True)
class Ini:
    name: str
    help: str
    type: str
    default: Any


@dataclass(frozen=True)
class SymbolFact:
    name: str
    type: str
    hint: str
    default: str
    help: str
    plugin: str


@dataclass(frozen=True)
class Facts:
    options: tuple[Option, ...]
    inis: tuple[Ini, ...]
    symbols: tuple[SymbolFact, ...]
    cli: tuple[tuple[str, str], ...]  # (command line, its --help text)
    schema_version: int
    statuses: tuple[str, ...]
    record_fields: tuple[tuple[str, Any, str], ...]  # (field, value in a new record, meaning)
    record_occasional: tuple[tuple[str, str], ...]  # (field only some records have, meaning)


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _DROP_ENV}
    env["COLUMNS"] = "100"  # argparse wraps --help at the terminal width: make it the same everywhere
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


@functools.cache
def gather(python: str = sys.executable) -> Facts:
    """Run the probe in a child process of ``python`` (in an empty folder: no project's conftest)."""
    with tempfile.TemporaryDirectory(prefix="sweep-docs-") as tmp:
        out = Path(tmp) / "facts.json"
        proc = subprocess.run(
            [python, str(Path(__file__).resolve()), str(out)],
            cwd=tmp,
            env=_child_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        if proc.returncode != 0 or not out.exists():
            raise FactsError(
                f"reading the options, ini values and symbols from pytest failed (exit {proc.returncode}):\n"
                f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            )
        raw = json.loads(out.read_text(encoding="utf-8"))
    return Facts(
        options=tuple(
            Option(
                names=tuple(o["names"]),
                dest=o["dest"],
                help=o["help"] or "",
                metavar=o["metavar"],
                choices=tuple(o["choices"]) if o["choices"] else None,
                nargs=o["nargs"],
            )
            for o in raw["options"]
        ),
        inis=tuple(Ini(**i) for i in raw["inis"]),
        symbols=tuple(SymbolFact(**s) for s in raw["symbols"]),
        cli=tuple((c, h) for c, h in raw["cli"]),
        schema_version=raw["schema_version"],
        statuses=tuple(raw["statuses"]),
        record_fields=tuple((k, v, m) for k, v, m in raw["record_fields"]),
        record_occasional=tuple((k, m) for k, m in raw["record_occasional"]),
    )


# --- rendering -------------------------------------------------------------------------------

_CODE = re.compile(r"(``.+?``|`[^`]+`)")
_MD_SPECIAL = re.compile(r"([\\*_\[\]<>|])")


def md_text(text: str) -> str:
    """Plain text (a help line, a docstring's table cell) safe in Markdown; code spans kept as written."""
    parts = _CODE.split(" ".join(text.split()))
    return "".join(p if p.startswith("`") else _MD_SPECIAL.sub(r"\\\1", p) for p in parts)


def cell(text: str) -> str:
    """Text for a table cell: as :func:`md_text`, with every ``|`` escaped (code spans too)."""
    return re.sub(r"(?<!\\)\|", r"\\|", md_text(text))


def sentence(text: str) -> str:
    """A help line (no final period, by the options' style) as a sentence."""
    text = md_text(text)
    return text if text.endswith(".") else text + "."


def literal(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def ini_for(facts: Facts, option: Option) -> Ini | None:
    """The ini value that sets what ``option`` sets: the one named like the option's ``dest``."""
    return next((i for i in facts.inis if i.name == option.dest), None)


def options_markdown(facts: Facts) -> str:
    """An index table (option, ini value), then every option of the ``sweep`` group as a MyST ``option`` entry."""
    lines = ["| option | ini value |", "|---|---|"]
    for opt in facts.options:
        ini = ini_for(facts, opt)
        lines.append(
            f"| {{option}}`{opt.signature} <pytest {opt.name}>` | " + (f"{{confval}}`{ini.name}`" if ini else "") + " |"
        )
    lines.append("")
    for opt in facts.options:
        ini = ini_for(facts, opt)
        lines += [f"````{{option}} {opt.signature}", sentence(opt.help)]
        extra = []
        if opt.choices:
            extra.append("One of " + ", ".join(literal(c) for c in opt.choices) + ".")
        if ini is not None:
            extra.append(f"Ini value: {{confval}}`{ini.name}` (the command line wins).")
        if extra:
            lines += ["", " ".join(extra)]
        lines += ["````", ""]
    return "\n".join(lines)


def inis_markdown(facts: Facts) -> str:
    """Every ``sweep_*`` ini value as a ``confval`` entry, with its type, default and option."""
    lines: list[str] = []
    by_dest = {o.dest: o for o in facts.options}
    for ini in facts.inis:
        lines += [f"````{{confval}} {ini.name}", f":type: {literal(ini.type)}"]
        if ini.default not in (None, "", []):
            lines.append(f":default: {literal(ini.default)}")
        lines += ["", sentence(ini.help)]
        opt = by_dest.get(ini.name)
        if opt is not None:
            lines += ["", f"Command line: {{option}}`pytest {opt.name}`."]
        lines += ["````", ""]
    return "\n".join(lines)


def symbols_markdown(facts: Facts) -> str:
    """What ``pytest --sweep-symbols`` prints: by plugin, each symbol with what it accepts, its default and help."""
    plugins = sorted({s.plugin for s in facts.symbols})
    lines = [f"{len(facts.symbols)} symbols from {len(plugins)} plugins: " + ", ".join(f"`{p}`" for p in plugins) + "."]
    for plugin in plugins:
        mine = sorted((s for s in facts.symbols if s.plugin == plugin), key=lambda s: s.name)
        lines += ["", f"## From `{plugin}`", "", f"{len(mine)} symbol{'s' if len(mine) != 1 else ''}.", ""]
        lines += ["| symbol | accepts | default | meaning |", "|---|---|---|---|"]
        for sym in mine:
            lines.append(f"| `{sym.name}` | {cell(sym.hint)} | {cell(literal(sym.default))} | {cell(sym.help)} |")
    return "\n".join(lines) + "\n"


def undocumented_fields(facts: Facts) -> list[str]:
    """Fields of a record whose meaning :class:`TrialRecord` does not give."""
    return [name for name, _, meaning in facts.record_fields if not meaning.strip()] + [
        name for name, meaning in facts.record_occasional if not meaning.strip()
    ]


def records_markdown(facts: Facts) -> str:
    """The record schema: every field of a new record, its value there and its meaning, then the
    fields only some records have."""
    lines = [
        f"Schema version **{facts.schema_version}**; a record's `status` is one of "
        + ", ".join(literal(s) for s in facts.statuses)
        + ".",
        "",
        "| field | in a new record (JSON) | meaning |",
        "|---|---|---|",
    ]
    for name, value, meaning in facts.record_fields:
        lines.append(f"| `{name}` | {cell(literal(json.dumps(value)))} | {cell(meaning)} |")
    for name, meaning in facts.record_occasional:
        lines.append(f"| `{name}` | (only where it applies) | {cell(meaning)} |")
    return "\n".join(lines) + "\n"


def cli_markdown(facts: Facts) -> str:
    """Each ``pytest-sweep ... --help`` as it prints."""
    lines: list[str] = []
    for command, text in facts.cli:
        lines += [f"## `{command}`", "", "```text", text.rstrip(), "```", ""]
    return "\n".join(lines)


# --- the child process -----------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
    except TypeError:
        return repr(value)
    return value


def _probe(out: str) -> int:  # pragma: no cover - runs in the child process
    import contextlib
    import importlib
    import importlib.metadata
    import io

    import pytest

    facts: dict[str, Any] = {}

    class Probe:
        parser: Any = None

        def pytest_addoption(self, parser: pytest.Parser) -> None:
            Probe.parser = parser

        @pytest.hookimpl(wrapper=True)
        def pytest_cmdline_main(self, config: pytest.Config) -> Any:
            result = yield  # `--sweep-symbols` printed its listing: every symbol plugin is registered
            parser = Probe.parser
            facts["options"] = [
                {
                    "names": list(opt.names()),
                    "dest": opt.dest,
                    "help": opt.attrs().get("help"),
                    "metavar": opt.attrs().get("metavar"),
                    "choices": list(opt.attrs().get("choices") or ()) or None,
                    "nargs": opt.attrs().get("nargs"),
                }
                for opt in parser.getgroup(GROUP).options
            ]
            # pytest keeps ini values in Parser._inidict (name -> (help, type, default)) and has no
            # public way to list them; pytest's own --help reads this too.  tests/test_docs.py checks
            # the result against what `pytest --help` prints.
            facts["inis"] = [
                {"name": name, "help": help_, "type": type_ or "string", "default": _jsonable(default)}
                for name, (help_, type_, default) in parser._inidict.items()
                if name.startswith(INI_PREFIX)
            ]
            pm = config.pluginmanager
            seen: set[str] = set()
            symbols = []
            for impl in pm.hook.pytest_sweep_declare_symbols.get_hookimpls():
                plugin = pm.get_name(impl.plugin) or impl.plugin_name
                for sym in impl.function() or ():
                    if sym.name in seen:
                        continue
                    seen.add(sym.name)
                    symbols.append(
                        {
                            "name": sym.name,
                            "type": sym.type,
                            "hint": sym.help_hint().removeprefix("expected "),
                            "default": "automatic" if sym.default is None else sym.render(sym.default),
                            "help": sym.help,
                            "plugin": plugin,
                        }
                    )
            facts["symbols"] = symbols
            return result

    code = pytest.main(["--sweep-symbols", "-p", "no:cacheprovider"], plugins=[Probe()])
    if code != 0 or "options" not in facts:
        print(f"pytest --sweep-symbols exited {code}; is pytest-sweep installed?", file=sys.stderr)
        return 1

    (script,) = importlib.metadata.entry_points(group="console_scripts", name="pytest-sweep")
    main = script.load()

    def help_text(argv: list[str]) -> str:
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf), contextlib.suppress(SystemExit):
            main(argv)
        return buf.getvalue()

    top = help_text(["--help"])
    cli = [("pytest-sweep --help", top)]
    found = re.search(r"\{([\w,-]+)\}", top)
    for sub in found.group(1).split(",") if found else ():
        cli.append((f"pytest-sweep {sub} --help", help_text([sub, "--help"])))
    facts["cli"] = cli

    records = importlib.import_module("pytest_sweep.matrix.records")
    facts["schema_version"] = records.SCHEMA_VERSION
    facts["statuses"] = list(records.STATUSES)
    record = records.TrialRecord.new("config_001", {}, {})
    facts["record_fields"] = [[k, _jsonable(v), records.TrialRecord.meaning(k)] for k, v in record.to_json().items()]
    facts["record_occasional"] = [[k, m] for k, m in records.TrialRecord.OCCASIONAL.items()]
    Path(out).write_text(json.dumps(facts, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(_probe(sys.argv[1]))
