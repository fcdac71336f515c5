"""The range-config language: every form of the sweep guide and every error."""

from __future__ import annotations

import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_sweep.matrix import rangeconfig
from pytest_sweep.matrix.errors import RangeConfigError
from pytest_sweep.matrix.rangeconfig import Param, RangeConfig, parse_file, parse_text, quoted_keys, resolve_not_set

ROOT = Path(__file__).resolve().parent.parent


def parse(text: str) -> RangeConfig:
    return parse_text(text, "cfg")


def values(text: str) -> tuple[str, ...]:
    (param,) = parse(text).params
    return param.values


def error(text: str) -> RangeConfigError:
    with pytest.raises(RangeConfigError) as info:
        parse(text)
    return info.value


# --- forms -----------------------------------------------------------------------------------


def test_fixed_value() -> None:
    rc = parse("CONFIG_ADAMWPRUNE_BETA2=0.999\n")
    assert rc.params == (Param("CONFIG_ADAMWPRUNE_BETA2", ("0.999",), 1, "fixed", False),)
    assert not rc.params[0].swept


def test_y_and_n_stay_plain_strings() -> None:
    rc = parse("CONFIG_A=y\nCONFIG_B=n\n")
    assert [p.values for p in rc.params] == [("y",), ("n",)]


def test_quoted_string() -> None:
    (param,) = parse('CONFIG_PRUNING_METHOD="state"').params
    assert param.values == ("state",)
    assert param.quoted and param.kind == "fixed"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('"a # not a comment"', "a # not a comment"),
        ('"a:b:c"', "a:b:c"),
        ('" padded "', " padded "),
        ('""', ""),
    ],
)
def test_quotes_make_everything_literal(value: str, expected: str) -> None:
    (param,) = parse(f"CONFIG_X={value}").params
    assert param.values == (expected,)
    assert param.quoted and param.kind == "fixed"


@pytest.mark.parametrize(
    ("value", "kind", "expected"),
    [
        ('"0.85|0.87"', "choice", ("0.85", "0.87")),
        ('"none|movement"', "choice", ("none", "movement")),
        ('" y | n "', "choice", ("y", "n")),
        ('"0.03:0.02:0.09"', "range", ("0.03", "0.05", "0.07", "0.09")),
    ],
)
def test_a_quoted_whole_value_with_choices_or_a_range_expands(value: str, kind: str, expected: tuple[str, ...]) -> None:
    """As the reference's generator does: it strips the quotes, then looks for '|' and ':'."""
    (param,) = parse(f"CONFIG_X={value}").params
    assert (param.kind, param.values, param.quoted) == (kind, expected, True)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('"0.1:0.2:0.6"', "does not land on 0.6"),
        ('"a||b"', "empty choice at position 2 of 3"),
        ('"a|a"', "duplicate choice 'a'"),
    ],
)
def test_a_quoted_whole_value_is_checked_like_an_unquoted_one(value: str, message: str) -> None:
    with pytest.raises(RangeConfigError, match=message):
        parse(f"CONFIG_X={value}")


def test_choices() -> None:
    (param,) = parse("CONFIG_ADAMWPRUNE_BETA1=0.85|0.87|0.89").params
    assert param.values == ("0.85", "0.87", "0.89")
    assert param.kind == "choice" and param.swept and not param.quoted


def test_choice_items_are_stripped() -> None:
    assert values("CONFIG_ADAMWPRUNE_AMSGRAD= y | n ") == ("y", "n")


def test_quoted_choices() -> None:
    (param,) = parse('CONFIG_ADAMWPRUNE_VARIANT="bitter0" | "bit|ter1"').params
    assert param.values == ("bitter0", "bit|ter1")
    assert param.quoted and param.kind == "choice"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("0.03:0.02:0.09", ("0.03", "0.05", "0.07", "0.09")),
        ("0.001:0.001:0.003", ("0.001", "0.002", "0.003")),
        ("1:1:5", ("1", "2", "3", "4", "5")),
        ("7800:3900:15600", ("7800", "11700", "15600")),
        ("1e-3:1e-3:3e-3", ("0.001", "0.002", "0.003")),
        ("0.1:0.1:0.3", ("0.1", "0.2", "0.3")),
        ("1:0.5:2", ("1.0", "1.5", "2.0")),
        ("-1:1:1", ("-1", "0", "1")),
        (" 70 : 10 : 90 ", ("70", "80", "90")),
        ("5:1:5", ("5",)),
        ("0.50:0.25:1", ("0.50", "0.75", "1.00")),
        (".5:.5:1.", ("0.5", "1.0")),
        ("+1:+1:3", ("1", "2", "3")),
        ("1e10:1e10:3e10", ("10000000000", "20000000000", "30000000000")),
    ],
)
def test_exact_decimal_ranges(spec: str, expected: tuple[str, ...]) -> None:
    (param,) = parse(f"CONFIG_X={spec}").params
    assert param.values == expected
    assert param.kind == "range"


@pytest.mark.parametrize("value", ["http://host:8080/path", "a:b", "a:b:c", "1:2", "1:2:3:4", "0.1:x:0.3"])
def test_colon_values_that_are_not_ranges_are_single_strings(value: str) -> None:
    (param,) = parse(f"CONFIG_X={value}").params
    assert param.values == (value,)
    assert param.kind == "fixed"


def test_not_set_comment_is_kept_until_the_types_are_known() -> None:
    rc = parse("# CONFIG_ADAMWPRUNE_AMSGRAD is not set\n#CONFIG_B is not set\n")
    assert rc.params == (
        Param("CONFIG_ADAMWPRUNE_AMSGRAD", ("n",), 1, "unset", False),
        Param("CONFIG_B", ("n",), 2, "unset", False),
    )


def test_not_set_means_n_for_a_bool_and_the_default_for_other_types() -> None:
    rc = parse("# CONFIG_FLAG is not set\n# CONFIG_NAME is not set\nCONFIG_A=1|2\n")
    resolved = resolve_not_set(rc, lambda key: key == "CONFIG_FLAG")
    assert resolved.params == (
        Param("CONFIG_FLAG", ("n",), 1, "fixed", False),
        Param("CONFIG_A", ("1", "2"), 3, "choice", False),
    )
    assert resolve_not_set(resolved, lambda key: False) is resolved  # nothing left to resolve


def test_comments_blank_lines_and_line_numbers() -> None:
    text = (
        "# a comment\n"
        "\n"
        "   \n"
        "  CONFIG_A=1   # trailing comment\n"
        "#CONFIG_B=2\n"
        "# CONFIG_C is not set, really\n"
        'CONFIG_D="x#y"  # the first # outside quotes starts the comment\n'
        "CONFIG_E = 3\n"
    )
    rc = parse(text)
    assert [(p.key, p.values, p.line) for p in rc.params] == [
        ("CONFIG_A", ("1",), 4),
        ("CONFIG_D", ("x#y",), 7),
        ("CONFIG_E", ("3",), 8),
    ]


def test_guide_inline_comment_after_choices() -> None:
    param = parse("CONFIG_PRUNING_WARMUP=7800|11700  # Epoch 20 or 30").params[0]
    assert param.values == ("7800", "11700")


def test_crlf_line_endings() -> None:
    rc = parse("CONFIG_A=1|2\r\nCONFIG_B=x\r\n")
    assert [(p.key, p.values, p.line) for p in rc.params] == [
        ("CONFIG_A", ("1", "2"), 1),
        ("CONFIG_B", ("x",), 2),
    ]


def test_split_on_first_equals() -> None:
    assert values("CONFIG_X=a=b") == ("a=b",)


def test_range_config_accessors() -> None:
    rc = parse('CONFIG_Z=1|2|3\nCONFIG_B="s"\nCONFIG_A=0:1:1\nCONFIG_M=y\n')
    assert [p.key for p in rc.params] == ["CONFIG_Z", "CONFIG_B", "CONFIG_A", "CONFIG_M"]
    assert [p.key for p in rc.swept] == ["CONFIG_A", "CONFIG_Z"]
    assert [p.key for p in rc.fixed] == ["CONFIG_B", "CONFIG_M"]
    assert rc.count == 6
    assert rc.param("CONFIG_B") == Param("CONFIG_B", ("s",), 2, "fixed", True)
    assert rc.param("CONFIG_NOPE") is None
    assert quoted_keys(rc) == {"CONFIG_B"}
    assert parse("CONFIG_A=1").count == 1


# --- the guide's examples --------------------------------------------------------------------

GUIDE_FORMAT = """\
# Fixed parameters
CONFIG_MODEL_MODE_SINGLE=y
CONFIG_TARGET_SPARSITY=0.7

# Range parameters (start:step:end)
CONFIG_ADAMWPRUNE_WEIGHT_DECAY=0.03:0.02:0.09

# Choice parameters (option1|option2|option3)
CONFIG_ADAMWPRUNE_BETA1=0.85|0.87|0.89
CONFIG_ADAMWPRUNE_AMSGRAD=y|n

# Single value
CONFIG_ADAMWPRUNE_BETA2=0.999
"""


def test_guide_format_example() -> None:
    rc = parse(GUIDE_FORMAT)
    assert rc.count == 4 * 3 * 2
    weight_decay = rc.param("CONFIG_ADAMWPRUNE_WEIGHT_DECAY")
    assert weight_decay is not None
    assert weight_decay.values == ("0.03", "0.05", "0.07", "0.09")
    assert weight_decay.line == 6


def test_guide_state_pruning_compare_range() -> None:
    rc = parse_file(ROOT / "tests" / "golden" / "state_pruning_compare_range")
    assert rc.count == 36
    assert {p.key: len(p.values) for p in rc.swept} == {
        "CONFIG_ADAMWPRUNE_BETA1": 3,
        "CONFIG_ADAMWPRUNE_WEIGHT_DECAY": 3,
        "CONFIG_PRUNING_RAMP_END_EPOCH": 2,
        "CONFIG_PRUNING_WARMUP": 2,
    }
    assert quoted_keys(rc) == {"CONFIG_PRUNING_METHOD"}


@pytest.mark.parametrize(
    ("text", "count"),
    [
        (  # Quick Test
            "CONFIG_ADAMWPRUNE_WEIGHT_DECAY=0.03|0.07\nCONFIG_ADAMWPRUNE_BETA1=0.85|0.89\n"
            "CONFIG_PRUNING_WARMUP=7800\nCONFIG_PRUNING_RAMP_END_EPOCH=70\n"
            "# Total: 4 configurations\n",
            4,
        ),
        (  # Fine-tuning
            "CONFIG_ADAMWPRUNE_WEIGHT_DECAY=0.04|0.05|0.06\nCONFIG_ADAMWPRUNE_BETA1=0.86|0.87|0.88\n"
            "CONFIG_PRUNING_WARMUP=7800\nCONFIG_PRUNING_RAMP_END_EPOCH=80\n",
            9,
        ),
        (  # Start Small
            "CONFIG_ADAMWPRUNE_WEIGHT_DECAY=0.01|0.05|0.10\nCONFIG_ADAMWPRUNE_BETA1=0.80|0.85|0.90\n",
            9,
        ),
        ("CONFIG_NUM_EPOCHS=20  # Quick test to eliminate bad configs\n", 1),
    ],
)
def test_guide_tip_examples(text: str, count: int) -> None:
    assert parse(text).count == count


# --- errors ----------------------------------------------------------------------------------

ERRORS = [
    # (text, line, message fragments: what is wrong ... how to fix it)
    ("CONFIG_A=1\nCONFIG_BATCH_SIZE 128\n", 2, ["expected KEY=VALUE", "e.g. CONFIG_BATCH_SIZE=128"]),
    ("=5\n", 1, ["missing key", "write KEY=VALUE"]),
    ("CONFIG X=5\n", 1, ["invalid key 'CONFIG X'", "use letters, digits and '_'"]),
    ("1CONFIG=5\n", 1, ["invalid key '1CONFIG'", "not starting with a digit"]),
    ("\nCONFIG_X=\n", 2, ["CONFIG_X has no value", "write a value", "or remove the line"]),
    ("CONFIG_X=   # nothing here\n", 1, ["CONFIG_X has no value", "remove the line"]),
    (
        "CONFIG_A=1\n\nCONFIG_A=2\n",
        3,
        ["CONFIG_A is already set on line 1", "keep one definition"],
    ),
    ("CONFIG_A=y\n# CONFIG_A is not set\n", 2, ["already set on line 1"]),
    ('CONFIG_X="abc\n', 1, ["unterminated double quote", "add the closing"]),
    ('CONFIG_X="abc # comment\n', 1, ["unterminated double quote"]),
    ('CONFIG_X=a"b"c\n', 1, ["misplaced double quote", 'quote the whole value, e.g. CONFIG_X="state"']),
    ("CONFIG_X=a||b\n", 1, ["empty choice at position 2 of 3", "remove the extra '|'"]),
    ("CONFIG_X=a|\n", 1, ["empty choice at position 2 of 2", "remove the extra '|'"]),
    ("CONFIG_X=|a\n", 1, ["empty choice at position 1 of 2", "remove the extra '|'"]),
    ("CONFIG_X=a|b|a\n", 1, ["duplicate choice 'a' at positions 1 and 3", "list each value once"]),
    ('CONFIG_X="a"|b\n', 1, ["quoted and some are not", 'quote all of them ("a"|"b") or none']),
    ("CONFIG_X=1:1:3|5\n", 1, ["range 1:1:3 cannot be one of several choices", "list its values"]),
    (
        "CONFIG_X=0.1:0.2:0.6\n",
        1,
        ["0.1:0.2:0.6 does not land on 0.6 (it gives 0.1, 0.3, 0.5); use an end of 0.5 or 0.7"],
    ),
    (
        "CONFIG_X=0:0.1:100.05\n",
        1,
        ["does not land on 100.05 (it gives 0.00, 0.10, 0.20, ..., 100.00)", "100.00 or 100.10"],
    ),
    ("CONFIG_X=0:0:1\n", 1, ["step 0 in 0:0:1 must be greater than 0", "e.g. 0.03:0.02:0.09"]),
    ("CONFIG_X=1:-1:0\n", 1, ["step -1 in 1:-1:0 must be greater than 0"]),
    (
        "CONFIG_X=0.09:0.02:0.03\n",
        1,
        ["start 0.09 is greater than end 0.03", "write the smaller number first, e.g. 0.03:0.02:0.09"],
    ),
    ("CONFIG_X=0:1:1000000\n", 1, ["gives 1000001 values, more than the 1000000", "use a larger step"]),
    ("CONFIG_X=0:1e-70:1\n", 1, ["needs more than 60 digits per value", "use fewer digits"]),
]


@pytest.mark.parametrize(("text", "line", "fragments"), ERRORS)
def test_errors_name_file_line_and_fix(text: str, line: int, fragments: list[str]) -> None:
    exc = error(text)
    assert (exc.path, exc.line) == ("cfg", line)
    assert str(exc) == f"cfg:{line}: {exc.message}"
    assert "\n" not in str(exc)
    assert "; " in exc.message  # "what is wrong; how to fix it"
    for fragment in fragments:
        assert fragment in exc.message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty; add at least one CONFIG_...=value line"),
        ("\n  \n", "the file is empty; add at least one CONFIG_...=value line"),
        ("# only comments\n# CONFIG_X=1\n", "no parameters found; add at least one CONFIG_...=value line"),
    ],
)
def test_no_parameters(text: str, message: str) -> None:
    exc = error(text)
    assert exc.line is None
    assert str(exc) == f"cfg: {message}"


def test_range_size_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    assert rangeconfig.MAX_RANGE_VALUES == 1_000_000
    monkeypatch.setattr(rangeconfig, "MAX_RANGE_VALUES", 10)
    assert len(values("CONFIG_X=1:1:10")) == 10
    assert "gives 11 values, more than the 10" in error("CONFIG_X=1:1:11").message


def test_error_pickles() -> None:
    exc = RangeConfigError("f", 3, "bad; fix it")
    clone = pickle.loads(pickle.dumps(exc))
    assert (clone.path, clone.line, clone.message, str(clone)) == ("f", 3, "bad; fix it", "f:3: bad; fix it")


# --- files -----------------------------------------------------------------------------------


def test_parse_file(tmp_path: Path) -> None:
    path = tmp_path / "range"
    path.write_bytes(b"\xef\xbb\xbfCONFIG_A=1|2\n")  # a UTF-8 byte-order mark is tolerated
    rc = parse_file(path)
    assert rc.path == str(path)
    assert rc.params == (Param("CONFIG_A", ("1", "2"), 1, "choice", False),)


def test_parse_file_errors_carry_the_path(tmp_path: Path) -> None:
    path = tmp_path / "range"
    path.write_text("CONFIG_A=1\nCONFIG_A=2\n")
    with pytest.raises(RangeConfigError, match=r"^.*range:2: CONFIG_A is already set on line 1"):
        parse_file(path)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: None, "No such file or directory"),
        (lambda p: p.mkdir(), "Is a directory"),
        (lambda p: p.write_bytes(b"CONFIG_A=\xff\n"), "not UTF-8 text (byte 0xff at offset 9)"),
    ],
)
def test_unreadable_files(tmp_path: Path, make: Callable[[Path], object], reason: str) -> None:
    path = tmp_path / "range"
    make(path)
    with pytest.raises(RangeConfigError) as info:
        parse_file(path)
    assert info.value.line is None
    assert str(info.value) == (f"{path}: cannot read range config: {reason}; check the --range-config path")


def test_core_imports_without_torch() -> None:
    code = (
        "import sys; sys.modules['torch'] = None\n"  # any `import torch` now fails
        "import matrix.rangeconfig, matrix.grid, matrix.generate\n"
        "assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
