"""Hostile range configs, ``--config-dir`` folders and reference defconfigs (issue 16, further round).

Each input is one test id.  Whatever the input, reading it either succeeds or raises
:class:`~pytest_sweep.matrix.errors.RangeConfigError` whose message is one line naming the file
(and the line, where there is one) - never another exception, never a raw control character.
Unit level: the parser, the typing and the reference plugin's rewrite are called directly.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pytest_sweep.matrix.errors import RangeConfigError
from pytest_sweep.matrix.generate import read_config_dir
from pytest_sweep.matrix.grid import expand
from pytest_sweep.matrix.rangeconfig import parse_file, parse_text, resolve_not_set
from pytest_sweep.matrix.symbols import Symbol, SymbolTable
from pytest_sweep.plugins import reference
from pytest_sweep.plugins.refine import builtin_symbols


def _one_line(message: str) -> None:
    assert "\n" not in message and "\r" not in message, message
    assert all(c.isprintable() for c in message), repr(message)


def _read(text: str | bytes, tmp_path: Path) -> tuple[str, tuple[str, ...]] | str:
    """Parse and expand ``text`` from a file: its first parameter, or the one-line error."""
    path = tmp_path / "hostile.rc"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
    try:
        rc = parse_file(path)
        combos = expand(rc, limit=10_000)
    except RangeConfigError as exc:
        message = str(exc)
        _one_line(message)
        assert message.startswith(str(path)), message
        return message
    assert combos
    return rc.params[0].key, rc.params[0].values


# -- the parser: (text, what it must give: values, or a piece of the error) ----------------------------
PARSER_CASES = {
    "empty": ("", "the file is empty"),
    "blank-lines": ("\n\n   \n\t\n", "the file is empty"),
    "comments-only": ("# a\n# b\n", "no parameters found"),
    "bom-only": (b"\xef\xbb\xbf", "the file is empty"),
    "bom-then-config": (b"\xef\xbb\xbfCONFIG_X=1\n", ("CONFIG_X", ("1",))),
    "crlf": ("CONFIG_X=1|2\r\nCONFIG_Y=3\r\n", ("CONFIG_X", ("1", "2"))),
    "cr-only": ("CONFIG_X=1\rCONFIG_Y=2\r", ("CONFIG_X", ("1",))),
    "nul-byte-in-value": ("CONFIG_X=a\x00b\n", ("CONFIG_X", ("a\x00b",))),
    "nul-byte-in-key": ("CONFIG_\x00X=1\n", "invalid key"),
    "invalid-utf8": (b"CONFIG_X=\xff\xfe\n", "not UTF-8 text (byte 0xff"),
    "utf16-file": ("CONFIG_X=1\n".encode("utf-16"), "not UTF-8 text"),
    "latin1-file": ("CONFIG_X=caf\u00e9\n".encode("latin-1"), "not UTF-8 text"),
    "no-equals": ("CONFIG_X\n", "expected KEY=VALUE"),
    "no-key": ("=1\n", "missing key before '='"),
    "no-value": ("CONFIG_X=\n", "CONFIG_X has no value"),
    "blank-value": ("CONFIG_X=   # nothing\n", "CONFIG_X has no value"),
    "double-equals": ("CONFIG_X==1\n", ("CONFIG_X", ("=1",))),
    "key-with-space": ("CONFIG X=1\n", "invalid key"),
    "key-starts-with-digit": ("1CONFIG=1\n", "invalid key"),
    "unicode-key": ("CONFIG_\u00c9T\u00c9=1\n", "invalid key"),
    "key-with-ansi": ("\x1b[31mCONFIG_X=1\n", "invalid key"),
    "duplicate-key": ("CONFIG_X=1\nCONFIG_X=2\n", "already set on line 1"),
    "unterminated-quote": ('CONFIG_X="abc\n', "unterminated double quote"),
    "escaped-closing-quote": ('CONFIG_X="abc\\"\n', "a backslash before a quote makes it part of the value"),
    "quote-inside": ('CONFIG_X=ab"c"\n', "misplaced double quote"),
    "text-after-quote": ('CONFIG_X="a"b\n', "misplaced double quote"),
    "only-bar": ("CONFIG_X=|\n", "empty choice at position 1 of 2"),
    "double-bar": ("CONFIG_X=1||2\n", "empty choice at position 2 of 3"),
    "trailing-bar": ("CONFIG_X=1|2|\n", "empty choice at position 3 of 3"),
    "mixed-quoting": ('CONFIG_X="a"|b\n', "some choices in"),
    "duplicate-number": ("CONFIG_X=0.1|0.10\n", "duplicate choice"),
    "duplicate-exponent": ("CONFIG_X=1e-3|0.001\n", "duplicate choice"),
    "duplicate-string": ('CONFIG_X="a"|"a"\n', "duplicate choice"),
    "range-step-zero": ("CONFIG_X=1:0:3\n", "must be greater than 0"),
    "range-step-negative": ("CONFIG_X=1:-1:3\n", "must be greater than 0"),
    "range-reversed": ("CONFIG_X=3:1:1\n", "is greater than end"),
    "range-not-landing": ("CONFIG_X=0:0.3:1\n", "does not land on"),
    "range-too-many": ("CONFIG_X=0:1:10000000\n", "more than the 1000000"),
    "range-huge-exponent": ("CONFIG_X=1e999999:1:1e999999\n", "more than 60 digits"),
    "range-tiny-exponent": ("CONFIG_X=0:1e-99999:1\n", "more than 60 digits"),
    "range-in-choices": ("CONFIG_X=1:1:3|5\n", "cannot be one of several choices"),
    "range-with-spaces": ("CONFIG_X= 1 : 1 : 3 \n", ("CONFIG_X", ("1", "2", "3"))),
    "range-nan": ("CONFIG_X=nan:1:3\n", ("CONFIG_X", ("nan:1:3",))),
    "range-four-parts": ("CONFIG_X=1:1:3:4\n", ("CONFIG_X", ("1:1:3:4",))),
    "quoted-range": ('CONFIG_X="1:1:3"\n', ("CONFIG_X", ("1", "2", "3"))),
    "escaped-range": ('CONFIG_X="1\\:1\\:3"\n', ("CONFIG_X", ("1:1:3",))),
    "quoted-choices-empty": ('CONFIG_X="a||b"\n', "empty choice"),
    "escaped-bar": ('CONFIG_X="a\\|b"\n', ("CONFIG_X", ("a|b",))),
    "escaped-quote": ('CONFIG_X="say \\"hi\\""\n', ("CONFIG_X", ('say "hi"',))),
    "backslash-kept": ('CONFIG_X="C:\\data"\n', ("CONFIG_X", ("C:\\data",))),
    "hash-in-quotes": ('CONFIG_X="a#b" # c\n', ("CONFIG_X", ("a#b",))),
    "hash-unquoted": ("CONFIG_X=a#b\n", ("CONFIG_X", ("a",))),
    "empty-quoted": ('CONFIG_X=""\n', ("CONFIG_X", ("",))),
    "not-set-bool": ("# CONFIG_X is not set\nCONFIG_Y=1\n", ("CONFIG_X", ("n",))),
    "not-set-with-tabs": ("#\tCONFIG_X is not set\n", ("CONFIG_X", ("n",))),
    "not-set-lowercase": ("# config_x is not set\nCONFIG_Y=1\n", ("CONFIG_Y", ("1",))),
    "nbsp-around-equals": ("CONFIG_X\u00a0=\u00a01\n", ("CONFIG_X", ("1",))),
    "line-separator-in-value": ('CONFIG_X="a\u2028b"\n', ("CONFIG_X", ("a\u2028b",))),
    "rtl-override": ('CONFIG_X="\u202eabc"\n', ("CONFIG_X", ("\u202eabc",))),
    "emoji": ('CONFIG_X="\U0001f600"|"\U0001f601"\n', ("CONFIG_X", ("\U0001f600", "\U0001f601"))),
    "long-line": ("CONFIG_X=" + "9" * 200_000 + "\n", ("CONFIG_X", ("9" * 200_000,))),
    "long-key": ("CONFIG_" + "X" * 100_000 + "=1\n", ("CONFIG_" + "X" * 100_000, ("1",))),
    "many-choices": ("CONFIG_X=" + "|".join(str(i) for i in range(5000)) + "\n", ("CONFIG_X", tuple(map(str, range(5000))))),
    "too-many-combinations": ("".join(f"CONFIG_X{i}=1|2|3\n" for i in range(12)), "combinations exceed the limit"),
    "many-lines": ("".join(f"CONFIG_X{i}=1\n" for i in range(20_000)), ("CONFIG_X0", ("1",))),
}  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), list(PARSER_CASES.values()), ids=list(PARSER_CASES))
def test_a_hostile_range_config_reads_or_fails_in_one_line(
    tmp_path: Path, text: str | bytes, expected: str | tuple[str, tuple[str, ...]]
) -> None:
    got = _read(text, tmp_path)
    if isinstance(expected, str):
        assert isinstance(got, str) and expected in got, got
    else:
        assert got == expected


# -- typing: every value a symbol might be given ------------------------------------------------------
NUMBERS = {
    "nan": ("float", "not a finite number"),
    "inf": ("float", "not a finite number"),
    "-Infinity": ("float", "not a finite number"),
    "sNaN": ("float", "not a finite number"),
    "1e999999999": ("float", "too large"),
    "1e-400": ("float", "too small for a float"),
    "9" * 400: ("int", "too large"),
    "1.5": ("int", "must be a whole number"),
    "0x10": ("int", "is not a number"),
    "1_000": ("int", 1000),  # Decimal's own spelling
    "\u0661\u0662": ("int", 12),  # Arabic-Indic digits are digits to Decimal: a number, not a crash
    " 5 ": ("int", 5),
    "-0": ("int", 0),
    "5\x00": ("int", "is not a number"),
    "yes": ("bool", True),
    "maybe": ("bool", "is not a boolean"),
    "": ("bool", "is not a boolean"),
    "\x1b[31my": ("bool", "is not a boolean"),
}


@pytest.mark.parametrize(("raw", "case"), list(NUMBERS.items()), ids=[repr(k)[:20] for k in NUMBERS])
def test_a_hostile_value_is_typed_or_refused_in_one_line(raw: str, case: tuple[str, object]) -> None:
    kind, expected = case
    table = SymbolTable([Symbol("CONFIG_X", kind, None, "test")])
    try:
        value = table.coerce("CONFIG_X", raw, "f.rc", 3)
    except RangeConfigError as exc:
        message = str(exc)
        assert isinstance(expected, str) and expected in message and message.startswith("f.rc:3: "), message
        assert "\n" not in message and "\x1b" not in message and "\x00" not in message
        return
    assert value == expected


# -- --config-dir folders ------------------------------------------------------------------------------
def _dir_case(tmp_path: Path, case: str) -> Path:
    folder = tmp_path / "configs"
    folder.mkdir()
    if case == "empty":
        pass
    elif case == "only-a-folder":
        (folder / "config_001").mkdir()
    elif case == "two-values":
        (folder / "config_001").write_text("CONFIG_X=1|2\n")
    elif case == "a-range":
        (folder / "config_001").write_text("CONFIG_X=1:1:3\n")
    elif case == "same-number":
        (folder / "config_001").write_text("CONFIG_X=1\n")
        (folder / "config_1").write_text("CONFIG_X=2\n")
    elif case == "huge-number":
        (folder / ("config_" + "9" * 50)).write_text("CONFIG_X=1\n")
    elif case == "not-utf8":
        (folder / "config_001").write_bytes(b"CONFIG_X=\xff\n")
    elif case == "empty-file":
        (folder / "config_001").write_text("")
    elif case == "fifo":
        os.mkfifo(folder / "config_001")
        (folder / "config_002").write_text("CONFIG_X=1\n")
    elif case == "symlink-loop":
        os.symlink("config_001", folder / "config_001")
        (folder / "config_002").write_text("CONFIG_X=1\n")
    elif case == "dangling-link":
        os.symlink("nowhere", folder / "config_001")
        (folder / "config_002").write_text("CONFIG_X=1\n")
    elif case == "escaped-values":
        (folder / "config_001").write_text('CONFIG_X="a\\|b"\nCONFIG_Y="1\\:2\\:3"\n')
    elif case == "different-keys":
        (folder / "config_001").write_text("CONFIG_X=1\n")
        (folder / "config_002").write_text("CONFIG_Y=1\n")
    elif case == "a-file-not-a-folder":
        folder.rmdir()
        folder.write_text("CONFIG_X=1\n")
    return folder


DIR_CASES = {
    "empty": "no config_NNN files found",
    "only-a-folder": "no config_NNN files found",
    "two-values": "has 2 values but a generated config holds one value per key",
    "a-range": "has 3 values but a generated config holds one value per key",
    "same-number": "have the same number; remove one",
    "huge-number": 1,
    "not-utf8": "not UTF-8 text",
    "empty-file": "the file is empty",
    "fifo": 1,
    "symlink-loop": 1,
    "dangling-link": 1,
    "escaped-values": 1,
    "different-keys": 2,
    "a-file-not-a-folder": "is not a directory",
}


@pytest.mark.parametrize(("case", "expected"), list(DIR_CASES.items()), ids=list(DIR_CASES))
def test_a_hostile_config_dir_reads_or_fails_in_one_line(tmp_path: Path, case: str, expected: str | int) -> None:
    folder = _dir_case(tmp_path, case)
    try:
        combos = read_config_dir(folder)
    except RangeConfigError as exc:
        _one_line(str(exc))
        assert isinstance(expected, str) and expected in str(exc), str(exc)
        return
    assert len(combos) == expected
    if case == "escaped-values":
        assert combos[0].values == {"CONFIG_X": "a|b", "CONFIG_Y": "1:2:3"}


# -- reference defconfigs ---------------------------------------------------------------------------------
SYMBOLS = builtin_symbols()
DEFCONFIGS = {
    "two-modes": ("CONFIG_MODEL_MODE_SINGLE=y\nCONFIG_MODEL_MODE_MULTIPLE=y\n", "are both y; choose one mode"),
    "two-selections": (
        "CONFIG_PRUNING_SELECT_MAGNITUDE=y\nCONFIG_PRUNING_SELECT_MOVEMENT=y\n",
        "are both y; select one",
    ),
    "swept-selection": ("CONFIG_PRUNING_SELECT_MAGNITUDE=y|n\n", "give it one value"),
    "swept-no-effect": ("CONFIG_MODEL_SELECT_LENET5=y\nCONFIG_PREFETCH_FACTOR=2|4\n", "would train identical trials"),
    "no-optimizer-enabled": (
        "CONFIG_OPTIMIZER_MODE_MULTIPLE=y\n"
        + "".join(
            f"CONFIG_OPTIMIZER_ENABLE_{o}=n\n" for o in ("SGD", "ADAM", "ADAMW", "ADAMWADV", "ADAMWSPAM", "ADAMWPRUNE")
        ),
        "no optimizer is enabled",
    ),
    "empty-model-list": ('CONFIG_TEST_MODELS=""\nCONFIG_PRUNING_MODE_NONE=y\n', 6),
    "commas-only": ('CONFIG_TEST_MODELS=",,,"\nCONFIG_PRUNING_MODE_NONE=y\n', 6),
    "model-conflict": (
        "CONFIG_PRUNING_MODE_NONE=y\nCONFIG_MODEL_SELECT_RESNET18=y\nCONFIG_MODEL=lenet5\n",
        "conflicts with",
    ),
    "optimizer-conflict": (
        "CONFIG_PRUNING_MODE_NONE=y\nCONFIG_OPTIMIZER_SELECT_SGD=y\nCONFIG_OPTIMIZER=adam\n",
        "conflicts with",
    ),
    "method-conflict": ("CONFIG_PRUNING_SELECT_MAGNITUDE=y\nCONFIG_PRUNING_METHOD=state\n", "conflicts with"),
    "variant-conflict": (
        "CONFIG_LENET5_ADAMWPRUNE_VARIANT_BITTER0=y\nCONFIG_ADAMWPRUNE_VARIANT=bitter1\n",
        "conflicts with",
    ),
    "agreeing-model": ("CONFIG_MODEL_SELECT_LENET5=y\nCONFIG_MODEL=LeNet5\nCONFIG_PRUNING_MODE_NONE=y\n", 6),
    "alias-conflict": ("CONFIG_VERBOSE=y\nCONFIG_RESNET18_EPOCHS=3\nCONFIG_NUM_EPOCHS=4\n", "keep one of them"),
    "bool-with-comment": ("CONFIG_MODEL_SELECT_LENET5=y   # yes\nCONFIG_PRUNING_MODE_NONE=y\n", 6),
    "quoted-sparsity-choices": (
        "CONFIG_MODEL_SELECT_LENET5=y\nCONFIG_OPTIMIZER_SELECT_SGD=y\nCONFIG_PRUNING_SELECT_MAGNITUDE=y\n"
        'CONFIG_TARGET_SPARSITY="0.5|0.8"\n',
        2,
    ),
}


@pytest.mark.parametrize(("text", "expected"), list(DEFCONFIGS.values()), ids=list(DEFCONFIGS))
def test_a_hostile_defconfig_runs_or_fails_in_one_line(text: str, expected: str | int) -> None:
    rc = parse_text(text, "defconfig")
    try:
        rc = resolve_not_set(rc, lambda key: key in SYMBOLS and SYMBOLS[key].type == "bool")
        rewritten = reference.pytest_sweep_rewrite_range_config(rc=rc, symbols=SYMBOLS)
        assert rewritten is not None
        combos = expand(rewritten.config)
        for combo in combos:
            for key, raw in combo.values.items():
                SYMBOLS.coerce(key, raw, "defconfig", combo.lines.get(key, 0))
    except RangeConfigError as exc:
        message = str(exc)
        _one_line(message)
        assert isinstance(expected, str) and expected in message and message.startswith("defconfig:"), message
        return
    assert len(combos) == expected
