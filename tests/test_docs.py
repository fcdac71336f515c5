"""The documentation against the code: the README and the pages under ``docs/`` cannot drift.

- every option (``--sweep-*``, ``--range-config``, ``--config-dir``) and config symbol
  (``CONFIG_*``) a hand-written page names exists: the options in ``pytest --help``'s sweep
  group, the symbols in ``pytest --sweep-symbols`` (a short list of deliberate exceptions below);
- the site builds with warnings as errors (``sphinx-build -W --keep-going -n``), and every option,
  ini value, symbol, hook and record field the code has is in the built site;
- the built site loads nothing from the network;
- the shell blocks marked ``<!-- runnable -->`` run;
- the README stays at most 10 KB.

Everything is compared with what pytest prints in a subprocess, independently of the generator
in ``docs/_ext`` (which reads the option parser itself).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"

#: Names on hand-written pages that are deliberately not options or symbols of pytest-sweep.
EXCEPTIONS = {
    "CONFIG_KEY": "a placeholder for any key (the range-config format)",
    "CONFIG_X": "a placeholder for any key (`# CONFIG_X is not set`)",
    "CONFIG_PARAM": "a placeholder for any key (the sweep guide's notation)",
    "CONFIG_LEARNIG_RATE": "a deliberate typo: the example of the unknown-symbol error message",
    "CONFIG_TRIVIAL_INDEX": "declared by the benchmarks' own trivial trainer (bench/overhead.py)",
    "CONFIG_TRIVIAL_WORK": "declared by the benchmarks' own trivial trainer (bench/overhead.py)",
}
#: The environment of every pytest subprocess: no stray plugins or options from the caller.
_DROP = ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD", "PYTEST_CURRENT_TEST")
_OPTION = re.compile(r"--(?:sweep-[a-z0-9]+(?:-[a-z0-9]+)*|range-config|config-dir)(?![a-z0-9*-])")
_SYMBOL = re.compile(r"\bCONFIG_[A-Z0-9]+(?:_[A-Z0-9]+)*(?![A-Z0-9_*])")
_DECLARED = re.compile(r"Symbol\(\s*[\"'](CONFIG_[A-Z0-9_]+)[\"']")


def hand_written_pages() -> list[Path]:
    """The README and every Markdown page of the site (the generated pages hold directives only)."""
    return [README, *sorted(DOCS.rglob("*.md"))]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _DROP}
    env["COLUMNS"] = "100"
    env["OMP_NUM_THREADS"] = "1"
    return env


def _pytest(*args: str, cwd: Path) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@dataclass(frozen=True)
class Help:
    options: frozenset[str]
    inis: frozenset[str]


def parse_help(text: str) -> Help:
    """The sweep group's options and the ``sweep_*`` ini values of ``pytest --help``'s output."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("  --range-config"))
    end = next((i for i in range(start, len(lines)) if lines[i] and not lines[i].startswith(" ")), len(lines))
    options = {m.group(1) for line in lines[start:end] for m in [re.match(r"  (--[\w-]+)", line)] if m}
    inis = {m.group(1) for line in lines for m in [re.match(r"  (sweep_\w+) \(", line)] if m}
    return Help(frozenset(options), frozenset(inis))


def parse_symbols(text: str) -> frozenset[str]:
    """The symbols ``pytest --sweep-symbols`` lists."""
    return frozenset(re.findall(r"^  (CONFIG_\w+) \(", text, re.M))


@pytest.fixture(scope="module")
def empty_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("empty")


@pytest.fixture(scope="module")
def help_text(empty_dir: Path) -> Help:
    return parse_help(_pytest("--help", cwd=empty_dir))


@pytest.fixture(scope="module")
def symbols(empty_dir: Path) -> frozenset[str]:
    return parse_symbols(_pytest("--sweep-symbols", cwd=empty_dir))


def unknown_names(text: str, options: frozenset[str], symbols: frozenset[str]) -> list[str]:
    """Options and symbols ``text`` names that do not exist (nor are excepted or declared in it)."""
    declared = set(_DECLARED.findall(text))
    found = [m.group() for m in _OPTION.finditer(text) if m.group() not in options]
    found += [
        m.group()
        for m in _SYMBOL.finditer(text)
        if m.group() not in symbols and m.group() not in EXCEPTIONS and m.group() not in declared
    ]
    return sorted(set(found))


def test_the_name_check_catches_drift() -> None:
    """The check below is not vacuous: a made-up option or symbol is reported, a real one is not."""
    text = (
        "Run `pytest --sweep-frobnicate --sweep-output=DIR` with `CONFIG_NO_SUCH_THING=1`, "
        "`CONFIG_SEED`, the placeholder `CONFIG_X`, a wildcard `--sweep-ray-*` and `CONFIG_ADV_*`, and "
        'an example\'s own `Symbol("CONFIG_MINE", "int", 1, "x")`: `CONFIG_MINE=2`.'
    )
    found = unknown_names(text, frozenset({"--sweep-output"}), frozenset({"CONFIG_SEED"}))
    assert found == ["--sweep-frobnicate", "CONFIG_NO_SUCH_THING"]


def test_an_undocumented_record_field_is_reported() -> None:
    """A record field without a meaning is reported (a build error); every TrialRecord field has one."""
    from pytest_sweep.matrix.records import TrialRecord

    facts_module = _import_facts()
    fields = (("schema_version", 2, "the version"), ("config_file", "", "``config_017``"), ("new_field", None, ""))
    occasional = (("node", "the Ray node"), ("new_extra", " "))
    facts = facts_module.Facts((), (), (), (), 2, ("passed",), fields, occasional)
    assert facts_module.undocumented_fields(facts) == ["new_field", "new_extra"]
    record = TrialRecord.new("config_001", {}, {}).to_json()
    assert [k for k in record if not TrialRecord.meaning(k)] == []
    assert TrialRecord.meaning("extra") == TrialRecord.meaning("no_such_field") == ""
    page = facts_module.records_markdown(
        facts_module.Facts((), (), (), (), 2, ("passed",), (("rank", None, "1 for the best"),), occasional)
    )
    assert "| `rank` | `null` | 1 for the best |" in page
    assert "| `node` | (only where it applies) | the Ray node |" in page


@pytest.mark.slow
def test_every_named_option_and_symbol_exists(help_text: Help, symbols: frozenset[str]) -> None:
    assert len(help_text.options) > 20 and len(symbols) > 100  # the parsers found the listings
    problems = []
    for page in hand_written_pages():
        unknown = unknown_names(page.read_text(encoding="utf-8"), help_text.options, symbols)
        if unknown:
            problems.append(f"{page.relative_to(ROOT)}: {', '.join(unknown)}")
    assert not problems, "names that pytest-sweep does not have:\n" + "\n".join(problems)


@pytest.mark.slow
def test_the_generator_reads_what_pytest_prints(help_text: Help, symbols: frozenset[str]) -> None:
    """``docs/_ext``'s facts (from the parser itself) equal ``pytest --help`` and ``--sweep-symbols``."""
    facts_module = _import_facts()
    facts = facts_module.gather()
    assert {o.name for o in facts.options} == help_text.options
    assert {i.name for i in facts.inis} == help_text.inis
    assert {s.name for s in facts.symbols} == symbols
    assert facts_module.undocumented_fields(facts) == []
    assert [c for c, _ in facts.cli] == [
        "pytest-sweep --help",
        "pytest-sweep report --help",
        "pytest-sweep compare --help",
        "pytest-sweep reproduce --help",
    ]


def _import_facts() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("sweep_facts", DOCS / "_ext" / "sweep_facts.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("sweep_facts", module)
    spec.loader.exec_module(module)
    return module


# --- the built site ---------------------------------------------------------------------------


#: Set by ``make test`` to the site ``make docs`` has just built from this tree with the same
#: flags, so that CI builds it once; without it the session builds its own.
SITE_ENV = "SWEEP_DOCS_SITE"


@pytest.fixture(scope="session")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built once for the session the way CI builds it: warnings (and broken references) fail."""
    given = os.environ.get(SITE_ENV)
    if given:
        site = Path(given)
        assert (site / "index.html").is_file(), f"{SITE_ENV}={given}: no built site there; run make docs"
        return site
    missing = [name for name in ("sphinx", "myst_parser", "furo") if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(f"the docs build needs the docs extra ({', '.join(missing)} missing): pip install -e '.[docs]'")
    out = tmp_path_factory.mktemp("site")
    strict = ["-W", "--keep-going", "-n", "-q"]  # warnings are errors; nitpicky: every reference resolves
    html, doctrees = out / "html", out / "doctrees"
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", *strict, "-b", "html", "-d", str(doctrees), str(DOCS), str(html)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"the docs build failed:\n{proc.stdout}\n{proc.stderr}"
    return html


@pytest.mark.slow
def test_every_option_and_ini_value_is_in_the_site(built_site: Path, help_text: Help) -> None:
    page = (built_site / "reference" / "options.html").read_text(encoding="utf-8")
    missing = [o for o in sorted(help_text.options) if f'id="cmdoption-pytest{o.removeprefix("-")}"' not in page]
    missing += [i for i in sorted(help_text.inis) if f'id="confval-{i}"' not in page]
    assert not missing, f"not documented in reference/options: {missing}"


@pytest.mark.slow
def test_every_symbol_hook_and_record_field_is_in_the_site(built_site: Path, symbols: frozenset[str]) -> None:
    import pluggy

    from pytest_sweep.matrix import hookspecs, records
    from pytest_sweep.plugins import trainer_hookspecs

    page = (built_site / "reference" / "symbols.html").read_text(encoding="utf-8")
    missing = [s for s in sorted(symbols) if f'<span class="pre">{s}</span>' not in page]
    page = (built_site / "reference" / "hooks.html").read_text(encoding="utf-8")
    hooks = []
    for spec in (hookspecs, trainer_hookspecs):
        manager = pluggy.PluginManager("pytest")
        manager.add_hookspecs(spec)
        names = sorted(name for name in vars(manager.hook) if name.startswith("pytest_sweep_"))
        missing += [h for h in names if f'id="{spec.__name__}.{h}"' not in page]
        hooks += names
    page = (built_site / "reference" / "records.html").read_text(encoding="utf-8")
    fields = records.new_record("config_001", {}, {})
    missing += [f for f in fields if f'<span class="pre">{f}</span>' not in page]
    assert len(hooks) > 10
    assert not missing, f"not in the built reference: {missing}"


@pytest.mark.slow
def test_the_site_loads_nothing_from_the_network(built_site: Path) -> None:
    """Fonts, scripts, styles and images are all local: the pages work offline."""
    remote = re.compile(
        r"""(?:<(?:script|img|link|iframe|source)\b[^>]*?\b(?:src|href)=["']|@import\s+url\(|url\()\s*["']?(?:https?:)?//"""
    )
    found = [
        f"{path.relative_to(built_site)}: {m.group()}"
        for path in sorted(built_site.rglob("*"))
        if path.suffix in (".html", ".css", ".js")
        for m in remote.finditer(path.read_text(encoding="utf-8", errors="replace"))
    ]
    assert len(list(built_site.rglob("*.html"))) > 20
    assert not found, found


# --- runnable blocks --------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    script: str

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def runnable_blocks() -> Iterator[Block]:
    """Fenced shell blocks whose previous line is ``<!-- runnable -->`` (outside any other fence)."""
    for page in hand_written_pages():
        lines = page.read_text(encoding="utf-8").splitlines()
        fence = None  # the fence of the block we are in, if any
        for i, line in enumerate(lines):
            opened = re.match(r"\s*(`{3,}|~{3,})", line)
            if fence is not None:
                if opened and line.strip() == fence:
                    fence = None
                continue
            if opened:
                fence = opened.group(1)
                continue
            if line.strip() != "<!-- runnable -->":
                continue
            start = re.fullmatch(r"(`{3,})(?:bash|sh|shell)", lines[i + 1].strip() if i + 1 < len(lines) else "")
            assert start, f"{page}:{i + 1}: <!-- runnable --> must be followed by a ```bash block"
            end = next(j for j in range(i + 2, len(lines)) if lines[j].strip() == start.group(1))
            yield Block(page, i + 2, "\n".join(lines[i + 2 : end]))


BLOCKS = list(runnable_blocks())


def test_there_are_runnable_blocks() -> None:
    pages = {b.page.name for b in BLOCKS}
    assert len(BLOCKS) >= 3 and {"first-sweep.md", "own-trainer.md"} <= pages, [b.id for b in BLOCKS]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A folder with what the runnable blocks use: copies of ``defconfigs/`` and ``docs/examples/``,
    and ``bin/`` with ``pytest`` and ``pytest-sweep`` of the environment running these tests."""
    shutil.copytree(ROOT / "defconfigs", tmp_path / "defconfigs")
    shutil.copytree(ROOT / "docs" / "examples", tmp_path / "docs" / "examples")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    commands = {
        "pytest": f'exec "{sys.executable}" -m pytest "$@"',
        "pytest-sweep": f'exec "{sys.executable}" -c "import sys; from importlib.metadata import entry_points; '
        "(ep,) = entry_points(group='console_scripts', name='pytest-sweep'); sys.exit(ep.load()(sys.argv[1:]))\" \"$@\"",
    }
    for name, line in commands.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{line}\n", encoding="utf-8")
        (bin_dir / name).chmod(0o755)
    return tmp_path


@pytest.mark.slow
@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_runnable_block(block: Block, workspace: Path) -> None:
    """The block runs as written, in a fresh folder, with ``set -eu -o pipefail``.

    The runtime estimate is given (``--sweep-minutes-per-trial``) so that collection does not
    time the built-in trainer; everything else is the command as a reader types it.
    """
    env = _env()
    env["PATH"] = f"{workspace / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["PYTEST_ADDOPTS"] = "--sweep-minutes-per-trial=1"
    proc = subprocess.run(
        ["bash", "-c", f"set -eu -o pipefail\n{block.script}"],
        cwd=workspace,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, (
        f"{block.id} failed (exit {proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    )


def test_the_readme_is_at_most_10_kb() -> None:
    size = README.stat().st_size
    assert size <= 10 * 1024, f"README.md is {size} bytes; keep it to 10 KB and move detail into docs/"
