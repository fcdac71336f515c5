"""The shipped range configs in ``defconfigs/``: they collect, count and resolve as documented.

Collection runs in process (nothing there imports torch).  The missing-data test runs one
real trial of the guide's quick test, in process too: it fails while loading CIFAR-10, before
any model is built.
"""

from __future__ import annotations

import itertools
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pytest_sweep.plugins.choices import choices

from sweep_helpers import SweepPytester, needs_torchvision

DEFCONFIGS = Path(__file__).resolve().parent.parent / "defconfigs"

#: What the guide's ResNet-18 sweeps train: its defaults, none of them set in the files.
GUIDE_TRAINER = "resnet18/cifar10/adamwprune/state e100 b128"


@dataclass(frozen=True)
class Expected:
    total: int
    #: config name -> a piece of its skip reason
    skipped: dict[str, str]
    #: swept key -> its values, as typed (the grid must be exactly their product)
    grid: dict[str, tuple[Any, ...]]
    guide: bool = False  # one of the guide's ResNet-18 / CIFAR-10 sweeps
    #: a reference defconfig: its runs' names, in order (the grid is then the keys that differ)
    runs: tuple[str, ...] = ()


GUIDE_GRID = {
    "CONFIG_ADAMWPRUNE_BETA1": (0.85, 0.87, 0.89),
    "CONFIG_ADAMWPRUNE_WEIGHT_DECAY": (0.03, 0.05, 0.07),
    "CONFIG_PRUNING_RAMP_END_EPOCH": (70, 80),
    "CONFIG_PRUNING_WARMUP": (7800, 11700),
}
STATE_NEEDS_ADAMWPRUNE = "state pruning needs the AdamWPrune optimizer (this trial uses adamw)"
ADAMWPRUNE_PRUNES_ITSELF = "AdamWPrune prunes by its own state, not by {}"

EXPECTED = {
    "resnet18-state-pruning-compare-range": Expected(36, {}, GUIDE_GRID, guide=True),
    "resnet18-comprehensive": Expected(36, {}, GUIDE_GRID, guide=True),
    "resnet18-quick-test": Expected(
        4,
        {},
        {"CONFIG_ADAMWPRUNE_BETA1": (0.85, 0.89), "CONFIG_ADAMWPRUNE_WEIGHT_DECAY": (0.03, 0.07)},
        guide=True,
    ),
    "resnet18-fine-tuning": Expected(
        9,
        {},
        {"CONFIG_ADAMWPRUNE_BETA1": (0.86, 0.87, 0.88), "CONFIG_ADAMWPRUNE_WEIGHT_DECAY": (0.04, 0.05, 0.06)},
        guide=True,
    ),
    "lenet5-mnist": Expected(
        8,
        {
            "config_004": STATE_NEEDS_ADAMWPRUNE,  # adamw + state
            "config_006": ADAMWPRUNE_PRUNES_ITSELF.format("magnitude"),
            "config_007": ADAMWPRUNE_PRUNES_ITSELF.format("movement"),
        },
        {
            "CONFIG_OPTIMIZER": ("adamw", "adamwprune"),
            "CONFIG_PRUNING_METHOD": ("none", "magnitude", "movement", "state"),
        },
    ),
    "digits-smoke": Expected(4, {}, {"CONFIG_LEARNING_RATE": (0.001, 0.003), "CONFIG_WEIGHT_DECAY": (0.0, 0.05)}),
    "resnet18-published-table": Expected(
        14,
        {
            "config_008": STATE_NEEDS_ADAMWPRUNE,
            "config_010": ADAMWPRUNE_PRUNES_ITSELF.format("magnitude"),
            "config_011": ADAMWPRUNE_PRUNES_ITSELF.format("movement"),
        },
        {
            "CONFIG_OPTIMIZER": ("adamw", "adamwprune"),
            "CONFIG_PRUNING_METHOD": ("none", "magnitude", "movement", "state"),
            "CONFIG_TARGET_SPARSITY": (0.0, 0.5, 0.7, 0.9),
            "CONFIG_WEIGHT_DECAY": (0.0005, 0.0),
        },
        runs=(
            "resnet18_adamw_none",
            "resnet18_adamw_magnitude_50",
            "resnet18_adamw_magnitude_70",
            "resnet18_adamw_magnitude_90",
            "resnet18_adamw_movement_50",
            "resnet18_adamw_movement_70",
            "resnet18_adamw_movement_90",
            "resnet18_adamw_state",
            "resnet18_adamwprune_bitter0_none",
            "resnet18_adamwprune_magnitude",
            "resnet18_adamwprune_movement",
            "resnet18_adamwprune_bitter0_state_50",
            "resnet18_adamwprune_bitter0_state_70",
            "resnet18_adamwprune_bitter0_state_90",
        ),
    ),
    "resnet18-digits-smoke": Expected(
        18,
        {},
        {
            "CONFIG_LEARNING_RATE": (0.0001, 0.001, 0.01),
            "CONFIG_SEED": (1, 2, 3),
            "CONFIG_TARGET_SPARSITY": (0.5, 0.7),
        },
    ),
}


def test_every_defconfig_has_expectations() -> None:
    shipped = sorted(p.name for p in DEFCONFIGS.iterdir() if p.is_file())
    assert shipped == sorted(EXPECTED)


def local_copy(sweep_pytester: SweepPytester, name: str) -> str:
    """The defconfig copied into the run's folder: a path outside it would make pytest
    load this repository's root ``conftest.py`` as a non-root conftest."""
    shutil.copy(DEFCONFIGS / name, sweep_pytester.path / name)
    return name


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_defconfig_collects_with_the_expected_grid(sweep_pytester: SweepPytester, name: str) -> None:
    want = EXPECTED[name]
    path = local_copy(sweep_pytester, name)
    result = sweep_pytester.run("--collect-only", "-q", f"--range-config={path}")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    skipped = f" ({len(want.skipped)} skipped by plugins)" if want.skipped else ""
    result.stdout.fnmatch_lines([f"sweep: {want.total} combination{'s' if want.total > 1 else ''}{skipped}*"])
    assert f"{want.total} tests collected" in result.stdout.str()

    items = sweep_pytester.sweep_items(f"--range-config={path}")
    assert [i.trial.name for i in items] == [f"config_{n:03d}" for n in range(1, want.total + 1)]
    reasons = {i.trial.name: i.skip_reason for i in items if i.skip_reason}
    assert set(reasons) == set(want.skipped), reasons
    for config, piece in want.skipped.items():
        assert piece in reasons[config], (config, reasons[config])
    assert {frozenset(i.trial.swept) for i in items} == {frozenset(want.grid)}
    if want.runs:  # the reference's runs, not a product: each value of each key occurs
        assert [i.trial.label for i in items] == list(want.runs)
        assert {k: {i.trial[k] for i in items} for k in want.grid} == {k: set(v) for k, v in want.grid.items()}
        return
    # every combination of the swept values exactly once, typed
    combos = [tuple(i.trial[k] for k in sorted(want.grid)) for i in items]
    assert sorted(combos) == sorted(itertools.product(*(want.grid[k] for k in sorted(want.grid))))


@pytest.mark.parametrize("name", sorted(n for n, e in EXPECTED.items() if e.guide))
def test_guide_configs_resolve_to_the_guide_defaults(sweep_pytester: SweepPytester, name: str) -> None:
    path = local_copy(sweep_pytester, name)
    result = sweep_pytester.run("--collect-only", "-q", f"--range-config={path}")
    result.stdout.fnmatch_lines([f"sweep: * combinations; trainer: {GUIDE_TRAINER}"])
    items = sweep_pytester.sweep_items(f"--range-config={path}")
    assert items
    for item in items:
        trial = item.trial
        assert item.config.hook.pytest_sweep_describe_trial(trial=trial, config=item.config) == GUIDE_TRAINER
        assert trial["CONFIG_MODEL_WIDTH"] == 64  # the published 11.2M-parameter model
        assert trial["CONFIG_TARGET_SPARSITY"] == 0.7
        assert trial["CONFIG_PRUNING_METHOD"] == "state"
        assert trial["CONFIG_ADAMWPRUNE_BETA2"] == 0.999
        assert trial["CONFIG_ADAMWPRUNE_VARIANT"] == "bitter0"
        assert trial["CONFIG_ADAMWPRUNE_BASE_OPTIMIZER"] == "adamw"
        assert trial.get("CONFIG_LEARNING_RATE") is None  # the Adam family's 1e-4 on ResNet-18


#: The published table's runs: label -> (optimizer, method, sparsity, weight decay on weights).
PUBLISHED = {
    "resnet18_adamw_none": ("adamw", "none", 0.0, 5e-4),
    **{f"resnet18_adamw_{m}_{p}": ("adamw", m, p / 100, 5e-4) for m in ("magnitude", "movement") for p in (50, 70, 90)},
    # cf07123's "AdamWPrune": AdamW with weight decay 0, unpruned or with movement pruning
    "resnet18_adamwprune_bitter0_none": ("adamw", "none", 0.0, 0.0),
    **{f"resnet18_adamwprune_bitter0_state_{p}": ("adamw", "movement", p / 100, 0.0) for p in (50, 70, 90)},
}


def test_the_published_table_trains_as_the_reference_did(sweep_pytester: SweepPytester) -> None:
    """defconfigs/resnet18-published-table: the 11 runs and the settings cf07123 trained them with."""
    path = local_copy(sweep_pytester, "resnet18-published-table")
    result = sweep_pytester.run("--collect-only", "-q", f"--range-config={path}")
    result.stdout.fnmatch_lines(
        [
            "sweep: resnet18-published-table: the reference's defconfig (*): 11 runs, and 3 pairs it drops "
            "(collected as skipped); as at its published commit cf07123",
            "sweep: 14 combinations (3 skipped by plugins); trainer: resnet18/cifar10/adamw/magnitude e100 b128, "
            "resnet18/cifar10/adamw/movement e100 b128, resnet18/cifar10/adamw/none e100 b128",
            "sweep: estimated runtime not known yet (no timing of its trainers on this machine)*",
        ]
    )
    items = sweep_pytester.sweep_items(f"--range-config={path}")
    runs = {i.trial.label: i.trial for i in items if not i.skip_reason}
    assert list(runs) == list(PUBLISHED)
    for label, trial in runs.items():
        c = choices(trial)
        assert (c.optimizer, c.pruning, trial["CONFIG_TARGET_SPARSITY"], c.weight_decay) == PUBLISHED[label], label
        assert (c.model, c.dataset, c.epochs, c.batch_size, trial["CONFIG_MODEL_WIDTH"]) == (
            "resnet18",
            "cifar10",
            100,
            128,
            64,
        )
        assert c.learning_rate == pytest.approx(1e-4) and (c.lr_schedule, c.eta_min) == ("cosine", 0.0)
        assert (trial["CONFIG_ADAM_BETA1"], trial["CONFIG_ADAM_BETA2"]) == (0.9, 0.999)
        assert (trial["CONFIG_PRUNING_WARMUP"], trial["CONFIG_PRUNING_FREQUENCY"]) == (100, 100)
        assert (trial["CONFIG_PRUNING_RAMP_END_STEP"], trial["CONFIG_PRUNING_RAMP"]) == (3000, "linear")
        assert (trial["CONFIG_AMP"], trial["CONFIG_CHANNELS_LAST"]) == (False, False)  # fp32


@needs_torchvision
def test_missing_cifar10_fails_the_trial_with_one_line(sweep_pytester: SweepPytester) -> None:
    """The guide's quick test without CIFAR-10 on disk: one clear line, no torchvision traceback."""
    empty = sweep_pytester.path / "no-cifar"
    empty.mkdir()
    path = local_copy(sweep_pytester, "resnet18-quick-test")
    common = (
        f"--range-config={path}",
        "--sweep-set",
        "CONFIG_DEVICE=cpu",
        "--sweep-epochs=1",
        f"--sweep-data-dir={empty}",
        "-k",
        "config_001",
    )
    # one epoch is shorter than the guide's 7800-step warmup: skipped, with the reason
    skipped = sweep_pytester.run(*common, "-rs")
    skipped.assert_outcomes(skipped=1, deselected=3)
    skipped.stdout.fnmatch_lines(["SKIPPED * pruning warmup (7800 steps) is not shorter than the whole run*"])

    result = sweep_pytester.run_subprocess(*common, "--sweep-set", "CONFIG_PRUNING_WARMUP=100")
    result.assert_outcomes(failed=1, deselected=3)
    out = result.stdout.str()
    message = (
        f"CIFAR-10 not found under {empty}; set CONFIG_DATA_DOWNLOAD=y where the internet is reachable, "
        "or point --sweep-data-dir at a folder that holds it"
    )
    # pytest's own short summary ("FAILED <nodeid> - <message>") is cut to the terminal's width, so whether
    # it still shows the message depends on COLUMNS; leave it out and check the sweep's lines
    lines = [
        line
        for line in result.outlines
        if "CIFAR-10 not found" in line
        and not line.startswith("FAILED resnet18-quick-test::")
        and not line.startswith("sweep: config_001 FAILED: ")  # the progress line, cut to 80 characters
    ]
    # the failure section's one line (with the log's path) and the sweep's list of failures
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"config_001: {message} (log: ")
    assert lines[1] == f"FAILED config_001: {message}"
    # nothing else in the failure section: the line follows the section header directly
    header = next(i for i, line in enumerate(result.outlines) if line.startswith("__") and "config_001" in line)
    assert result.outlines[header + 1] == lines[0]
    assert result.outlines[header + 2].startswith("=")
    assert "Traceback" not in out and "torchvision" not in out and "RuntimeError" not in out


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.parametrize(
    ("args", "command"),
    [
        # the guide's own commands, word for word: its resnet18/defconfigs/ is our defconfigs/
        (
            ["sweep", "RANGE_CONFIG=resnet18/defconfigs/resnet18-state-pruning-compare-range"],
            "-m pytest --range-config=defconfigs/resnet18-state-pruning-compare-range",
        ),
        (
            ["sweep-generate", "RANGE_CONFIG=resnet18/defconfigs/resnet18-state-pruning-compare-range"],
            "-m pytest --range-config=defconfigs/resnet18-state-pruning-compare-range --sweep-generate=sweep_configs",
        ),
        (
            ["sweep-parallel", "RANGE_CONFIG=defconfigs/resnet18-quick-test", "PARALLEL=4"],
            "-m pytest --range-config=defconfigs/resnet18-quick-test -n 4 --dist=load",
        ),
        (
            ["sweep-run", "OUTPUT_DIR=my_sweep_results"],
            "-m pytest --config-dir=sweep_configs --sweep-output=my_sweep_results",
        ),
    ],
    ids=["sweep", "sweep-generate", "sweep-parallel", "sweep-run-output-dir"],
)
def test_the_guides_make_commands(args: list[str], command: str) -> None:
    import subprocess

    root = DEFCONFIGS.parent
    done = subprocess.run(
        ["make", "-n", "--no-print-directory", *args], cwd=root, capture_output=True, text=True, check=True
    )
    pytest_lines = [line.strip() for line in done.stdout.splitlines() if " -m pytest " in line]
    assert len(pytest_lines) == 1, done.stdout
    assert pytest_lines[0].endswith(command), pytest_lines[0]


def test_a_guide_path_to_a_defconfig_gets_a_pointer(sweep_pytester: SweepPytester) -> None:
    (sweep_pytester.path / "defconfigs").mkdir()  # a project whose defconfigs/ holds it
    shutil.copy(DEFCONFIGS / "resnet18-quick-test", sweep_pytester.path / "defconfigs")
    result = sweep_pytester.run("--range-config=resnet18/defconfigs/resnet18-quick-test")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    expected = sweep_pytester.path / "defconfigs" / "resnet18-quick-test"
    result.stderr.fnmatch_lines(
        [
            f"ERROR: resnet18/defconfigs/resnet18-quick-test: no such range config; did you mean "
            f"--range-config={expected}? (the guide's resnet18/defconfigs/ is defconfigs/ here)"
        ]
    )
