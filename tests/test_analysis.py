"""The rendered sweep: analysis text and ranked table from a committed sample sweep.

``golden/sample_sweep_summary.json`` is hand-written: four passed trials (two tied on
accuracy, one reused by ``--sweep-resume``, one an older record lacking newer fields), one
failed, one skipped.  The expected renderings are committed next to it; after an
intended format change regenerate them with
``SWEEP_UPDATE_GOLDEN=1 python -m pytest tests/test_analysis.py`` and review the diff.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest

from pytest_sweep.matrix.records import load_summary
from pytest_sweep.plugins import importance, refine
from pytest_sweep.plugins.analysis import TOP_N, render_analysis, render_table

GOLDEN = Path(__file__).resolve().parent / "golden"
SAMPLE = GOLDEN / "sample_sweep_summary.json"
UPDATE = os.environ.get("SWEEP_UPDATE_GOLDEN") == "1"


@pytest.fixture
def records() -> list[dict[str, Any]]:
    return load_summary(SAMPLE)


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


def test_analysis_text_matches_golden(records: list[dict[str, Any]]) -> None:
    check_golden("sample_sweep_analysis.txt", render_analysis(records))


def test_table_matches_golden(records: list[dict[str, Any]]) -> None:
    check_golden("sample_sweep_table.txt", render_table(records) + "\n")


def test_golden_analysis_follows_the_guide(records: list[dict[str, Any]]) -> None:
    """What the golden file says, spelled out (so a regenerated golden cannot drift silently)."""
    text = (GOLDEN / "sample_sweep_analysis.txt").read_text(encoding="utf-8")
    assert text.startswith("Hyperparameter Sweep Analysis\n" + "=" * 60 + "\n\nTotal configurations tested: 5\n")
    assert "Passed: 4 | Failed: 1 | Skipped: 1 | Not run: 0 | Reused: 1\n" in text
    assert (
        (
            "BEST CONFIGURATION AND ITS TIES:\n" + "-" * 40 + "\n"
            "Noise: not measured (no seeds swept; sweep CONFIG_SEED=1|2|3 to measure it): resolution 0.50 pp, "
            "the default threshold (one test image's step is unknown: the trainer does not report test_samples)\n"
            "Config file: config_003\nTest Accuracy: 88.51%\nFinal Sparsity: 70.0%\nTraining Time: 1842.3s\n"
            "\nHyperparameters:\n"
            "  CONFIG_ADAMWPRUNE_BETA1=0.87\n  CONFIG_PRUNING_WARMUP=7800\n"  # swept first
            "  CONFIG_PRUNING_METHOD=state\n  CONFIG_TARGET_SPARSITY=0.7\n"
        )
        in text
    )
    ranking = [line.split(". ", 1)[1] for line in text.splitlines() if line[:1].isdigit() and ". config_" in line]
    assert ranking == [  # tie 88.43: lower name first
        "config_003  [best]",
        "config_001  [tied with the best]",
        "config_004  [tied with the best]",
        "config_006",
    ]
    # "best" is a set: 88.43 is within the 0.5 pp resolution of 88.51, 87.90 is not
    assert "Tie set (within 0.50 pp resolution, no seeds swept): config_003, config_001, config_004\n" in text
    assert "Told apart, worse (1); the nearest: config_006: 0.61 pp behind: beyond the resolution\n" in text
    assert "4. config_006\n   Test Acc: 87.90% | Sparsity: 70.0% | Time: 1800.0s\n" in text
    assert "FAILED TESTS: 1\n" + "-" * 40 + "\nconfig_002: loss became nan/inf at epoch 3, step 1021" in text
    assert "SKIPPED OR NOT RUN: 1\n" + "-" * 40 + "\nconfig_005 (skipped): pruning warmup (39000 steps)" in text


def test_table_ranks_and_shows_swept_columns(records: list[dict[str, Any]]) -> None:
    lines = render_table(records).splitlines()
    assert lines[0].split() == [
        "rank",
        "config",
        "test_acc",
        "%",
        "sparsity",
        "time",
        "ADAMWPRUNE_BETA1",
        "PRUNING_WARMUP",
    ]
    assert [line.split()[:2] for line in lines[2:]] == [
        ["1", "config_003"],
        ["2", "config_001"],
        ["3", "config_004"],
        ["4", "config_006"],
    ]
    assert lines[4].split()[2:] == ["88.43", "69.9%", "1851.0s", "0.87", "11700"]


def test_interrupted_sweep_says_so(records: list[dict[str, Any]]) -> None:
    text = render_analysis(records, interrupted=True)
    assert "The sweep was interrupted: trials marked 'not run' did not finish.\n" in text
    assert "interrupted" not in render_analysis(records)


def test_not_run_trials_are_listed(records: list[dict[str, Any]]) -> None:
    records[5].update(status="not_run", error="sweep interrupted", test_acc=None)
    text = render_analysis(records)
    assert "Passed: 3 | Failed: 1 | Skipped: 1 | Not run: 1 | Reused: 1\n" in text
    assert "SKIPPED OR NOT RUN: 2\n" in text
    assert "config_006 (not_run): sweep interrupted\n" in text


def test_no_finished_trial_has_no_best(records: list[dict[str, Any]]) -> None:
    failed = [dict(r, status="failed", test_acc=None, error="boom") for r in records]
    text = render_analysis(failed)
    assert "No configuration finished, so there is no best one.\n" in text
    assert "BEST CONFIGURATION" not in text
    assert "FAILED TESTS: 6\n" in text
    assert render_table(failed).splitlines()[0].split()[:2] == ["rank", "config"]
    assert len(render_table(failed).splitlines()) == 2  # header and rule only


def test_top_list_and_table_stop_at_ten(records: list[dict[str, Any]]) -> None:
    many = []
    for i in range(1, 13):
        rec = copy.deepcopy(records[0])
        rec.update(config_file=f"config_{i:03d}", test_acc=50.0 + i)
        many.append(rec)
    text = render_analysis(many)
    assert f"TOP {TOP_N} CONFIGURATIONS:" in text
    assert "10. config_003\n" in text and "11. " not in text
    assert "Config file: config_012\nTest Accuracy: 62.00%\n" in text
    table = render_table(many).splitlines()
    assert len(table) == 2 + TOP_N
    assert table[-1].split()[:3] == ["10", "config_003", "53.00"]


def test_the_same_name_from_two_range_files_is_told_apart(records: list[dict[str, Any]]) -> None:
    first = copy.deepcopy(records[0])
    first.update(source="/work/sweeps/state.rc", config_file="config_001", test_acc=97.0, status="passed")
    second = copy.deepcopy(first)
    second.update(source="/work/sweeps/schedule.rc", test_acc=96.0, status="failed", error="boom")
    third = copy.deepcopy(first)
    third.update(source="/work/sweeps/schedule.rc", config_file="config_002", test_acc=95.0)
    both = [first, second, third]
    text = render_analysis(both)
    assert "Config file: state.rc:config_001\n" in text
    assert "2. schedule.rc:config_002\n" in text
    assert "schedule.rc:config_001: boom\n" in text
    assert [row.split()[1] for row in render_table(both).splitlines()[2:]] == [
        "state.rc:config_001",
        "schedule.rc:config_002",
    ]
    # generated configs (--config-dir) are named after their folder
    from_dirs = [
        dict(first, source="/w/run_a/config_001"),
        dict(third, source="/w/run_b/config_001", config_file="config_001"),
    ]
    assert "Config file: run_a:config_001\n" in render_analysis(from_dirs)
    # one file, or names that do not clash: the plain names, as before (the golden files)
    assert "Config file: config_001\n" in render_analysis([first, third])


# -- the sections other reporters add, and replicates (CONFIG_SEED swept) ---------------------------

REPLICATES = GOLDEN / "sample_replicates_summary.json"


def test_importance_section_matches_golden(records: list[dict[str, Any]]) -> None:
    check_golden("sample_sweep_importance.txt", importance.render_section(importance.compute(records)))


def test_refine_range_matches_golden(records: list[dict[str, Any]]) -> None:
    symbols = refine.builtin_symbols()
    ref = refine.refine(records, importance.compute(records), symbols)
    assert ref is not None
    check_golden("sample_refine_range", refine.render(ref, "sweep_20250101_120000", symbols))
    section = refine.render_section(ref, "sweep_20250101_120000/refine_range")
    assert section.splitlines()[2:] == [
        "3 combinations (this sweep: 9)",
        "  CONFIG_ADAMWPRUNE_BETA1=0.86|0.87|0.88  (finer; was 0.85|0.87|0.89)",
        "  CONFIG_PRUNING_WARMUP=11700  (fixed; was 7800|11700|39000)",
        "Run it with: pytest --range-config=sweep_20250101_120000/refine_range",
    ]


def test_sections_follow_the_guides_layout(records: list[dict[str, Any]]) -> None:
    plain = render_analysis(records)
    with_sections = render_analysis(records, sections=["FIRST:\nline\n", "SECOND:\n"])
    assert with_sections == plain + "\n" + "=" * 60 + "\nFIRST:\nline\n\n" + "=" * 60 + "\nSECOND:\n"


def test_replicates_analysis_matches_golden() -> None:
    replicates = load_summary(REPLICATES)
    check_golden("sample_replicates_analysis.txt", render_analysis(replicates))
    check_golden("sample_replicates_table.txt", render_table(replicates) + "\n")
    check_golden("sample_replicates_importance.txt", importance.render_section(importance.compute(replicates)))


def test_golden_replicates_analysis_uses_means_over_seeds() -> None:
    """What the replicates golden says, spelled out."""
    text = (GOLDEN / "sample_replicates_analysis.txt").read_text(encoding="utf-8")
    assert "Total configurations tested: 3 (9 trials: replicates over CONFIG_SEED)\n" in text
    assert (
        "Config files: config_004, config_005, config_006 (CONFIG_SEED=1, 2, 3)\nTest Accuracy: 88.50 ± 0.10% (n=3); "
        "95% bootstrap interval of the mean 88.40-88.60\n" in text
    )
    assert "CONFIG_SEED=" not in text.split("Hyperparameters:")[1].split("TOP 10")[0]
    assert (
        "3. config_007 (seeds 1, 2, 3: config_007, config_008, config_009)\n   Test Acc: 87.70 ± 0.14% (n=2)"
    ) in text
    # differences to config_001: 0.4, 0.3, 0.2 (3 seeds); to config_007: 0.7, 0.8 (seeds 1 and 3): pooled sd
    # sqrt((0.02 + 0.005) / 3) = 0.091 with 3 df; config_001: t = 0.3 / (0.091 / sqrt 3) = 5.7, p = 0.011,
    # times 2 comparisons 0.021 < 0.05: told apart
    assert "Tie set (paired t over 3 seeds, Bonferroni): config_004\n" in text
    assert (
        "Told apart, worse (2); the nearest: config_001: 0.30 pp behind over 3 shared seeds: p = 0.011, "
        "over 2 comparisons p = 0.021: worse\n"
    ) in text
    table = (GOLDEN / "sample_replicates_table.txt").read_text(encoding="utf-8").splitlines()
    assert table[0].split() == [
        "rank",
        "config",
        "test_acc",
        "%",
        "±",
        "sd",
        "n",
        "sparsity",
        "time",
        "ADAMWPRUNE_BETA1",
    ]
    assert [row.split()[1:5] for row in table[2:]] == [
        ["config_004", "88.50", "0.10", "3"],
        ["config_001", "88.20", "0.10", "3"],
        ["config_007", "87.70", "0.14", "2"],
    ]
