"""``pytest-sweep reproduce`` under a hand-edited or damaged ``environment.json`` and trial file.

Each section it reads (``command``, ``command.args``, ``env``, ``options``, ``code``,
``sources``) of the wrong type, and a file nested too deeply to parse: the command is still built
from the record, with a note naming what was left out; never a traceback.  A stopped trial whose
reproduction's ``training_metrics.json`` is damaged has no metric at its rung (not a crash).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_sweep import cli
from pytest_sweep.plugins import reproduce as rep

RECORD = {
    "schema_version": 2,
    "config_file": "config_001",
    "trial_dir": "config_001",
    "status": "passed",
    "test_acc": 50.0,
    "config": {"CONFIG_TOY_Q": "1"},
    "swept": ["CONFIG_TOY_Q"],
    "source": "range",
    "seed": 1,
}
DEEP = "[" * 100_000 + "]" * 100_000

HOSTILE_ENVIRONMENTS = {
    "command a list": ('{"command": [1, 2]}', "command not as pytest-sweep writes it"),
    "env a list": ('{"env": [1]}', "env not as pytest-sweep writes it"),
    "options a number": ('{"options": 5}', "options not as pytest-sweep writes it"),
    "sources a number": ('{"sources": 5}', "sources not as pytest-sweep writes it"),
    "code a string": ('{"code": "x"}', "code not as pytest-sweep writes it"),
    "args a string": ('{"command": {"args": "-p evil"}}', "command.args not as pytest-sweep writes it"),
    "args an object": ('{"command": {"args": {"-p": 1}}, "env": "x"}', "env, command.args not as"),
    "nested too deeply": (DEEP, "environment.json is not readable (RecursionError)"),
    "a list": ("[1, 2]", "environment.json is not readable (not a JSON object)"),
}


@pytest.mark.parametrize("case", HOSTILE_ENVIRONMENTS, ids=list(HOSTILE_ENVIRONMENTS))
def test_a_damaged_environment_json_is_a_note_not_a_traceback(
    case: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    text, note = HOSTILE_ENVIRONMENTS[case]
    sweep = tmp_path / "sweep_20250101_000000"
    (sweep / "config_001").mkdir(parents=True)
    (sweep / "sweep_summary.json").write_text(json.dumps([RECORD]), encoding="utf-8")
    (sweep / "environment.json").write_text(text, encoding="utf-8")
    code = cli.main(["reproduce", str(sweep), "config_001"])
    out, err = capfd.readouterr()
    assert code == 0, err
    assert "Traceback" not in out + err
    notes = [line for line in out.splitlines() if line.startswith("note:")]
    assert any(note in line for line in notes), notes
    command = [line for line in out.splitlines() if " -m pytest " in line]
    assert len(command) == 1 and "--config-dir=" in command[0] and "evil" not in command[0]


@pytest.mark.parametrize(
    "text",
    ["[1, 2]", '{"epochs": 5}', '{"epochs": [1, "x", null]}', DEEP, "not json"],
    ids=["a list", "epochs a number", "rows not objects", "nested too deeply", "not JSON"],
)
def test_a_damaged_training_metrics_has_no_metric_at_the_rung(tmp_path: Path, text: str) -> None:
    (tmp_path / "training_metrics.json").write_text(text, encoding="utf-8")
    assert rep._metric_at(tmp_path, 1) is None
