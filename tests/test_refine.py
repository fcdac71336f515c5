"""``refine_range``: the next sweep around the best values (the guide's "Refine Around Best Values")."""

from __future__ import annotations

import pytest
from synthetic import grid_records

from pytest_sweep.matrix.rangeconfig import parse_text
from pytest_sweep.plugins.importance import compute
from pytest_sweep.plugins.refine import builtin_symbols, finer_grid, refine, render

SYMBOLS = builtin_symbols()


@pytest.mark.parametrize(
    ("values", "best", "expected"),
    [
        (["0.85", "0.87", "0.89"], "0.87", ("0.86", "0.87", "0.88")),  # the guide's example
        (["0.85", "0.87", "0.89"], "0.89", ("0.88", "0.89", "0.91")),  # edge: one step outward
        (["0.85", "0.87", "0.89"], "0.85", ("0.83", "0.85", "0.86")),
        (["0.03", "0.05", "0.07", "0.09"], "0.05", ("0.04", "0.05", "0.06")),  # exact decimals
        (["0.001", "0.003"], "0.003", ("0.002", "0.003", "0.005")),
        (["1e-3", "0.003"], "1e-3", ("-0.001", "1e-3", "0.002")),  # the best value stays as written
        # decades: geometric midpoints, two significant figures; at the edge half a decade out
        (["0.0001", "0.001", "0.01"], "0.001", ("0.00032", "0.001", "0.0032")),
        (["0.0001", "0.001", "0.01"], "0.01", ("0.0032", "0.01", "0.032")),
        (["1e-4", "1e-2"], "1e-4", ("0.00001", "1e-4", "0.001")),
    ],
)
def test_finer_grid_takes_the_midpoints_and_steps_out_at_the_edge(
    values: list[str], best: str, expected: tuple[str, ...]
) -> None:
    assert finer_grid(values, best)[0] == expected


def test_finer_grid_keeps_whole_numbers_and_the_symbols_bounds() -> None:
    # the guide's warmups (epochs 20 and 30): best at the low edge
    assert finer_grid(["7800", "11700"], "7800", integer=True)[0] == ("3900", "7800", "9750")
    grid, how = finer_grid(["7", "8"], "8", integer=True)
    assert grid == ("7", "8", "9") and "7.5 rounded to 7 (a whole-number symbol)" in how  # away from the best
    beta1 = SYMBOLS["CONFIG_ADAMWPRUNE_BETA1"]  # from 0 to 1
    grid, how = finer_grid(["0.9", "0.95", "1.0"], "1.0", symbol=beta1)
    assert grid == ("0.975", "1.0") and "1.05 dropped: outside the symbol's range (float, from 0 to 1)" in how
    wd = SYMBOLS["CONFIG_WEIGHT_DECAY"]  # at least 0
    assert finer_grid(["0.0", "0.05"], "0.0", symbol=wd)[0] == ("0.0", "0.025")


def _records() -> list[dict[str, object]]:
    """BETA1 matters (best 0.87), AMSGRAD does not (0.2 pp), the optimizer does (adamw best), seeds 1|2."""
    beta = {"0.85": 88.0, "0.87": 90.0, "0.89": 89.0}
    ams = {"y": 0.2, "n": 0.0}
    opt = {"sgd": -3.0, "adam": 0.0, "adamw": 0.5}
    seed = {"1": 0.0, "2": 0.1}
    return grid_records(
        {
            "CONFIG_ADAMWPRUNE_AMSGRAD": ["y", "n"],
            "CONFIG_ADAMWPRUNE_BETA1": ["0.85", "0.87", "0.89"],
            "CONFIG_OPTIMIZER": ["sgd", "adam", "adamw"],
            "CONFIG_SEED": ["1", "2"],
        },
        lambda v: (
            beta[v["CONFIG_ADAMWPRUNE_BETA1"]]
            + ams[v["CONFIG_ADAMWPRUNE_AMSGRAD"]]
            + opt[v["CONFIG_OPTIMIZER"]]
            + seed[v["CONFIG_SEED"]]
        ),
        fixed={"CONFIG_DATASET": "digits", "CONFIG_TARGET_SPARSITY": "0.7"},
    )


def test_refine_writes_the_next_sweep_with_a_comment_per_line() -> None:
    records = _records()
    imp = compute(records, threshold=0.5)
    ref = refine(records, imp, SYMBOLS)
    assert ref is not None
    lines = {line.key: line for line in ref.lines}
    assert lines["CONFIG_ADAMWPRUNE_AMSGRAD"].new == ("y",) and lines["CONFIG_ADAMWPRUNE_AMSGRAD"].kind == "fixed"
    assert lines["CONFIG_ADAMWPRUNE_BETA1"].new == ("0.86", "0.87", "0.88")
    assert lines["CONFIG_OPTIMIZER"].new == ("adamw", "adam") and lines["CONFIG_OPTIMIZER"].kind == "best-two"
    assert lines["CONFIG_SEED"].new == ("1", "2") and lines["CONFIG_SEED"].kind == "seeds"
    assert ref.combinations == 1 * 3 * 2 * 2
    text = render(ref, "sweep_20250101_000000", SYMBOLS)
    settings = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert settings == [
        'CONFIG_DATASET="digits"',
        "CONFIG_TARGET_SPARSITY=0.7",
        "CONFIG_ADAMWPRUNE_AMSGRAD=y",
        "CONFIG_ADAMWPRUNE_BETA1=0.86|0.87|0.88",
        'CONFIG_OPTIMIZER="adamw"|"adam"',
        "CONFIG_SEED=1|2",
    ]
    assert (
        "# CONFIG_ADAMWPRUNE_AMSGRAD was y|n: unimportant: value means span 0.20 pp, below the threshold of 0.50 pp "
        "(F-test p < 0.001, Holm p < 0.001); fixed at its best mean value\n"
    ) in text
    assert "# CONFIG_ADAMWPRUNE_BETA1 was 0.85|0.87|0.89: important: " in text
    assert "finer grid around the best configuration's 0.87 (midpoints to its neighbours)\n" in text
    assert "# CONFIG_SEED was 1|2: the replicate seeds, kept\n" in text
    # it is a range config in our language: it parses, with the swept values as written
    rc = parse_text(text, "refine_range")
    assert [(p.key, p.values) for p in rc.swept] == [
        ("CONFIG_ADAMWPRUNE_BETA1", ("0.86", "0.87", "0.88")),
        ("CONFIG_OPTIMIZER", ("adamw", "adam")),
        ("CONFIG_SEED", ("1", "2")),
    ]
    assert rc.count == ref.combinations


def test_refine_without_a_passed_trial_writes_nothing() -> None:
    records = grid_records({"CONFIG_OPTIMIZER": ["sgd", "adam"]}, lambda v: 90.0, failed={1, 2})
    assert refine(records, compute(records), SYMBOLS) is None


def test_with_one_passed_trial_importance_is_unknown_and_every_parameter_is_refined() -> None:
    records = grid_records({"CONFIG_ADAMWPRUNE_BETA1": ["0.85", "0.87", "0.89"]}, lambda v: 90.0, failed={1, 3})
    ref = refine(records, compute(records), SYMBOLS)
    assert ref is not None
    (line,) = ref.lines
    assert line.new == ("0.86", "0.87", "0.88")
    assert line.why.startswith("importance unknown (importance needs at least two passed trials (1 passed))")
