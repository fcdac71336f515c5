"""Every file we write in the range-config language reads back to the values it was written from.

A property test over the language's whole value grammar (numbers of every spelling, y/n, strings
holding quotes, ``|``, ``:``, ``#``, ``=``, spaces, backslashes, unicode, the empty string, values
that look like ranges or choices), through each writer: the one assignment writer
(:mod:`pytest_sweep.matrix.rangewrite`), ``refine_range`` (:mod:`pytest_sweep.plugins.refine`), the
configs of ``--sweep-generate`` (:mod:`pytest_sweep.matrix.generate`, read back by ``--config-dir``)
and each trial's ``config.txt`` (:mod:`pytest_sweep.matrix.runner`).  Names and values echoed into
comments (paths, sweep names, reasons) never become lines of their own.  What the language cannot
hold (a line break in a value) is refused with :class:`~pytest_sweep.matrix.rangewrite.Unwritable`,
never written wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from synthetic import grid_records

from pytest_sweep.matrix.generate import read_config_dir, render_config, write_sweep_configs
from pytest_sweep.matrix.grid import Combination, expand
from pytest_sweep.matrix.rangeconfig import _same_value, parse_text
from pytest_sweep.matrix.rangewrite import Unwritable, assignment, comment, quote
from pytest_sweep.matrix.runner import render_trial_config
from pytest_sweep.matrix.symbols import Symbol, SymbolTable
from pytest_sweep.matrix.trial import Trial
from pytest_sweep.plugins.importance import compute
from pytest_sweep.plugins.refine import Line, Refinement, refine, render

#: Enough to cover the grammar (each example is a few microseconds to milliseconds), few enough to stay fast.
EXAMPLES = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- the value grammar -----------------------------------------------------------------------------
ints = st.integers(min_value=-(10**30), max_value=10**30).map(str)
signed_ints = st.integers(min_value=0, max_value=10**6).map(lambda n: f"+{n}")
floats = st.floats(allow_nan=False, allow_infinity=False).map(repr)
exponents = st.builds(
    lambda m, e, big: f"{m}{'E' if big else 'e'}{e:+d}",
    st.integers(-999, 999),
    st.integers(-30, 30),
    st.booleans(),
)
decimals = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
    st.decimals(allow_nan=False, allow_infinity=False, places=6).map(str),
)
bools = st.sampled_from(["y", "n", "Y", "N", "yes", "no", "true", "false", "0", "1", "on", "off"])
#: Pieces of syntax a string may hold (each must stay part of the string).
SYNTAX = ['"', "|", ":", "#", "=", " ", "\\", "\\\\", '\\"', "\t", "'", "$", "`", "%", "@", "+", "-"]
LOOKALIKES = [
    "",
    " ",
    "0.85|0.87",
    "1:1:3",
    "0.03:0.02:0.09",
    " 1:2:3 ",
    "a|b",
    '"a"|"b"',
    "# not a comment",
    "x # y",
    "CONFIG_X=1",
    "CONFIG_X is not set",
    "C:\\data\\new",
    "\\",
    'say "hi"',
    "12:30",
    "nan",
    "inf",
    "-inf",
    "1e999999",
    "0x10",
    "\u00e9t\u00e9",
    "\u6f22\u5b57",
    "\U0001f600",
    "\u200b",
    "\u2028",
    "\x85",
    "\x00",
    "\x1b[31m",
    "\ufeffbom",
]
#: Unicode's surrogate code points: no text can hold one alone
SURROGATES: tuple[Literal["Cs"]] = ("Cs",)
chars = st.characters(exclude_categories=SURROGATES, exclude_characters="\r\n")
strings = st.one_of(
    st.text(chars, max_size=30),
    st.lists(
        st.one_of(st.sampled_from(SYNTAX), st.sampled_from(LOOKALIKES), st.text(chars, max_size=5)), max_size=8
    ).map("".join),
    st.sampled_from(LOOKALIKES),
)
values = st.one_of(ints, signed_ints, floats, exponents, decimals, bools, strings)
keys = st.from_regex(r"CONFIG_[A-Z][A-Z0-9_]{0,20}", fullmatch=True)


def distinct(items: list[str], quoted: bool) -> list[str]:
    """``items`` without values the parser would read as one (``0.1`` and ``0.10``)."""
    seen: set[str] = set()
    out = []
    for item in items:
        same = _same_value(item, quoted)
        if same not in seen:
            seen.add(same)
            out.append(item)
    return out


def parsed(text: str) -> dict[str, tuple[str, ...]]:
    return {p.key: p.values for p in parse_text(text).params}


# -- the one writer ----------------------------------------------------------------------------------
@EXAMPLES
@given(key=keys, items=st.lists(values, min_size=1, max_size=5), string=st.booleans())
def test_an_assignment_reads_back_as_its_values(key: str, items: list[str], string: bool) -> None:
    try:
        line = assignment(key, items, string=string)
    except Unwritable:
        # refused only where two values would read back as one (the same text, or 0.1 and 0.10 bare)
        assert len(set(items)) < len(items) or len({_same_value(v, False) for v in items}) < len(items)
        return
    param = parse_text(line).params[0]
    assert (param.key, param.values) == (key, tuple(items)), line
    assert param.quoted or not string


@EXAMPLES
@given(text=st.text(st.characters(exclude_categories=SURROGATES), max_size=40))
def test_a_value_with_a_line_break_is_refused_never_written_wrong(text: str) -> None:
    try:
        line = assignment("CONFIG_X", [text], string=True)
    except Unwritable as exc:
        assert "\n" in text or "\r" in text
        assert "line break" in str(exc)
        return
    assert parse_text(line).params[0].values == (text,)


@EXAMPLES
@given(text=st.text(st.characters(), max_size=60))
def test_a_comment_is_one_line_that_sets_nothing(text: str) -> None:
    line = comment(text)
    assert "\n" not in line and "\r" not in line
    with pytest.raises(Exception, match="no parameters found"):
        parse_text(line)


@pytest.mark.parametrize("key", ["", "CONFIG X", "CONFIG_X\nCONFIG_Y", "1CONFIG", "CONFIG-X", "CONFIG_X=1"])
def test_a_key_that_is_not_a_symbol_name_is_refused(key: str) -> None:
    with pytest.raises(Unwritable, match="is not a symbol name"):
        assignment(key, ["1"], string=False)


# -- refine_range ------------------------------------------------------------------------------------
def _table(types: dict[str, str]) -> SymbolTable:
    return SymbolTable(Symbol(k, t, None, "test") for k, t in types.items())


@EXAMPLES
@given(
    fixed=st.dictionaries(keys, values, min_size=1, max_size=4),
    swept=st.dictionaries(keys, st.lists(values, min_size=1, max_size=4), max_size=3),
    notes=st.lists(st.text(st.characters(), max_size=20), min_size=5, max_size=5),
    types=st.none() | st.dictionaries(keys, st.sampled_from(["str", "int", "float", "bool"]), max_size=6),
)
def test_refine_range_reads_back_as_the_next_sweep(
    fixed: dict[str, str],
    swept: dict[str, list[str]],
    notes: list[str],
    types: dict[str, str] | None,
) -> None:
    swept = {k: distinct(v, quoted=True) for k, v in swept.items() if k not in fixed}
    name, scope, source, why, sweep_name = notes
    lines = tuple(Line(k, (why, *v), tuple(v), why, "kept") for k, v in swept.items())
    ref = Refinement(fixed, lines, name, "91.25% mean test accuracy over 3 seeds", scope or None, source)
    symbols = _table(types) if types is not None else None
    try:
        text = render(ref, sweep_name, symbols)
    except Unwritable:
        # refused only for a number-like choice list that repeats a number (0.1|0.10)
        assert any(len({_same_value(x, False) for x in v}) < len(v) for v in swept.values())
        return
    assert parsed(text) == {**{k: (v,) for k, v in fixed.items()}, **{k: tuple(v) for k, v in swept.items()}}


@settings(max_examples=60, deadline=None)
@given(
    a=st.lists(strings, min_size=2, max_size=3, unique=True),
    b=st.lists(values, min_size=1, max_size=2, unique=True),
    fixed=st.dictionaries(keys, values, max_size=3),
)
def test_refine_range_from_records_reads_back(a: list[str], b: list[str], fixed: dict[str, str]) -> None:
    """From records as a sweep left them: the values refine chose are the values the file holds."""
    fixed = {k: v for k, v in fixed.items() if k not in ("CONFIG_A", "CONFIG_B")}
    b = distinct(b, quoted=True)
    records = grid_records(
        {"CONFIG_A": a, "CONFIG_B": b},
        lambda v: 50.0 + a.index(v["CONFIG_A"]) + 0.5 * b.index(v["CONFIG_B"]),
        fixed=fixed,
    )
    ref = refine(records, compute(records, threshold=0.5))
    assert ref is not None
    try:
        text = render(ref, "sweep_x")
    except Unwritable:
        assert any(len({_same_value(x, False) for x in line.new}) < len(line.new) for line in ref.lines)
        return
    expected = {k: (v,) for k, v in ref.fixed.items()} | {line.key: line.new for line in ref.lines}
    assert parsed(text) == expected


def test_refine_range_keeps_a_literal_bar_and_colon() -> None:
    """Issue 16 item 4: ``CONFIG_X="a|b"|"c"`` gave ``CONFIG_X="a|b"``, which the next sweep split in two."""
    records = grid_records(
        {"CONFIG_X": ["a|b", "1:1:3", "c"]},
        lambda v: {"a|b": 90.0, "1:1:3": 80.0, "c": 70.0}[v["CONFIG_X"]],
    )
    ref = refine(records, compute(records, threshold=0.5), _table({"CONFIG_X": "str"}))
    assert ref is not None
    text = render(ref, "sweep_x", _table({"CONFIG_X": "str"}))
    assert 'CONFIG_X="a\\|b"|"1\\:1\\:3"' in text.splitlines()
    assert parsed(text)["CONFIG_X"] == ("a|b", "1:1:3")


def test_refine_range_header_keeps_a_path_with_a_line_break_in_its_comment() -> None:
    """Issue 16 item 13: a range file whose name holds a line break put an active line into refine_range."""
    records = grid_records(
        {"CONFIG_X": ["1", "2"]}, lambda v: 50.0 + float(v["CONFIG_X"]), source="/w/x\nCONFIG_EVIL=1\n#"
    )
    ref = refine(records, compute(records, threshold=0.5))
    assert ref is not None
    text = render(ref, "sweep\nCONFIG_EVIL2=1")
    assert set(parsed(text)) == {"CONFIG_X"}
    assert "CONFIG_EVIL" not in "".join(line for line in text.splitlines() if not line.startswith("#"))


def test_refine_range_with_a_value_it_cannot_write_says_why() -> None:
    from pytest_sweep.plugins.refine import rendered

    records = grid_records({"CONFIG_X": ["a\nCONFIG_EVIL=1", "b"]}, lambda v: 50.0 + len(v["CONFIG_X"]))
    ref = refine(records, compute(records, threshold=0.5))
    text, why = rendered(ref, "sweep_x", None)
    assert text is None and why is not None and "line break" in why and "\n" not in why


# -- --sweep-generate and --config-dir -------------------------------------------------------------
@EXAMPLES
@given(
    fixed=st.dictionaries(keys, values, max_size=4),
    quoted=st.sets(keys),
    source=st.text(st.characters(), max_size=20),
    swept=st.lists(values, min_size=1, max_size=3),
)
def test_a_generated_config_reads_back_as_its_combination(
    fixed: dict[str, str], quoted: set[str], source: str, swept: list[str]
) -> None:
    key = "CONFIG_SWEPT"
    combo = Combination(
        index=1,
        name="config_001",
        values=dict(sorted({**fixed, key: swept[0]}.items())),
        swept={key: swept[0]},
        lines={},
        source=source,
        quoted=frozenset(quoted),
    )
    text = render_config(combo)
    rc = parse_text(text)
    assert {p.key: p.values for p in rc.params} == {k: (v,) for k, v in combo.values.items()}
    assert {p.key for p in rc.params if p.quoted} >= set(quoted) & set(combo.values)


def _range_text(params: dict[str, list[str]]) -> str:
    """A range file with a choice list (or one value) per key, strings quoted as the writer quotes them."""
    return "".join(assignment(k, v, string=True) + "\n" for k, v in params.items())


@settings(max_examples=25, deadline=None)
@given(params=st.dictionaries(keys, st.lists(values, min_size=1, max_size=3), min_size=1, max_size=3))
def test_sweep_generate_writes_configs_that_config_dir_reads_back(
    params: dict[str, list[str]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Issue 16 item 4: ``--sweep-generate`` wrote configs that ``--config-dir`` rejected."""
    params = {k: distinct(v, quoted=True) for k, v in params.items()}
    rc = parse_text(_range_text(params) + 'CONFIG_RANGE=0.1:0.1:0.3\nCONFIG_QUOTED_RANGE="1:1:2"\n')
    out = tmp_path_factory.mktemp("generated")
    write_sweep_configs(rc, out)
    back = read_config_dir(out)
    combos = expand(rc)
    assert [c.values for c in back] == [c.values for c in combos]


def test_a_generated_config_with_a_literal_bar_runs_from_config_dir(tmp_path: Path) -> None:
    rc = parse_text('CONFIG_X="a|b"|"c"\nCONFIG_Y="1\\:1\\:3"\n')
    write_sweep_configs(rc, tmp_path)
    assert [c.values for c in read_config_dir(tmp_path)] == [
        {"CONFIG_X": "a|b", "CONFIG_Y": "1:1:3"},
        {"CONFIG_X": "c", "CONFIG_Y": "1:1:3"},
    ]


# -- config.txt --------------------------------------------------------------------------------------
@EXAMPLES
@given(
    raw=st.dictionaries(keys, values, min_size=1, max_size=6),
    strings_=st.sets(keys),
    source=st.text(st.characters(), max_size=20),
)
def test_config_txt_reads_back_as_the_trial_config(raw: dict[str, str], strings_: set[str], source: str) -> None:
    typed: dict[str, Any] = {k: (v if k in strings_ else 1.0) for k, v in raw.items()}
    trial = Trial(name="config_001", index=1, source=source, values=typed, raw=raw, swept={})
    assert parsed(render_trial_config(trial)) == {k: (v,) for k, v in raw.items()}


def test_config_txt_refuses_a_value_with_a_line_break() -> None:
    trial = Trial("config_001", 1, "x", {"CONFIG_X": "a\nCONFIG_Y=1"}, {"CONFIG_X": "a\nCONFIG_Y=1"}, {})
    with pytest.raises(Unwritable, match="line break"):
        render_trial_config(trial)


def test_the_quoted_value_a_line_holds_is_the_one_the_writer_writes() -> None:
    """Spot checks of the escapes (the language's reference in docs/reference/range-config-syntax.md)."""
    assert quote("a|b") == '"a\\|b"'
    assert quote("1:1:3") == '"1\\:1\\:3"'
    assert quote("12:30") == '"12:30"'
    assert quote('say "hi"') == '"say \\"hi\\""'
    assert quote("C:\\data") == '"C:\\\\data"'
    assert quote("") == '""'


# -- pytest-sweep reproduce: a trial's config written back ---------------------------------------------------
@EXAMPLES
@given(config=st.dictionaries(keys, values, min_size=1, max_size=6), source=st.text(st.characters(), max_size=20))
def test_the_reproduce_config_reads_back_as_the_recorded_config(config: dict[str, str], source: str) -> None:
    from pytest_sweep.plugins.reproduce import render_config

    record = {"config_file": "config_001", "trial_dir": f"config_001{source}", "source": source, "config": config}
    text = render_config(record)
    assert parsed(text) == {k: (v,) for k, v in config.items()}
