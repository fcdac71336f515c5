"""Grid expansion: the reference order and names, the limit, and speed at scale."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import pytest

from pytest_sweep.matrix.errors import RangeConfigError
from pytest_sweep.matrix.grid import Combination, expand, iter_combinations
from pytest_sweep.matrix.rangeconfig import RangeConfig, Run, parse_file, parse_text

GOLDEN = Path(__file__).resolve().parent / "golden"


def test_order_and_names_match_the_reference() -> None:
    # Written out of order on purpose: swept keys are sorted, the last one varies fastest.
    rc = parse_text("CONFIG_B=x|y|z\nCONFIG_FIXED=1\nCONFIG_A=0.1:0.1:0.2\n", "cfg")
    got = [(c.index, c.name, c.swept) for c in expand(rc)]
    assert got == [
        (1, "config_001", {"CONFIG_A": "0.1", "CONFIG_B": "x"}),
        (2, "config_002", {"CONFIG_A": "0.1", "CONFIG_B": "y"}),
        (3, "config_003", {"CONFIG_A": "0.1", "CONFIG_B": "z"}),
        (4, "config_004", {"CONFIG_A": "0.2", "CONFIG_B": "x"}),
        (5, "config_005", {"CONFIG_A": "0.2", "CONFIG_B": "y"}),
        (6, "config_006", {"CONFIG_A": "0.2", "CONFIG_B": "z"}),
    ]


def test_combination_fields() -> None:
    rc = parse_text('CONFIG_Z="s"\nCONFIG_B=1|2\nCONFIG_A=y\n', "cfg")
    first = expand(rc)[0]
    assert first == Combination(
        index=1,
        name="config_001",
        values={"CONFIG_A": "y", "CONFIG_B": "1", "CONFIG_Z": "s"},
        swept={"CONFIG_B": "1"},
        lines={"CONFIG_A": 3, "CONFIG_B": 2, "CONFIG_Z": 1},
        source="cfg",
        quoted=frozenset({"CONFIG_Z"}),
    )
    assert list(first.values) == sorted(first.values)  # key order, not just equality
    assert list(first.lines) == sorted(first.lines)


def test_combinations_do_not_share_mutable_state() -> None:
    first, second = expand(parse_text("CONFIG_A=1|2\nCONFIG_B=x\n"))
    first.values["CONFIG_B"] = "changed"
    first.lines["CONFIG_B"] = 99
    assert second.values["CONFIG_B"] == "x"
    assert second.lines["CONFIG_B"] == 2


def test_no_swept_parameters_gives_one_combination() -> None:
    (only,) = expand(parse_text("CONFIG_A=1\nCONFIG_B=2\n"))
    assert (only.index, only.name, only.swept) == (1, "config_001", {})
    assert only.values == {"CONFIG_A": "1", "CONFIG_B": "2"}


@pytest.mark.parametrize(
    ("spec", "count", "last"),
    [("1:1:999", 999, "config_999"), ("1:1:1000", 1000, "config_1000"), ("1:1:9", 9, "config_009")],
)
def test_names_are_padded_to_the_total(spec: str, count: int, last: str) -> None:
    combos = expand(parse_text(f"CONFIG_A={spec}"))
    assert len(combos) == count
    assert combos[-1].name == last
    assert len(combos[0].name) == len(last)


def test_guide_comprehensive_example() -> None:
    rc = parse_file(GOLDEN / "state_pruning_compare_range")
    combos = expand(rc)
    assert len(combos) == 36
    beta1 = ("0.85", "0.87", "0.89")
    decay = ("0.03", "0.05", "0.07")
    ramp = ("70", "80")
    warmup = ("7800", "11700")
    expected = [
        {
            "CONFIG_ADAMWPRUNE_BETA1": b,
            "CONFIG_ADAMWPRUNE_WEIGHT_DECAY": d,
            "CONFIG_PRUNING_RAMP_END_EPOCH": r,
            "CONFIG_PRUNING_WARMUP": w,
        }
        for b, d, r, w in itertools.product(beta1, decay, ramp, warmup)
    ]
    assert [c.swept for c in combos] == expected
    assert [c.name for c in combos] == [f"config_{i:03d}" for i in range(1, 37)]
    assert combos[16].swept == {
        "CONFIG_ADAMWPRUNE_BETA1": "0.87",
        "CONFIG_ADAMWPRUNE_WEIGHT_DECAY": "0.05",
        "CONFIG_PRUNING_RAMP_END_EPOCH": "70",
        "CONFIG_PRUNING_WARMUP": "7800",
    }
    assert all(c.values["CONFIG_TARGET_SPARSITY"] == "0.7" for c in combos)
    assert all(c.values["CONFIG_PRUNING_METHOD"] == "state" for c in combos)


def test_limit() -> None:
    rc = parse_text("CONFIG_A=1:1:10\nCONFIG_B=1:1:10\n", "cfg")
    assert len(expand(rc, limit=100)) == 100
    with pytest.raises(RangeConfigError) as info:
        expand(rc, limit=99)
    assert str(info.value) == (
        "cfg: 100 combinations exceed the limit of 99; "
        "narrow the ranges or raise the limit with --sweep-max-combinations=100"
    )


def test_limit_is_checked_without_expanding() -> None:
    # 10**30 combinations: only counting can answer this quickly.
    text = "\n".join(f"CONFIG_K{i}=0:1:9" for i in range(30))
    with pytest.raises(RangeConfigError, match=r"^cfg: 10{30} combinations exceed the limit of 10000;"):
        expand(parse_text(text, "cfg"))


def test_iter_combinations_is_lazy_and_unlimited() -> None:
    text = "\n".join(f"CONFIG_K{i}=0:1:9" for i in range(30))
    combos = iter_combinations(parse_text(text))
    first, second = next(combos), next(combos)
    assert first.name == "config_" + "1".zfill(31)
    assert second.swept["CONFIG_K9"] == "1"  # the last key (sorted: K29 < K3 ... < K9) is fastest


def test_expand_100000_combinations() -> None:
    text = "\n".join(f"CONFIG_K{i}=0:1:9" for i in range(5)) + '\nCONFIG_A=y\nCONFIG_Z="s"\n'
    combos = expand(parse_text(text), limit=100_000)
    assert len(combos) == 100_000
    assert combos[-1].name == "config_100000"
    assert combos[-1].swept == {f"CONFIG_K{i}": "9" for i in range(5)}
    assert combos[12345].swept == {f"CONFIG_K{i}": d for i, d in enumerate("12345")}
    assert list(combos[-1].values) == sorted(combos[-1].values)


def _with_runs(text: str, *runs: tuple[str, dict[str, str]]) -> RangeConfig:
    return replace(parse_text(text, "cfg"), runs=tuple(Run(label, values) for label, values in runs))


def test_a_run_list_is_crossed_with_the_swept_parameters_runs_outermost() -> None:
    rc = _with_runs(
        'CONFIG_OPT="sgd"\nCONFIG_METHOD="none"\nCONFIG_B=1|2\nCONFIG_F=y\n',
        ("m_sgd_none", {}),
        ("m_adam_movement", {"CONFIG_OPT": "adam", "CONFIG_METHOD": "movement"}),
        ("m_adam_none", {"CONFIG_OPT": "adam"}),
    )
    assert rc.count == 6
    got = [(c.name, c.label, c.swept, c.values["CONFIG_F"]) for c in expand(rc)]
    assert got == [
        ("config_001", "m_sgd_none-B=1", {"CONFIG_B": "1", "CONFIG_METHOD": "none", "CONFIG_OPT": "sgd"}, "y"),
        ("config_002", "m_sgd_none-B=2", {"CONFIG_B": "2", "CONFIG_METHOD": "none", "CONFIG_OPT": "sgd"}, "y"),
        (
            "config_003",
            "m_adam_movement-B=1",
            {"CONFIG_B": "1", "CONFIG_METHOD": "movement", "CONFIG_OPT": "adam"},
            "y",
        ),
        (
            "config_004",
            "m_adam_movement-B=2",
            {"CONFIG_B": "2", "CONFIG_METHOD": "movement", "CONFIG_OPT": "adam"},
            "y",
        ),
        ("config_005", "m_adam_none-B=1", {"CONFIG_B": "1", "CONFIG_METHOD": "none", "CONFIG_OPT": "adam"}, "y"),
        ("config_006", "m_adam_none-B=2", {"CONFIG_B": "2", "CONFIG_METHOD": "none", "CONFIG_OPT": "adam"}, "y"),
    ]
    # values stay sorted by key, as every combination's do
    assert list(expand(rc)[0].values) == sorted(expand(rc)[0].values)


def test_a_run_key_that_never_varies_is_not_swept() -> None:
    rc = _with_runs(
        'CONFIG_MODEL="lenet5"\nCONFIG_OPT="sgd"\n', ("a", {"CONFIG_MODEL": "lenet5"}), ("b", {"CONFIG_OPT": "adam"})
    )
    assert [(c.label, c.swept) for c in expand(rc)] == [("a", {"CONFIG_OPT": "sgd"}), ("b", {"CONFIG_OPT": "adam"})]


def test_a_run_may_only_set_fixed_parameters() -> None:
    rc = _with_runs("CONFIG_B=1|2\n", ("a", {"CONFIG_B": "3"}))
    with pytest.raises(RangeConfigError, match="run a: CONFIG_B must be a fixed parameter"):
        expand(rc)
    with pytest.raises(RangeConfigError, match="run a: CONFIG_NEW must be a fixed parameter"):
        expand(_with_runs("CONFIG_B=1\n", ("a", {"CONFIG_NEW": "3"})))
