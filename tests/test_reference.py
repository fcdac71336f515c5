"""The reference's own defconfigs run as they are (the ``sweep.reference`` plugin).

Every defconfig here is written for these tests in the reference's style (its selection symbols,
``# CONFIG_X is not set``, quoted numbers, machinery the reference needs), one per rule of
``shared/reference/test-matrix.md``; none is a copy of the reference's files.  Collection runs
in process (nothing imports torch); the spec's example trains for real, in a subprocess, on the
offline digits data (a width-4 ResNet-18, one epoch).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sweep_helpers import XDIST_PLUGIN_ARGS, SweepPytester, SweepTools

#: Every optimizer, in the reference's order.
ALL = ("sgd", "adam", "adamw", "adamwadv", "adamwspam", "adamwprune")
#: What makes a ResNet-18 defconfig train on this machine: digits, narrow, one short epoch.
ON_DIGITS = 'CONFIG_DATASET="digits"\nCONFIG_DEVICE="cpu"\nCONFIG_MODEL_WIDTH=4\nCONFIG_NUM_EPOCHS=1\n'

#: The spec's example (test-matrix.md), in the reference's style: 6 optimizers x {movement, state} at 70%.
STATE_PRUNING_COMPARE = (
    """\
# ResNet-18: which optimizer prunes best at 70%? Movement for the others, state for AdamWPrune.
CONFIG_MODEL_MODE_SINGLE=y
CONFIG_MODEL_SELECT_RESNET18=y
CONFIG_RESNET18_DATASET="cifar10"

CONFIG_OPTIMIZER_MODE_MULTIPLE=y
"""
    + "".join(f"CONFIG_OPTIMIZER_ENABLE_{o.upper()}=y\n" for o in ALL)
    + """
CONFIG_PRUNING_MODE_MULTIPLE=y
CONFIG_PRUNING_ENABLE_NONE=n       # no baseline in this comparison
CONFIG_PRUNING_ENABLE_MAGNITUDE=n
CONFIG_PRUNING_ENABLE_MOVEMENT=y   # SGD, Adam, AdamW, AdamWAdv, AdamWSpam
CONFIG_PRUNING_ENABLE_STATE=y      # AdamWPrune
CONFIG_SPARSITY_ENABLE_50=n
CONFIG_SPARSITY_ENABLE_70=y
# CONFIG_SPARSITY_ENABLE_90 is not set
CONFIG_PRUNING_WARMUP=2
CONFIG_PRUNING_FREQUENCY=2
CONFIG_PRUNING_RAMP_END_EPOCH=1

CONFIG_BATCH_SIZE=128
CONFIG_LEARNING_RATE="0.1"
CONFIG_ADAMWPRUNE_BETA1="0.9"
CONFIG_NUM_WORKERS=8
CONFIG_PIN_MEMORY=y
CONFIG_GRADIENT_CLIP_NORM="1.0"
CONFIG_VERBOSE=y
"""
)
SPEC_RUNS = [
    "resnet18_sgd_movement_70",
    "resnet18_sgd_state",
    "resnet18_adam_movement_70",
    "resnet18_adam_state",
    "resnet18_adamw_movement_70",
    "resnet18_adamw_state",
    "resnet18_adamwadv_movement_70",
    "resnet18_adamwadv_state",
    "resnet18_adamwspam_movement_70",
    "resnet18_adamwspam_state",
    "resnet18_adamwprune_movement",
    "resnet18_adamwprune_bitter0_state_70",
]


def ids(result: pytest.RunResult) -> list[str]:
    """The collected trials' labels (``config_003[resnet18_sgd_movement_70]`` -> the label)."""
    return re.findall(r"::config_\d+\[([^\]]+)\]$", result.stdout.str(), flags=re.M)


def collect(sp: SweepPytester, text: str, *args: str) -> pytest.RunResult:
    sp.range_config(text, "defconfig")
    return sp.run("--range-config=defconfig", "--collect-only", "-q", *args)


def assert_usage_error(result: pytest.RunResult, *expected: str) -> None:
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str() + result.stderr.str()
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    result.stderr.fnmatch_lines(list(expected))


# -- the spec's example, trained -----------------------------------------------------------------


@dataclass
class SpecRun:
    result: pytest.RunResult
    dir: Path
    records: list[dict[str, Any]]


@pytest.fixture(scope="module")
def spec_run(tmp_path_factory: pytest.TempPathFactory, sweep_tools: SweepTools) -> SpecRun:
    cwd = tmp_path_factory.mktemp("spec")
    (cwd / "resnet18-state-pruning-compare").write_text(STATE_PRUNING_COMPARE + ON_DIGITS, encoding="utf-8")
    result = sweep_tools.run_process(
        cwd, "--range-config=resnet18-state-pruning-compare", "--sweep-output=out", "--sweep-progress=none", "-rs"
    )
    sweep_dir = sweep_tools.only_sweep_dir(cwd / "out")
    return SpecRun(result, sweep_dir, sweep_tools.summary(sweep_dir))


def test_the_spec_example_runs_its_six_runs_and_skips_the_pairs_the_reference_drops(spec_run: SpecRun) -> None:
    spec_run.result.assert_outcomes(passed=6, skipped=6)
    assert ids(spec_run.result) == [] and [r["trial_dir"] for r in spec_run.records] == [
        f"config_{i:03d}_{label}" for i, label in enumerate(SPEC_RUNS, start=1)
    ]
    status = {r["trial_dir"].split("_", 2)[2]: (r["status"], r["error"]) for r in spec_run.records}
    for opt in ALL[:5]:
        assert status[f"resnet18_{opt}_movement_70"] == ("passed", None)
        assert status[f"resnet18_{opt}_state"][0] == "skipped"
        assert "state pruning needs the AdamWPrune optimizer" in status[f"resnet18_{opt}_state"][1]
    assert status["resnet18_adamwprune_bitter0_state_70"] == ("passed", None)
    assert "AdamWPrune prunes by its own state, not by movement" in status["resnet18_adamwprune_movement"][1]
    spec_run.result.stdout.fnmatch_lines(
        [
            "SKIPPED [[]1[]] resnet18-state-pruning-compare: state pruning needs the AdamWPrune optimizer (this trial uses sgd)*"
        ]
    )


def test_each_trial_shows_the_resolved_selection_in_its_config_and_record(spec_run: SpecRun) -> None:
    by_label = {r["trial_dir"].split("_", 2)[2]: r for r in spec_run.records}
    sgd = by_label["resnet18_sgd_movement_70"]
    assert {k: sgd["config"][k] for k in ("CONFIG_MODEL", "CONFIG_OPTIMIZER", "CONFIG_PRUNING_METHOD")} == {
        "CONFIG_MODEL": "resnet18",
        "CONFIG_OPTIMIZER": "sgd",
        "CONFIG_PRUNING_METHOD": "movement",
    }
    assert (sgd["config"]["CONFIG_TARGET_SPARSITY"], sgd["config"]["CONFIG_ADAMWPRUNE_VARIANT"]) == ("0.7", "bitter0")
    assert sgd["swept"] == ["CONFIG_OPTIMIZER", "CONFIG_PRUNING_METHOD"]  # what differs between the runs
    assert abs(sgd["final_sparsity"] - 0.7) < 0.005
    text = (spec_run.dir / sgd["trial_dir"] / "config.txt").read_text(encoding="utf-8")
    for line in (
        'CONFIG_MODEL="resnet18"',
        'CONFIG_OPTIMIZER="sgd"',
        'CONFIG_PRUNING_METHOD="movement"',
        "CONFIG_TARGET_SPARSITY=0.7",
        'CONFIG_ADAMWPRUNE_VARIANT="bitter0"',
        "CONFIG_REFERENCE_LR=y",
        "CONFIG_ADAMWPRUNE_BETA1=0.9",  # a quoted number, typed as the number it is
    ):
        assert line in text.splitlines(), text
    assert "CONFIG_NUM_WORKERS" not in text and "CONFIG_OPTIMIZER_MODE_MULTIPLE" not in text
    state = by_label["resnet18_adamwprune_bitter0_state_70"]["config"]
    assert (state["CONFIG_OPTIMIZER"], state["CONFIG_PRUNING_METHOD"]) == ("adamwprune", "state")


def test_the_learning_rate_means_what_it_means_to_the_reference(spec_run: SpecRun) -> None:
    """LEARNING_RATE="0.1": SGD at 0.1, the Adam family on ResNet-18 at 1e-4 (never Adam at 0.1)."""
    by_label = {r["trial_dir"].split("_", 2)[2]: r for r in spec_run.records}
    for label, lr in (
        ("resnet18_sgd_movement_70", "lr 0.1 (cosine to 0)"),
        ("resnet18_adam_movement_70", "lr 0.0001 (cosine to 0)"),
        ("resnet18_adamwspam_movement_70", "lr 0.0001 (cosine to 0)"),
        ("resnet18_adamwprune_bitter0_state_70", "lr 0.0001 (cosine to 0)"),
    ):
        log = (spec_run.dir / by_label[label]["trial_dir"] / "output.log").read_text(encoding="utf-8")
        assert f", 1 epochs, batch 128, {lr}, device cpu" in log, (label, log)


def test_the_notes_name_what_has_no_effect_and_what_is_not_implemented_once(spec_run: SpecRun) -> None:
    out = spec_run.result.stdout.str()
    head = "sweep: resnet18-state-pruning-compare: "
    spec_run.result.stdout.fnmatch_lines(
        [
            head + "the reference's defconfig (CONFIG_RESNET18_DATASET, line 4): 6 runs, and 6 pairs it drops*",
            head + "no effect in pytest-sweep: CONFIG_NUM_WORKERS, CONFIG_PIN_MEMORY, CONFIG_VERBOSE",
            head + "not implemented, so these runs train without them: CONFIG_GRADIENT_CLIP_NORM=1.0 (line 31)",
            head + "CONFIG_LEARNING_RATE=0.1 is read as the reference reads it*",
        ]
    )
    assert out.count("no effect in pytest-sweep") == 1
    differences = [line for line in out.splitlines() if line.startswith(head + "differs from the reference: ")]
    assert len(differences) >= 5, differences
    assert any("AdamWAdv/AdamWSpam on ResNet-18 clip gradients" in d for d in differences)


# -- the matrix language, collected -----------------------------------------------------------


def test_a_file_silent_on_the_selection_gets_kconfigs_defaults(sweep_pytester: SweepPytester) -> None:
    """Single lenet5, every optimizer, none/magnitude/movement (+ state with AdamWPrune) at 50/70/90."""
    result = collect(sweep_pytester, '# only the learning rate\nCONFIG_VERBOSE=y\nCONFIG_LEARNING_RATE="0.001"\n')
    got = ids(result)
    assert len(got) == 46 and got[:8] == [
        "lenet5_sgd_none",
        "lenet5_sgd_magnitude_50",
        "lenet5_sgd_magnitude_70",
        "lenet5_sgd_magnitude_90",
        "lenet5_sgd_movement_50",
        "lenet5_sgd_movement_70",
        "lenet5_sgd_movement_90",
        "lenet5_sgd_state",
    ]
    assert got[-5:] == [
        "lenet5_adamwprune_magnitude",
        "lenet5_adamwprune_movement",
        "lenet5_adamwprune_bitter0_state_50",
        "lenet5_adamwprune_bitter0_state_70",
        "lenet5_adamwprune_bitter0_state_90",
    ]
    result.stdout.fnmatch_lines(
        ["*: 39 runs, and 7 pairs it drops (collected as skipped)", "sweep: 46 combinations (7 skipped*"]
    )
    assert "is read as the reference reads it" not in result.stdout.str()  # LeNet-5: no scaling to explain


def test_older_spellings_fill_only_what_the_user_facing_symbols_leave_unset(sweep_pytester: SweepPytester) -> None:
    text = """\
CONFIG_TEST_MATRIX_MODE=y
CONFIG_TEST_MODELS="lenet5"
CONFIG_OPTIMIZER_MODE_MULTIPLE=y
CONFIG_OPTIMIZER_ENABLE_SGD=n            # the user-facing symbol wins over ...
CONFIG_TEST_OPTIMIZER_ENABLED_SGD=y      # ... the older spelling
CONFIG_TEST_OPTIMIZER_ENABLED_ADAM=n     # unset user-facing: the older spelling decides
# CONFIG_OPTIMIZER_ENABLE_ADAMWADV is not set
# CONFIG_OPTIMIZER_ENABLE_ADAMWSPAM is not set
# CONFIG_OPTIMIZER_ENABLE_ADAMWPRUNE is not set
CONFIG_PRUNING_MODE_MULTIPLE=y
CONFIG_TEST_PRUNING_METHODS="none,movement"
CONFIG_PRUNING_ENABLE_NONE=n
CONFIG_TEST_SPARSITY_50=y
CONFIG_SPARSITY_ENABLE_70=n
CONFIG_TEST_SPARSITY_70=y
# CONFIG_SPARSITY_ENABLE_90 is not set
"""
    # optimizers: adamw only (its ENABLE unset, no older spelling: kconfig's default y);
    # methods: movement (none: n wins over the list); sparsities: 50 (older), 70 n wins, 90 not set
    assert ids(collect(sweep_pytester, text)) == ["lenet5_adamw_movement_50"]


def test_single_modes_take_their_selection_and_a_quoted_choice_expands(sweep_pytester: SweepPytester) -> None:
    text = """\
CONFIG_MODEL_LENET5=y
CONFIG_OPTIMIZER_MODE_SINGLE=y
CONFIG_OPTIMIZER_SELECT_ADAMW=y
CONFIG_PRUNING_MODE_SINGLE=y
CONFIG_PRUNING_SELECT_MOVEMENT=y
CONFIG_TARGET_SPARSITY="0.5|0.8"       # the reference's generator splits a quoted value too
CONFIG_ADAMW_BETA1="0.85:0.05:0.9"     # and expands a quoted range
"""
    assert ids(collect(sweep_pytester, text)) == [
        "lenet5_adamw_movement_50-ADAM_BETA1=0.85",
        "lenet5_adamw_movement_50-ADAM_BETA1=0.90",
        "lenet5_adamw_movement_80-ADAM_BETA1=0.85",
        "lenet5_adamw_movement_80-ADAM_BETA1=0.90",
    ]


def test_pruning_mode_none_runs_each_optimizer_once(sweep_pytester: SweepPytester) -> None:
    text = "CONFIG_MODEL_SELECT_RESNET18=y\nCONFIG_OPTIMIZER_MODE_MULTIPLE=y\nCONFIG_PRUNING_MODE_NONE=y\n"
    assert ids(collect(sweep_pytester, text)) == [
        f"resnet18_{o}{'_bitter0' if o == 'adamwprune' else ''}_none" for o in ALL
    ]


def test_adamwprune_runs_each_variant_at_each_sparsity_and_skips_those_we_lack(sweep_pytester: SweepPytester) -> None:
    text = """\
CONFIG_MODEL_SELECT_LENET5=y
CONFIG_OPTIMIZER_SELECT_ADAMWPRUNE=y
CONFIG_PRUNING_SELECT_STATE=y
CONFIG_SPARSITY_ENABLE_50=y
CONFIG_SPARSITY_ENABLE_70=y
CONFIG_LENET5_ADAMWPRUNE_VARIANT_BITTER0=y
CONFIG_LENET5_ADAMWPRUNE_VARIANT_BITTER7=y
CONFIG_LENET5_ADAMWPRUNE_VARIANT_BITTER8=y
CONFIG_DATASET="digits"
"""
    result = collect(sweep_pytester, text)
    assert ids(result) == [
        f"lenet5_adamwprune_{v}_state_{pct}" for pct in ("50", "70") for v in ("bitter0", "bitter7", "bitter8")
    ]
    ran = sweep_pytester.run("--range-config=defconfig", "-rs", "-k", "bitter8", "--sweep-output=out")
    ran.assert_outcomes(skipped=2)
    ran.stdout.fnmatch_lines(["SKIPPED *AdamWPrune variant bitter8 is the reference's; pytest-sweep has bitter0*"])


def test_a_model_we_do_not_have_is_skipped_with_the_reason(sweep_pytester: SweepPytester) -> None:
    text = """\
CONFIG_MODEL_MODE_MULTIPLE=y
CONFIG_MODEL_ENABLE_GPT2=y
# CONFIG_MODEL_ENABLE_RESNET18 is not set
CONFIG_OPTIMIZER_MODE_SINGLE=y
CONFIG_OPTIMIZER_SELECT_ADAMW=y
CONFIG_PRUNING_MODE_NONE=y
"""
    assert ids(collect(sweep_pytester, text)) == ["lenet5_adamw_none", "gpt2_adamw_none"]
    ran = sweep_pytester.run("--range-config=defconfig", "-rs", "-k", "gpt2", "--sweep-output=out")
    ran.assert_outcomes(skipped=1)
    ran.stdout.fnmatch_lines(["SKIPPED *model gpt2 is the reference's; pytest-sweep trains resnet18 and lenet5*"])


def test_aliases_become_our_symbols(sweep_pytester: SweepPytester) -> None:
    text = """\
CONFIG_MODEL_SELECT_RESNET18=y
CONFIG_OPTIMIZER_SELECT_ADAMWPRUNE=y
CONFIG_PRUNING_SELECT_STATE=y
CONFIG_RESNET18_EPOCHS=3
CONFIG_NUM_EPOCHS=3                    # both spellings: they agree
CONFIG_RESNET18_BATCH_SIZE=32
CONFIG_RESNET18_BASE_LR="0.2"
CONFIG_COMPILE_MODEL=n
CONFIG_MIXED_PRECISION=n
CONFIG_ADAMW_BETA1="0.85"
CONFIG_ADAMW_WEIGHT_DECAY="0.001"
CONFIG_ADAMWPRUNE_BASE_ADAMWSPAM=y
CONFIG_ADAMWPRUNE_WARMUP_STEPS=7
CONFIG_ADAMWPRUNE_FREQUENCY=3
CONFIG_ADAMWPRUNE_TARGET_SPARSITY="0.6"
CONFIG_RESNET18_ADAMWPRUNE_DEFAULT_VARIANT="bitter7"
CONFIG_RESNET18_DATASET="cifar10"      # ResNet-18's own dataset: our default already
"""
    sweep_pytester.range_config(text, "defconfig")
    result = sweep_pytester.run("--range-config=defconfig", "--sweep-generate=generated")
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    config = (sweep_pytester.path / "generated" / "config_001").read_text(encoding="utf-8").splitlines()
    for line in (
        "CONFIG_NUM_EPOCHS=3",
        "CONFIG_BATCH_SIZE=32",
        'CONFIG_LEARNING_RATE="0.2"',
        "CONFIG_COMPILE=n",
        "CONFIG_AMP=n",
        'CONFIG_ADAM_BETA1="0.85"',
        'CONFIG_WEIGHT_DECAY="0.001"',
        'CONFIG_ADAMWPRUNE_BASE_OPTIMIZER="adamwspam"',
        "CONFIG_PRUNING_WARMUP=7",
        "CONFIG_PRUNING_FREQUENCY=3",
        "CONFIG_TARGET_SPARSITY=0.6",
        'CONFIG_ADAMWPRUNE_VARIANT="bitter7"',
        "CONFIG_REFERENCE_LR=y",
    ):
        assert line in config, (line, config)
    assert not [line for line in config if "RESNET18_" in line or "CONFIG_DATASET" in line]
    # the generated configs are our own language: they run as they are
    again = sweep_pytester.run("--config-dir=generated", "--collect-only", "-q")
    again.stdout.fnmatch_lines(["sweep: 1 combination; trainer: resnet18/cifar10/adamwprune/state e3 b32"])


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        pytest.param(
            "CONFIG_VERBOSE=y\nCONFIG_RESNET18_EPOCHS=3\nCONFIG_NUM_EPOCHS=4\n",
            2,
            "CONFIG_RESNET18_EPOCHS=3 sets CONFIG_NUM_EPOCHS, which line 3 sets to 4; keep one of them",
            id="alias-contradicts",
        ),
        pytest.param(
            "CONFIG_PREFETCH_FACTOR=2|4\n",
            1,
            "CONFIG_PREFETCH_FACTOR has no effect in pytest-sweep: sweeping it (2|4) would train identical trials; give one value",
            id="swept-no-effect",
        ),
        pytest.param(
            'CONFIG_VERBOSE=y\nCONFIG_GRADIENT_CLIP_NORM="0.5|1.0"\n',
            2,
            "CONFIG_GRADIENT_CLIP_NORM is not implemented in pytest-sweep: sweeping it (0.5|1.0) would train identical*",
            id="swept-not-implemented",
        ),
        pytest.param(
            "CONFIG_OPTIMIZER_MODE_MULTIPLE=y\nCONFIG_OPTIMIZER_ENABLE_SGD=y|n\n",
            2,
            "CONFIG_OPTIMIZER_ENABLE_SGD selects the reference's runs: give it one value, not y|n",
            id="swept-selection",
        ),
        pytest.param(
            "CONFIG_MODEL_SELECT_LENET5=y\nCONFIG_MODEL_SELECT_GPT2=y\n",
            2,
            "CONFIG_MODEL_SELECT_LENET5 and CONFIG_MODEL_SELECT_GPT2 are both y; select one",
            id="two-selects",
        ),
        pytest.param(
            "CONFIG_MODEL_MODE_MULTIPLE=y\nCONFIG_MODEL_ENABLE_RESNET18=y\nCONFIG_LENET5_DATASET_MNIST=y\n"
            'CONFIG_RESNET18_DATASET="mnist"\n',
            4,
            "CONFIG_RESNET18_DATASET sets the dataset of resnet18 only; pytest-sweep's CONFIG_DATASET is one per file",
            id="dataset-of-one-model",
        ),
        pytest.param(
            "CONFIG_MODEL_MODE_MULTIPLE=y\nCONFIG_REFERENCE_AS_PUBLISHED=y\n",
            2,
            "CONFIG_REFERENCE_AS_PUBLISHED reproduces the reference's ResNet-18 runs; this file also selects lenet5",
            id="as-published-lenet5",
        ),
    ],
)
def test_a_defconfig_mistake_is_a_usage_error_naming_the_line(
    sweep_pytester: SweepPytester, text: str, line: int, message: str
) -> None:
    path = sweep_pytester.range_config(text, "defconfig").resolve()
    result = sweep_pytester.run("--range-config=defconfig", "--collect-only")
    assert_usage_error(result, f"ERROR: {path}:{line}: {message}")


def test_every_unknown_symbol_of_a_defconfig_is_named_at_once(sweep_pytester: SweepPytester) -> None:
    text = "CONFIG_OPTIMIZER_MODE_MULTIPLE=y\nCONFIG_OPTIMISER_ENABLE_SGD=y\nCONFIG_NUM_WORKERS=8\nCONFIG_PIN_MEMRY=y\n"
    path = sweep_pytester.range_config(text, "defconfig").resolve()
    result = sweep_pytester.run("--range-config=defconfig", "--collect-only")
    assert_usage_error(
        result,
        f"ERROR: {path}: 2 unknown symbols*",
        f"  {path}:2: CONFIG_OPTIMISER_ENABLE_SGD; did you mean CONFIG_OPTIMIZER_ENABLE_SGD?",
        f"  {path}:4: CONFIG_PIN_MEMRY; did you mean CONFIG_PIN_MEMORY?",
    )


def test_not_set_is_n_for_a_bool_and_the_default_for_other_types(sweep_pytester: SweepPytester) -> None:
    text = """\
CONFIG_MODEL_SELECT_LENET5=y
CONFIG_OPTIMIZER_MODE_MULTIPLE=y
# CONFIG_OPTIMIZER_ENABLE_SGD is not set
# CONFIG_OPTIMIZER_ENABLE_ADAM is not set
# CONFIG_OPTIMIZER_ENABLE_ADAMWADV is not set
# CONFIG_OPTIMIZER_ENABLE_ADAMWSPAM is not set
# CONFIG_OPTIMIZER_ENABLE_ADAMWPRUNE is not set
CONFIG_PRUNING_MODE_NONE=y
# CONFIG_DATA_DIR is not set
# CONFIG_OUTPUT_DIR is not set
# CONFIG_ADAMWPRUNE_VARIANT is not set
"""
    sweep_pytester.range_config(text, "defconfig")
    result = sweep_pytester.run("--range-config=defconfig", "--sweep-generate=generated")
    assert result.ret == 0, result.stderr.str()
    config = (sweep_pytester.path / "generated" / "config_001").read_text(encoding="utf-8")
    assert not (sweep_pytester.path / "generated" / "config_002").exists()  # adamw alone
    assert 'CONFIG_OPTIMIZER="adamw"' in config and "CONFIG_DATA_DIR" not in config  # the default "data"
    assert 'CONFIG_ADAMWPRUNE_VARIANT="bitter0"' in config


def test_a_not_implemented_setting_with_our_value_is_not_named(sweep_pytester: SweepPytester) -> None:
    text = 'CONFIG_VERBOSE=y\nCONFIG_ADAM_EPSILON="1e-8"\nCONFIG_RESNET18_USE_AUGMENTATION=y\nCONFIG_ADV_WEIGHT_DECAY="0.01"\n'
    result = collect(sweep_pytester, text)
    result.stdout.fnmatch_lines(
        ["*not implemented, so these runs train without them: CONFIG_ADV_WEIGHT_DECAY=0.01 (line 4)"]
    )
    assert "ADAM_EPSILON" not in result.stdout.str() and "USE_AUGMENTATION" not in result.stdout.str()


def test_a_file_in_our_own_language_is_not_rewritten(sweep_pytester: SweepPytester) -> None:
    """The guide's range files use CONFIG_MODEL_SELECT_* too; only the reference's own symbols mark a defconfig."""
    text = "CONFIG_MODEL_SELECT_RESNET18=y\nCONFIG_OPTIMIZER_SELECT_ADAMW=y\nCONFIG_LEARNING_RATE=0.001|0.01\n"
    result = collect(sweep_pytester, text)
    result.stdout.fnmatch_lines(
        ["defconfig::config_001[LEARNING_RATE=0.001]", "defconfig::config_002[LEARNING_RATE=0.01]"]
    )
    assert "the reference's defconfig" not in result.stdout.str()


def test_xdist_workers_and_the_controller_agree_on_the_run_names(sweep_pytester: SweepPytester) -> None:
    """The controller maps the workers' node ids (with run names) back to trials: every record is whole."""
    text = "CONFIG_MODEL_SELECT_GPT2=y\nCONFIG_OPTIMIZER_MODE_MULTIPLE=y\nCONFIG_PRUNING_MODE_NONE=y\n"
    sweep_pytester.range_config(text, "defconfig")
    result = sweep_pytester.pytester.runpytest_subprocess(
        *XDIST_PLUGIN_ARGS, "--range-config=defconfig", "--sweep-output=out", "-n", "2", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(skipped=6)
    records = json.loads(next((sweep_pytester.path / "out").glob("sweep_*/sweep_summary.json")).read_text())
    assert [r["trial_dir"] for r in records] == [
        f"config_{i:03d}_gpt2_{o}{'_bitter0' if o == 'adamwprune' else ''}_none" for i, o in enumerate(ALL, start=1)
    ]
    assert all(r["status"] == "skipped" and "model gpt2 is the reference's" in r["error"] for r in records)
    assert all(r["config"]["CONFIG_MODEL"] == "gpt2" for r in records)
