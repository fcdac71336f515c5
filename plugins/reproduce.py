"""``pytest-sweep reproduce SWEEP_DIR TRIAL [--run]``: one trial again, from its record.

The trial's config is written as a generated config (``<out>/<trial>/config_NNN``, the format of
``--sweep-generate``, run with ``--config-dir``): every key the trial ran with, as its record
holds it (command-line ``--sweep-set`` values included) and its seed, so the trial keeps its name
and nothing is expanded or rewritten again.  The command runs it in the folder the sweep was
started from, with the same interpreter, the same plugins and ini overrides (``-p``, ``-c``,
``-o``, ``--rootdir``...) and the same number of torch threads (``torch_threads`` of the record:
CPU results depend on it), serially and without early stopping (a stopped trial is compared at the
epoch it stopped).  ``environment.json`` (:mod:`pytest_sweep.matrix.environment`) supplies the
command line; a sweep without one (older versions) is reproduced from its records, with a note.

``--run`` runs it into a new sweep folder (``<out>/sweep_*``) and compares: on the CPU the test
accuracy must be equal to the last digit; on CUDA, whose kernels are not bit-exact, within the
seed noise (twice the pooled standard deviation over seeds, when the sweep swept ``CONFIG_SEED``;
otherwise it says that the noise is unknown).  Exit 0 when reproduced, 1 when not, 4 for a usage
error (an unknown trial, a damaged record).
"""

from __future__ import annotations

import json
import math
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_sweep.matrix import environment, files, storage
from pytest_sweep.matrix.errors import RangeConfigError
from pytest_sweep.matrix.files import SUMMARY_JSON, TRAINING_METRICS
from pytest_sweep.matrix.generate import read_config_dir
from pytest_sweep.matrix.rangewrite import Unwritable, assignment, comment
from pytest_sweep.matrix.records import SummaryError, load_summary

SEED_KEY = "CONFIG_SEED"
REPRODUCE_DIR = "reproduce"
#: Options of the recorded command line that the reproduction keeps (with their value where they take one).
KEEP_WITH_VALUE = (
    "-p",
    "-c",
    "-o",
    "--override-ini",
    "--rootdir",
    "--confcutdir",
    "--import-mode",
    "--sweep-trial-timeout",
)
KEEP_FLAGS = ("--noconftest",)
#: Environment variables of the recorded run that change what loads or how it trains.
KEEP_ENV = (
    "PYTEST_DISABLE_PLUGIN_AUTOLOAD",
    "PYTEST_PLUGINS",
    "PYTHONPATH",
    "CUBLAS_WORKSPACE_CONFIG",
    "PYTHONHASHSEED",
)


class ReproduceError(ValueError):
    """A usage error of ``reproduce``: one line, exit code 4."""


@dataclass
class Plan:
    record: dict[str, Any]
    sweep_dir: Path
    config_dir: Path
    out: Path
    cwd: Path
    argv: list[str]
    env: dict[str, str]
    notes: list[str] = field(default_factory=list)

    def shell(self) -> str:
        """The command as one line for a POSIX shell."""
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env.items())
        return f"cd {shlex.quote(str(self.cwd))} && " + (env + " " if env else "") + shlex.join(self.argv)


def find_record(records: list[dict[str, Any]], trial: str, where: str) -> dict[str, Any]:
    """The record named ``trial``: its ``config_NNN``, its folder, or its node id (or the id's tail)."""
    wanted = trial.strip()
    found = [
        r
        for r in records
        if wanted in (r.get("config_file"), r.get("trial_dir"), r.get("nodeid"))
        or str(r.get("nodeid", "")).endswith(f"::{wanted}")
    ]
    if len(found) == 1:
        return found[0]
    if found:
        folders = ", ".join(str(r.get("trial_dir")) for r in found)
        raise ReproduceError(
            f"{where}: {len(found)} trials are named {trial!r} (one per range file); name its folder: {folders}"
        )
    names = [str(r.get("config_file")) for r in records]
    listed = ", ".join(names[:5]) + (f", ... ({len(names)} trials)" if len(names) > 5 else "")
    raise ReproduceError(f"{where}: no trial {shown(trial)} in it; its trials: {listed or 'none'}")


def shown(text: str, limit: int = 60) -> str:
    escaped = text.encode("unicode_escape").decode("ascii")
    return repr(escaped if len(escaped) <= limit else escaped[: limit - 3] + "...")


def load_records(sweep_dir: Path) -> list[dict[str, Any]]:
    where = str(sweep_dir)
    if not sweep_dir.is_dir():
        raise ReproduceError(f"{where}: no such folder; pass a sweep_YYYYMMDD_HHMMSS folder")
    try:
        return load_summary(storage.sweep_path(sweep_dir, SUMMARY_JSON))
    except FileNotFoundError:
        raise ReproduceError(f"{where}: no sweep_summary.json in it; pass the folder of a sweep that ran") from None
    except (OSError, ValueError) as exc:
        why = str(exc) if isinstance(exc, SummaryError) else (getattr(exc, "strerror", None) or type(exc).__name__)
        raise ReproduceError(
            f"{where}: sweep_summary.json is not readable ({why}); the trial folders still hold "
            f"each result, and pytest --sweep-resume={where} writes the summary again"
        ) from None


def render_config(record: dict[str, Any]) -> str:
    """The trial's config as a generated config file: every key it ran with, and its seed.

    Written by the one range-config writer (:mod:`pytest_sweep.matrix.rangewrite`): a value reads
    back as exactly the recorded text (a ``|``, ``:`` or quote stays part of it), and the names
    echoed into the comments stay one line.  Raises :class:`ReproduceError` for what a config cannot
    hold (a line break in a value).
    """
    config = {str(k): str(v) for k, v in (record.get("config") or {}).items()}
    if SEED_KEY not in config and record.get("seed") is not None:
        config[SEED_KEY] = str(record["seed"])
    lines = [
        comment(f"Configuration {record['config_file']}"),
        comment(f"Reproduces {record.get('trial_dir')} of the sweep that wrote this folder (pytest-sweep reproduce)"),
        comment(f"Generated by pytest-sweep from {record.get('source')}"),
    ]
    try:
        for key, value in sorted(config.items()):
            plain = value in ("y", "n") or _is_number(value)
            lines.append(assignment(key, [value], string=not plain))
    except Unwritable as exc:
        raise ReproduceError(
            f"the recorded config of {record['config_file']} cannot be written as a config: {exc}"
        ) from None
    return "\n".join(lines) + "\n"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def write_config(record: dict[str, Any], folder: Path) -> Path:
    """Write the config and check that it reads back as exactly the recorded config."""
    text = render_config(record)
    path = storage.sweep_path(folder, str(record["config_file"]))
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("config_*"):
        old.unlink()
    storage.write_text_atomic(path, text)
    try:
        (combo,) = read_config_dir(folder)
    except (RangeConfigError, ValueError) as exc:
        raise ReproduceError(
            f"the recorded config of {record['config_file']} cannot be written back as a config: {exc}"
        ) from None
    expected = {str(k): str(v) for k, v in (record.get("config") or {}).items()}
    got = {k: v for k, v in combo.values.items() if k in expected}
    if got != expected:
        diff = sorted(k for k in expected if got.get(k) != expected[k])
        raise ReproduceError(
            f"the recorded config of {record['config_file']} does not read back the same ({', '.join(diff)})"
        )
    return path


def kept_args(args: list[str]) -> list[str]:
    """The recorded command line's plugins, ini overrides and trial timeout; nothing that selects or distributes."""
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in KEEP_FLAGS:
            out.append(arg)
        elif arg in KEEP_WITH_VALUE:
            if i + 1 < len(args):
                out += [arg, args[i + 1]]
            i += 1
        elif any(arg.startswith(f"{opt}=") for opt in KEEP_WITH_VALUE if opt.startswith("--")) or (
            arg[:2] in ("-p", "-c", "-o") and len(arg) > 2 and not arg.startswith("--")
        ):
            out.append(arg)
        i += 1
    return out


def plan(sweep_dir: Path, trial: str, out: Path | None = None) -> Plan:
    """Everything ``reproduce`` prints and runs; raises :class:`ReproduceError` for a usage error."""
    sweep_dir = sweep_dir.resolve()
    records = load_records(sweep_dir)
    record = find_record(records, trial, str(sweep_dir))
    notes: list[str] = []
    if record.get("status") in ("skipped", "not_run"):
        notes.append(
            f"{record['config_file']} was {record['status']} in that sweep ({record.get('error')}): there is no result to compare"
        )
    env, why = environment.load(sweep_dir)
    if env is None:
        notes.append(
            f"{why}: the command is built from the record alone; the code version, the plugins (-p) and the "
            "options of that run are unknown"
        )
        env = {}
    env, damaged = usable_sections(env)
    if damaged:
        notes.append(
            f"{files.ENVIRONMENT_JSON}: {', '.join(damaged)} not as pytest-sweep writes it (edited or "
            "damaged), so left out of the command"
        )
    notes += source_notes(env, record)
    notes += code_notes(env, sweep_dir)
    try:
        # the default folder and the names the record gives are checked as every sweep-folder path is:
        # one plain name each, no symbolic link on the way (never written where a record points)
        out = out.resolve() if out is not None else storage.sweep_path(sweep_dir, REPRODUCE_DIR)
        config_dir = storage.sweep_path(out, str(record.get("trial_dir") or record["config_file"]))
        storage.sweep_path(config_dir, str(record["config_file"]))
    except storage.UnsafePath as exc:
        where = "" if str(exc.filename).endswith("?") else f"{exc.filename}: "
        raise ReproduceError(f"{sweep_dir}: cannot reproduce {record['config_file']}: {where}{exc.strerror}") from None
    command = env.get("command") or {}
    python = str(command.get("python") or "")
    if not python or not Path(python).exists():
        if python:
            notes.append(f"the sweep's Python {python} is gone; using {sys.executable}")
        python = sys.executable
    cwd = Path(str(command.get("invocation_dir") or Path.cwd()))
    if not cwd.is_dir():
        notes.append(f"the sweep was started in {cwd}, which is gone; running from {Path.cwd()}")
        cwd = Path.cwd()
    argv = [python, "-m", "pytest", *kept_args([str(a) for a in command.get("args") or []])]
    argv += [f"--config-dir={config_dir}", f"--sweep-output={out}", "--sweep-backend=serial"]
    options = env.get("options") or {}
    if "sweep_scheduler" in options:  # the scheduler plugin was loaded: run the trial to its end
        argv.append("--sweep-scheduler=none")
        if "sweep_asha_mode" in options:  # an ini's promotion mode would need the scheduler
            argv.append("--sweep-asha-mode=stopping")
    variables = {k: str(v) for k, v in (env.get("env") or {}).items() if k in KEEP_ENV}
    threads = record.get("torch_threads")
    if isinstance(threads, int) and not isinstance(threads, bool) and threads > 0:
        variables.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    elif (env.get("env") or {}).get("OMP_NUM_THREADS"):
        variables["OMP_NUM_THREADS"] = str(env["env"]["OMP_NUM_THREADS"])
    if record.get("status") == "stopped":
        notes.append(
            f"{record['config_file']} was stopped early at epoch {record.get('rung')}: it trains to its end here, "
            f"and its epoch-{record.get('rung')} test accuracy is compared"
        )
    return Plan(record, sweep_dir, config_dir, out, cwd, argv, variables, notes)


#: The sections of ``environment.json`` that ``plan`` reads, with the type each must have.
_SECTIONS: dict[str, type] = {"command": dict, "env": dict, "options": dict, "code": dict, "sources": list}


def usable_sections(env: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``env`` without the sections that are not of the type written (a hand-edited or damaged
    file), and their names: a reproduction never tracebacks on them."""
    damaged = [
        name for name, kind in _SECTIONS.items() if env.get(name) is not None and not isinstance(env[name], kind)
    ]
    command = env.get("command")
    if isinstance(command, dict) and command.get("args") is not None and not isinstance(command["args"], list):
        damaged.append("command.args")
        env = {**env, "command": {k: v for k, v in command.items() if k != "args"}}
    return {k: v for k, v in env.items() if k not in damaged}, damaged


def source_notes(env: dict[str, Any], record: dict[str, Any]) -> list[str]:
    """Whether the range file the trial came from moved or changed since the sweep."""
    notes = []
    for source in env.get("sources") or []:
        if not isinstance(source, dict) or source.get("kind") != "range":
            continue
        path = Path(str(source.get("path")))
        if record.get("source") not in (str(path), source.get("given")):
            continue
        if not path.is_file():
            notes.append(f"the range file {path} is gone (moved or deleted) since the sweep; using the recorded config")
        elif source.get("sha256") and environment.file_digest(path) != source["sha256"]:
            notes.append(f"the range file {path} changed since the sweep; using the recorded config")
    return notes


def code_notes(env: dict[str, Any], sweep_dir: Path) -> list[str]:
    """Where the code under test stands now against the record (commit, uncommitted changes)."""
    code = env.get("code") or {}
    if not isinstance(code, dict) or not code.get("repository"):
        return []
    notes = []
    recorded = code.get("commit")
    if code.get("dirty") and code.get("diff"):
        notes.append(
            f"the sweep ran with uncommitted changes: check out {str(recorded)[:12]} and apply "
            f"{sweep_dir / str(code['diff'])} (git apply) for the same code"
        )
    elif code.get("dirty"):
        notes.append("the sweep ran with untracked files in the repository (listed in environment.json)")
    repo = Path(str(code["repository"]))
    if repo.is_dir():
        now = environment.git_state(repo, [sweep_dir.parent])
        if now.get("commit") != recorded:
            notes.append(f"the code is at {str(now.get('commit'))[:12]} now, the sweep ran at {str(recorded)[:12]}")
        elif now.get("dirty") and not code.get("dirty"):
            notes.append("the code has uncommitted changes now that the sweep did not have")
    return notes


# -- running and comparing -------------------------------------------------------------------------


@dataclass
class Verdict:
    reproduced: bool
    lines: list[str]


def _metric_at(folder: Path, epoch: int) -> float | None:
    try:
        doc = json.loads(storage.sweep_path(folder, TRAINING_METRICS).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("epochs"), list):
        return None
    for row in doc["epochs"]:
        if isinstance(row, dict) and row.get("epoch") == epoch and isinstance(row.get("test_acc"), (int, float)):
            return float(row["test_acc"])
    return None


def seed_noise(records: list[dict[str, Any]]) -> float | None:
    """The pooled standard deviation of ``test_acc`` over seeds, when the sweep swept ``CONFIG_SEED``."""
    from pytest_sweep.plugins.analysis import labeller
    from pytest_sweep.plugins.replicates import configurations, pooled_sd, seed_swept

    if not seed_swept(records):
        return None
    return pooled_sd(configurations(records, labeller(records)))


def compare(p: Plan, new_dir: Path, records: list[dict[str, Any]]) -> Verdict:
    """The reproduction's record against the original (see the module docstring)."""
    then = p.record
    name = str(then["config_file"])
    try:
        (now,) = [r for r in load_summary(storage.sweep_path(new_dir, SUMMARY_JSON)) if r.get("config_file") == name]
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return Verdict(False, [f"NOT REPRODUCED: the reproduction wrote no readable record of {name} in {new_dir}"])
    if then.get("status") not in ("passed", "stopped"):
        return Verdict(
            now["status"] == then.get("status"),
            [f"{name}: {then.get('status')} then ({then.get('error')}), {now['status']} now ({now.get('error')})"],
        )
    if now["status"] != "passed":
        return Verdict(False, [f"NOT REPRODUCED: {name} passed then, {now['status']} now: {now.get('error')}"])
    a = then.get("test_acc")
    b = now.get("test_acc")
    what = "test_acc"
    if then.get("status") == "stopped" and isinstance(then.get("rung"), int):
        try:
            trial_dir = storage.sweep_path(new_dir, str(now.get("trial_dir")))
        except storage.UnsafePath:
            trial_dir = None
        b = None if trial_dir is None else _metric_at(trial_dir, int(then["rung"]))
        what = f"test_acc at epoch {then['rung']}"
    if a is None or b is None:
        return Verdict(False, [f"NOT REPRODUCED: {what} is missing ({a} then, {b} now)"])
    device = str(then.get("device") or now.get("device") or "cpu")
    threads = f", {then.get('torch_threads')} torch thread(s)" if then.get("torch_threads") else ""
    if not then.get("device"):
        threads += "; the trainer recorded no device, so an exact result is expected"
    diff = float(b) - float(a)
    if not device.startswith("cuda"):
        if float(a) == float(b):
            return Verdict(True, [f"REPRODUCED: {name} {what} {float(a)!r}% then and now, exactly (CPU{threads})"])
        return Verdict(
            False,
            [
                f"NOT REPRODUCED: {name} {what} {float(a)!r}% then, {float(b)!r}% now ({diff:+.4f} pp) on the CPU{threads}, "
                "where a rerun is exact: the code, a library or the thread count differs (see the notes above)"
            ],
        )
    noise = seed_noise(records)
    head = f"{name} {what} {float(a):.2f}% then, {float(b):.2f}% now ({diff:+.2f} pp) on CUDA, whose kernels are not bit-exact"
    if float(a) == float(b):
        return Verdict(True, [f"REPRODUCED: {head}; equal"])
    if noise is None or not math.isfinite(noise):
        return Verdict(
            True,
            [
                f"REPRODUCED? {head}; the sweep did not sweep CONFIG_SEED, so its seed noise is unknown and this "
                "difference cannot be judged (sweep CONFIG_SEED=1|2|3 to measure it)"
            ],
        )
    if abs(diff) <= 2 * noise:
        return Verdict(
            True, [f"REPRODUCED: {head}; within the seed noise (2 x {noise:.2f} pp, the pooled sd over seeds)"]
        )
    return Verdict(
        False, [f"NOT REPRODUCED: {head}; beyond the seed noise (2 x {noise:.2f} pp, the pooled sd over seeds)"]
    )


def run(p: Plan, records: list[dict[str, Any]]) -> Verdict:
    """Run the command (its output goes to this terminal) and compare its result with the record."""
    p.out.mkdir(parents=True, exist_ok=True)
    before = set(storage.sweep_dirs(p.out))
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    env.update(p.env)
    sys.stdout.flush()
    subprocess.run(p.argv, cwd=p.cwd, env=env, check=False)
    new = [d for d in storage.sweep_dirs(p.out) if d not in before]
    if not new:
        return Verdict(False, [f"NOT REPRODUCED: the command wrote no sweep folder under {p.out}"])
    verdict = compare(p, new[-1], records)
    verdict.lines.append(f"reproduction: {new[-1]}")
    return verdict
