"""Config symbols: typing raw config strings, bounds, choices, suggestions, conflicts."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_sweep.matrix.errors import RangeConfigError
from pytest_sweep.matrix.symbols import Symbol, SymbolTable

FLAG = Symbol("CONFIG_FLAG", "bool", False, "A flag")
COUNT = Symbol("CONFIG_COUNT", "int", 1, "A count", low=1, high=1000)
RATE = Symbol("CONFIG_RATE", "float", None, "A rate", low=0.0)
BETA = Symbol("CONFIG_BETA", "float", 0.9, "A beta", low=0.0, high=1.0)
NAME = Symbol("CONFIG_NAME", "str", "x", "A name")
METHOD = Symbol("CONFIG_METHOD", "str", "none", "A method", choices=("none", "magnitude", "state"))


@pytest.mark.parametrize("raw", ["y", "Y", "yes", "true", "True", "1", "on", " y "])
def test_bool_true(raw: str) -> None:
    assert FLAG.coerce(raw) is True


@pytest.mark.parametrize("raw", ["n", "N", "no", "false", "0", "off", "n\t"])
def test_bool_false(raw: str) -> None:
    assert FLAG.coerce(raw) is False


def test_bool_rejects_anything_else() -> None:
    with pytest.raises(ValueError, match=r"^CONFIG_FLAG=maybe is not a boolean; use y or n$"):
        FLAG.coerce("maybe")


@pytest.mark.parametrize(
    ("raw", "value"),
    [("128", 128), (" 7 ", 7), ("1e2", 100), ("1.0", 1), ("+3", 3), ("1000", 1000), ("1", 1)],
)
def test_int(raw: str, value: int) -> None:
    result = COUNT.coerce(raw)
    assert result == value and type(result) is int


@pytest.mark.parametrize(
    ("symbol", "raw", "message"),
    [
        (COUNT, "1.5", "CONFIG_COUNT=1.5 must be a whole number"),
        (COUNT, "abc", "CONFIG_COUNT=abc is not a number; expected int, from 1 to 1000"),
        (COUNT, "", "CONFIG_COUNT= is not a number; expected int, from 1 to 1000"),
        (COUNT, "0", "CONFIG_COUNT=0 is out of range; expected int, from 1 to 1000"),
        (COUNT, "1001", "CONFIG_COUNT=1001 is out of range; expected int, from 1 to 1000"),
        (COUNT, "inf", "CONFIG_COUNT=inf is not a finite number; expected int, from 1 to 1000"),
        (COUNT, "sNaN", "CONFIG_COUNT=sNaN is not a finite number; expected int, from 1 to 1000"),
        (COUNT, "1e999999999", "CONFIG_COUNT=1e999999999 is too large; expected int, from 1 to 1000"),
        (RATE, "-0.1", "CONFIG_RATE=-0.1 is out of range; expected float, at least 0"),
        (RATE, "nan", "CONFIG_RATE=nan is not a finite number; expected float, at least 0"),
        (RATE, "-inf", "CONFIG_RATE=-inf is not a finite number; expected float, at least 0"),
        (RATE, "1e400", "CONFIG_RATE=1e400 is too large; expected float, at least 0"),
        (BETA, "1.01", "CONFIG_BETA=1.01 is out of range; expected float, from 0 to 1"),
        (BETA, "NaN", "CONFIG_BETA=NaN is not a finite number; expected float, from 0 to 1"),
        (METHOD, "movement", "CONFIG_METHOD=movement is not one of none|magnitude|state"),
        (METHOD, "State", "CONFIG_METHOD=State is not one of none|magnitude|state"),
    ],
)
def test_bad_values_name_the_fix(symbol: Symbol, raw: str, message: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        symbol.coerce(raw)
    assert str(excinfo.value) == message


@pytest.mark.parametrize(
    ("symbol", "raw", "value"),
    [
        (RATE, "0.001", 0.001),
        (RATE, "1e-3", 0.001),
        (RATE, "0", 0.0),
        (RATE, "3", 3.0),
        (RATE, "1e300", 1e300),
        (BETA, "0", 0.0),
        (BETA, "1", 1.0),  # bounds are inclusive
        (BETA, "0.87", 0.87),
        (NAME, " /data/cifar#10|a:b ", "/data/cifar#10|a:b"),
        (METHOD, "state", "state"),
    ],
)
def test_good_values(symbol: Symbol, raw: str, value: Any) -> None:
    result = symbol.coerce(raw)
    assert result == value and type(result) is type(value)


def test_float_decimal_text_is_exact() -> None:
    # through Decimal: "0.07" is the float nearest 0.07, not 0.03 + 2 * 0.02 drift
    assert RATE.coerce("0.07") == 0.07
    assert RATE.coerce("0.30000000000000004") == 0.30000000000000004


def test_unknown_type_is_refused() -> None:
    with pytest.raises(ValueError, match="type must be one of"):
        Symbol("CONFIG_X", "list", None, "x")


def test_help_hint_and_render() -> None:
    assert COUNT.help_hint() == "expected int, from 1 to 1000"
    assert RATE.help_hint() == "expected float, at least 0"
    assert Symbol("CONFIG_X", "int", 0, "x", high=5).help_hint() == "expected int, at most 5"
    assert METHOD.help_hint() == "expected str, one of none|magnitude|state"
    assert FLAG.render(True) == "y" and FLAG.render(False) == "n"
    assert COUNT.render(12) == "12"


# -- the table ------------------------------------------------------------------------------
@pytest.fixture
def table() -> SymbolTable:
    names = ["CONFIG_LEARNING_RATE", "CONFIG_NUM_EPOCHS", "CONFIG_BATCH_SIZE", "CONFIG_COMPILE", "CONFIG_MODEL"]
    return SymbolTable(Symbol(n, "str", None, n) for n in names)


@pytest.mark.parametrize(
    ("typo", "suggestion"),
    [
        ("CONFIG_LEARNIG_RATE", "; did you mean CONFIG_LEARNING_RATE?"),
        ("CONFIG_LEARNING_RATES", "; did you mean CONFIG_LEARNING_RATE?"),
        ("CONFIG_NUM_EPOCH", "; did you mean CONFIG_NUM_EPOCHS?"),
        ("CONFIG_BATCHSIZE", "; did you mean CONFIG_BATCH_SIZE?"),
        ("BATCH_SIZE", "; did you mean CONFIG_BATCH_SIZE?"),  # the prefix forgotten
        ("CONFIG_FOO", ""),
        ("CONFIG_NOPE", ""),  # the shared CONFIG_ prefix alone is no resemblance
        ("CONFIG_MODE", "; did you mean CONFIG_MODEL?"),
    ],
)
def test_suggestions(table: SymbolTable, typo: str, suggestion: str) -> None:
    assert table.suggest(typo) == suggestion


def test_unknown_key_is_an_error_with_file_and_line(table: SymbolTable) -> None:
    with pytest.raises(RangeConfigError) as excinfo:
        table.check_known("CONFIG_LEARNIG_RATE", "sweep.rc", 7)
    assert str(excinfo.value) == (
        "sweep.rc:7: CONFIG_LEARNIG_RATE is not a known symbol: no installed plugin consumes it; "
        "did you mean CONFIG_LEARNING_RATE? (pytest --sweep-symbols lists them)"
    )
    table.check_known("CONFIG_MODEL", "sweep.rc", 1)  # known: no error


def test_table_coerce_adds_file_and_line() -> None:
    table = SymbolTable([COUNT])
    assert table.coerce("CONFIG_COUNT", "12", "sweep.rc", 3) == 12
    with pytest.raises(RangeConfigError) as excinfo:
        table.coerce("CONFIG_COUNT", "0", "sweep.rc", 3)
    assert (excinfo.value.path, excinfo.value.line) == ("sweep.rc", 3)
    assert str(excinfo.value) == "sweep.rc:3: CONFIG_COUNT=0 is out of range; expected int, from 1 to 1000"


def test_conflicting_declarations_are_refused() -> None:
    table = SymbolTable([Symbol("CONFIG_DEPTH", "int", 1, "depth", plugin="plugin_a")])
    with pytest.raises(ValueError) as excinfo:
        table.add(Symbol("CONFIG_DEPTH", "str", "deep", "depth", plugin="plugin_b"))
    assert str(excinfo.value) == "symbol CONFIG_DEPTH declared as int by plugin_a and as str by plugin_b"


def test_agreeing_declarations_keep_the_first() -> None:
    first = Symbol("CONFIG_DEPTH", "int", 1, "first", plugin="plugin_a")
    table = SymbolTable([first, Symbol("CONFIG_DEPTH", "int", 9, "second", plugin="plugin_b")])
    assert len(table) == 1
    assert table["CONFIG_DEPTH"] is first
    assert table.defaults() == {"CONFIG_DEPTH": 1}


def test_table_iterates_sorted_and_gives_defaults() -> None:
    table = SymbolTable([RATE, COUNT, FLAG])
    assert [s.name for s in table] == ["CONFIG_COUNT", "CONFIG_FLAG", "CONFIG_RATE"]
    assert table.defaults() == {"CONFIG_COUNT": 1, "CONFIG_FLAG": False, "CONFIG_RATE": None}
    assert "CONFIG_RATE" in table and "CONFIG_NOPE" not in table


def test_all_unknown_keys_are_named_at_once_in_file_order(table: SymbolTable) -> None:
    with pytest.raises(RangeConfigError) as excinfo:
        table.check_all_known(
            [("CONFIG_ZZZ", 2), ("CONFIG_MODEL", 3), ("CONFIG_LEARNIG_RATE", 5), ("CONFIG_AAA", 9)], "x.rc"
        )
    assert str(excinfo.value) == (
        "x.rc: 3 unknown symbols: no installed plugin consumes them (pytest --sweep-symbols lists them); "
        "fix or remove each:\n"
        "  x.rc:2: CONFIG_ZZZ\n"
        "  x.rc:5: CONFIG_LEARNIG_RATE; did you mean CONFIG_LEARNING_RATE?\n"
        "  x.rc:9: CONFIG_AAA"
    )


def test_a_single_unknown_key_keeps_the_one_line_error(table: SymbolTable) -> None:
    with pytest.raises(RangeConfigError) as excinfo:
        table.check_all_known([("CONFIG_MODEL", 1), ("CONFIG_NUM_EPOCH", 4)], "x.rc")
    assert str(excinfo.value).startswith("x.rc:4: CONFIG_NUM_EPOCH is not a known symbol")
    table.check_all_known([("CONFIG_MODEL", 1)], "x.rc")  # all known: no error
