"""Command-line options and ini values of the ``sweep`` group, and the one place that reads them.

:func:`sweep_options` resolves the core's options once per process (command line first, then the
ini value, then the default) into a frozen :class:`SweepOptions` kept in ``config.stash``: the
entry point's ``pytest_configure`` does it before any plugin acts, the ``--sweep-generate`` and
``--sweep-symbols`` steps in ``pytest_cmdline_main``.  A bad value is a one-line usage error then.
Every other module takes the fields it needs from that object; no module outside the options
modules (this one, :mod:`.search_options`, ``plugins/options.py``) calls ``getoption``/``getini``
(``tests/test_options_once.py`` checks it).  An xdist worker or a Ray actor receives its
controller's object in ``workerinput`` (:meth:`SweepOptions.to_dict`) instead of reading its own.
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_sweep.matrix import search_options
from pytest_sweep.matrix.objectives import Constraint, Objective

if TYPE_CHECKING:
    from pytest_sweep.matrix import checkpoints

#: The shortest limit ``--sweep-trial-timeout`` accepts, and the shortest gap between two alarms
#: (matrix/timeout.py): repeats any closer would leave the process no time between them (a livelock).
MIN_TIMEOUT = 0.1
DEFAULT_MAX_COMBINATIONS = 10_000
DEFAULT_SUMMARY_INTERVAL = 10.0
#: Options that set one config symbol in every trial, as ``--sweep-set KEY=VALUE`` would.
#: ``--sweep-backend``: where the trials run.
BACKENDS = ("serial", "ray")
SHORTHANDS = {"sweep_epochs": "CONFIG_NUM_EPOCHS", "sweep_data_dir": "CONFIG_DATA_DIR", "sweep_device": "CONFIG_DEVICE"}
#: The options that make a run a sweep (their ``dest`` names); without one, pytest-sweep changes nothing.
SWEEP_OPTIONS = ("range_config", "config_dir", "sweep_generate", "sweep_symbols")


def sweep_requested(namespace: Any) -> bool:
    """Whether parsed options (``config.option``, ``config.known_args_namespace``) ask for a sweep."""
    return any(getattr(namespace, dest, None) for dest in SWEEP_OPTIONS)


def runs_sweep(namespace: Any) -> bool:
    """Whether parsed options give a sweep to run (``--range-config`` or ``--config-dir``)."""
    return any(getattr(namespace, dest, None) for dest in ("range_config", "config_dir"))


def ends_at_cmdline(namespace: Any) -> str | None:
    """The step parsed options ask for that ends the run before pytest configures: ``generate``
    (``--sweep-generate``, which wins), ``symbols`` (``--sweep-symbols``), or None."""
    for dest in ("sweep_generate", "sweep_symbols"):
        if getattr(namespace, dest, None):
            return dest.removeprefix("sweep_")
    return None


def _whole_number(text: str, minimum: int, bound: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"{text} must be {bound}")
    return value


def positive_int(text: str) -> int:
    """An option's whole number, at least 1 (an ``argparse`` type)."""
    return _whole_number(text, 1, "at least 1")


def non_negative_int(text: str) -> int:
    """An option's whole number, 0 or more (an ``argparse`` type)."""
    return _whole_number(text, 0, "0 or more")


def parse_float(text: str) -> float:
    """An option's number (an ``argparse`` type)."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


_SIZE = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+) *([kmgt]i?b|b)?", re.IGNORECASE | re.ASCII)
_UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


def parse_size(text: str) -> int | None:
    """A byte count (``100MiB``, ``2GiB``, ``1.5GB``, ``4096``) or ``off`` (None) (an ``argparse`` type)."""
    raw = text.strip()
    if raw.lower() in ("off", "none"):
        return None
    match = _SIZE.fullmatch(raw)
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size; give bytes with a unit (e.g. 100MiB, 2GiB) or off")
    value = float(match.group(1)) * _UNITS[(match.group(2) or "b").lower()]
    if value < 1 or value > 2**60:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1 byte and at most 1 EiB (or off)")
    return int(value)


def _size_arg(text: str) -> int:
    """``--sweep-ray-ship-limit``'s type: the size, 0 for ``off`` (so that it overrides the ini value)."""
    return parse_size(text) or 0


def format_size(n: int) -> str:
    """``104857600`` -> ``100 MiB`` (two significant decimals at most)."""
    value = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return (f"{n} byte" if n == 1 else f"{n} bytes") if unit == "bytes" else f"{value:.4g} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _positive_float(text: str) -> float:
    value = parse_float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} must be above 0")
    if value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a usable number; give a finite one")
    return value


#: The longest trial timeout accepted (about 115 days); larger values cannot be a real limit.
MAX_TIMEOUT = 1e7


def _timeout(text: str) -> float:
    value = parse_float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} must be above 0")
    if not value <= MAX_TIMEOUT:
        raise argparse.ArgumentTypeError(
            f"{text} is not a usable limit; give seconds from {MIN_TIMEOUT:g} to {MAX_TIMEOUT:g}"
        )
    if value < MIN_TIMEOUT:
        raise argparse.ArgumentTypeError(
            f"{text} is below {MIN_TIMEOUT:g} s, too short for any trial; give seconds from {MIN_TIMEOUT:g} "
            f"to {MAX_TIMEOUT:g}"
        )
    return value


def _folder(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("empty folder name; give a folder")
    return text


def _non_negative_float(text: str) -> float:
    value = parse_float(text)
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be a number of seconds, 0 or more")
    return value


def _checkpoint_every(text: str) -> str:
    from pytest_sweep.matrix.checkpoints import parse_every

    try:
        parse_every(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text.strip()


def _one_line(text: str) -> str:
    """A config value given on the command line: one line of UTF-8 text, as a range config holds it
    (config.txt and refine_range write one value per line, so a line break cannot be written there)."""
    shown = text.encode("unicode_escape").decode("ascii")
    if "\n" in text or "\r" in text:
        raise argparse.ArgumentTypeError(f"'{shown}' holds a line break; a config value is one line of text")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError(f"'{shown}' is not UTF-8 text; give the value in UTF-8") from None
    return text


def _assignment(text: str) -> str:
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or not value.strip():
        shown = text.encode("unicode_escape").decode("ascii")
        raise argparse.ArgumentTypeError(f"'{shown}' is not KEY=VALUE (e.g. CONFIG_NUM_EPOCHS=5)")
    _one_line(text)
    return f"{key.strip()}={value.strip()}"


def addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("sweep", "hyperparameter sweeps (pytest-sweep)")
    group.addoption(
        "--range-config",
        action="append",
        default=[],
        metavar="FILE",
        help="Run the sweep in this range config: one test item per combination (repeatable)",
    )
    group.addoption(
        "--config-dir",
        action="append",
        default=[],
        metavar="DIR",
        help="Run the configs generated into DIR by sweep-generate (config_001, config_002, ...)",
    )
    group.addoption(
        "--sweep-generate",
        type=_folder,
        default=None,
        metavar="DIR",
        help="Write one config file per combination of --range-config into DIR "
        "(plus combinations_summary.txt), then exit without training",
    )
    group.addoption(
        "--sweep-output",
        default=None,
        metavar="DIR",
        help="Folder that receives sweep_YYYYMMDD_HHMMSS/ (default: test_matrix_results)",
    )
    group.addoption(
        "--sweep-max-combinations",
        dest="sweep_max_combinations",
        type=positive_int,
        default=None,
        metavar="N",
        help=f"Refuse grids larger than N combinations (default: {DEFAULT_MAX_COMBINATIONS})",
    )
    group.addoption(
        "--sweep-minutes-per-trial",
        dest="sweep_minutes_per_trial",
        type=_positive_float,
        default=None,
        metavar="MIN",
        help="Minutes per trial for the runtime estimate (default: measured on this machine in an earlier "
        "sweep of the same trainer, else timed with --sweep-estimate, else after the first passed trial)",
    )
    group.addoption(
        "--sweep-estimate",
        dest="sweep_estimate",
        action="store_true",
        default=None,
        help="Before the sweep, time a few optimizer steps of each trainer that has no measured time on "
        "this machine yet (a child process per trainer; without it the estimate follows the first passed trial)",
    )
    group.addoption(
        "--sweep-epochs",
        dest="sweep_epochs",
        type=positive_int,
        default=None,
        metavar="N",
        help="Train every trial for N epochs (shorthand for --sweep-set CONFIG_NUM_EPOCHS=N)",
    )
    group.addoption(
        "--sweep-data-dir",
        dest="sweep_data_dir",
        default=None,
        metavar="DIR",
        help="Where the datasets live (shorthand for --sweep-set CONFIG_DATA_DIR=DIR)",
    )
    group.addoption(
        "--sweep-device",
        dest="sweep_device",
        default=None,
        metavar="DEVICE",
        help="Train every trial on DEVICE: auto, cpu, cuda or cuda:N (shorthand for --sweep-set CONFIG_DEVICE=DEVICE)",
    )
    group.addoption(
        "--sweep-set",
        action="append",
        type=_assignment,
        default=[],
        metavar="KEY=VALUE",
        help="Force a config value in every trial, overriding the range config (repeatable)",
    )
    group.addoption(
        "--sweep-symbols",
        action="store_true",
        default=False,
        help="List every config symbol the installed plugins consume, then exit",
    )
    group.addoption(
        "--sweep-progress",
        choices=("auto", "lines", "none"),
        default=None,
        help="Progress in the terminal: a line per epoch in a serial run, a line per finished trial "
        "under xdist (auto or lines, the same since xdist runs got their own lines); none: neither",
    )
    group.addoption(
        "--sweep-trial-timeout",
        dest="sweep_trial_timeout",
        type=_timeout,
        default=None,
        metavar="SECONDS",
        help="Fail a trial that runs longer than SECONDS and go on with the sweep",
    )
    group.addoption(
        "--sweep-summary-interval",
        dest="sweep_summary_interval",
        type=_non_negative_float,
        default=None,
        metavar="SECONDS",
        help="While the sweep runs, rewrite sweep_summary.json and sweep_analysis.txt as trials finish, "
        f"at most every SECONDS (default: {DEFAULT_SUMMARY_INTERVAL:g}; 0: after every trial)",
    )
    group.addoption(
        "--sweep-resume",
        dest="sweep_resume",
        nargs="?",
        const="latest",
        default=None,
        metavar="DIR",
        help="Reuse trials already finished in DIR (default: the newest sweep folder) and run the rest",
    )
    group.addoption(
        "--sweep-resume-force",
        dest="sweep_resume_force",
        action="store_true",
        default=False,
        help="Resume even where this run's grid differs from the resumed sweep's (its other records are kept)",
    )
    group.addoption(
        "--sweep-checkpoint-every",
        dest="sweep_checkpoint_every",
        type=_checkpoint_every,
        default=None,
        metavar="EPOCHS|Ns",
        help="Checkpoint each trial every EPOCHS epochs or every N seconds (e.g. 600s), or off; trainers "
        "that checkpoint continue from there when resumed (default: 1)",
    )
    group.addoption(
        "--sweep-checkpoint-keep",
        dest="sweep_checkpoint_keep",
        type=positive_int,
        default=None,
        metavar="N",
        help="Keep each trial's newest N checkpoints on disk (default: 1)",
    )
    group.addoption(
        "--sweep-keep-checkpoints",
        dest="sweep_keep_checkpoints",
        action="store_true",
        default=None,
        help="Keep a trial's checkpoints after it completed (default: removed), with the final epoch's too",
    )
    group.addoption(
        "--sweep-backend",
        dest="sweep_backend",
        choices=BACKENDS,
        default=None,
        help="Where trials run: serial (this process, or xdist workers with -n) or ray "
        "(one actor per GPU of a Ray cluster; pip install pytest-sweep[ray])",
    )
    group.addoption(
        "--sweep-ray-address",
        dest="sweep_ray_address",
        default=None,
        metavar="ADDRESS",
        help="Ray cluster to run on: auto (RAY_ADDRESS, else the one `ray start` started on this machine; "
        "the default), HOST:PORT, or local (a new one on this machine for this run)",
    )
    group.addoption(
        "--sweep-ray-cpus-per-trial",
        dest="sweep_ray_cpus_per_trial",
        type=_positive_float,
        default=None,
        metavar="N",
        help="CPUs each Ray actor reserves (and torch threads it uses); sizes the actors on a cluster without GPUs (default: 1)",
    )
    group.addoption(
        "--sweep-ray-node-retries",
        dest="sweep_ray_node_retries",
        type=non_negative_int,
        default=None,
        metavar="N",
        help="Run a trial whose node died again on another node, up to N times (default: 1)",
    )
    group.addoption(
        "--sweep-ray-ship-files",
        dest="sweep_ray_ship_files",
        action="store_true",
        default=None,
        help="Ship each trial's files back to this process, which writes them, even where the output "
        "folder is shared (it is done anyway on a node that cannot see the folder)",
    )
    group.addoption(
        "--sweep-ray-verbose",
        dest="sweep_ray_verbose",
        action="store_true",
        default=None,
        help="Show Ray's own messages (connecting, the raylets' and GCS's warnings, the actors' "
        "process output); default: silent, the sweep's lines say what happened",
    )
    group.addoption(
        "--sweep-ray-ship-limit",
        dest="sweep_ray_ship_limit",
        type=_size_arg,
        default=None,
        metavar="SIZE",
        help="Largest trial file or checkpoint shipped between a node and this process (e.g. 500MiB, 4GiB); "
        "a trial with a larger one fails, naming it (default: off, any size)",
    )
    parser.addini("sweep_checkpoint_every", "Checkpoint every EPOCHS epochs, every Ns seconds, or off", default="1")
    parser.addini("sweep_checkpoint_keep", "Checkpoints kept per trial", default="1")
    parser.addini(
        "sweep_keep_checkpoints", "Keep a trial's checkpoints after it completed (true/false)", default="false"
    )
    search_options.addoption(parser)
    parser.addini("sweep_backend", "Where trials run: serial or ray", default="serial")
    parser.addini("sweep_ray_address", "Ray cluster address: auto, HOST:PORT or local", default="auto")
    parser.addini("sweep_ray_cpus_per_trial", "CPUs each Ray actor reserves", default="1")
    parser.addini("sweep_ray_node_retries", "Re-runs of a trial whose Ray node died", default="1")
    parser.addini("sweep_ray_ship_files", "Ship trial files back to the controller (bool)", type="bool", default=False)
    parser.addini(
        "sweep_ray_ship_limit", "Largest file shipped between a Ray node and the controller (or off)", default="off"
    )
    parser.addini("sweep_ray_verbose", "Show Ray's own messages (bool)", type="bool", default=False)
    parser.addini("sweep_output", "Folder that receives the sweep folders", default="test_matrix_results")
    parser.addini("sweep_max_combinations", "Largest grid accepted", default=str(DEFAULT_MAX_COMBINATIONS))
    parser.addini("sweep_minutes_per_trial", "Minutes per trial for the runtime estimate", default="")
    parser.addini("sweep_estimate", "Time a few optimizer steps before the sweep (bool)", type="bool", default=False)
    parser.addini("sweep_progress", "Per-epoch progress lines: auto, lines, none", default="auto")
    parser.addini(
        "sweep_summary_interval",
        "Seconds between interim summaries while a sweep runs",
        default=str(DEFAULT_SUMMARY_INTERVAL),
    )


def _ini_number(config: pytest.Config, name: str, kind: type) -> Any:
    raw = str(config.getini(name)).strip()
    if not raw:
        return None
    try:
        value = kind(raw)
    except ValueError:
        what = "whole number" if kind is int else "number"
        raise pytest.UsageError(f"ini value {name} = {raw!r} is not a {what}") from None
    if not value > 0:
        raise pytest.UsageError(f"ini value {name} = {raw!r} must be above 0")
    if value == float("inf"):
        raise pytest.UsageError(f"ini value {name} = {raw!r} is not a usable number; give a finite one")
    return value


def _max_combinations(config: pytest.Config) -> int:
    opt = config.getoption("sweep_max_combinations")
    return int(opt if opt is not None else _ini_number(config, "sweep_max_combinations", int))


def _minutes_per_trial(config: pytest.Config) -> float | None:
    opt = config.getoption("sweep_minutes_per_trial")
    return float(opt) if opt is not None else _ini_number(config, "sweep_minutes_per_trial", float)


def _estimate_asked(config: pytest.Config) -> bool:
    """``--sweep-estimate`` (or its ini value): time a few steps before the sweep."""
    opt = config.getoption("sweep_estimate", None)
    if opt is not None:
        return bool(opt)
    try:
        return bool(config.getini("sweep_estimate"))
    except (ValueError, pytest.UsageError) as exc:
        raise pytest.UsageError(f"ini value sweep_estimate: {exc}; use true or false") from None


def _summary_interval(config: pytest.Config) -> float:
    opt = config.getoption("sweep_summary_interval")
    if opt is not None:
        return float(opt)
    raw = str(config.getini("sweep_summary_interval")).strip()
    try:
        return _non_negative_float(raw)
    except argparse.ArgumentTypeError:
        raise pytest.UsageError(
            f"ini value sweep_summary_interval = {raw!r}: use a number of seconds, 0 or more"
        ) from None


def _output_root(config: pytest.Config, *, check: bool) -> Path:
    opt = config.getoption("sweep_output")
    raw = opt if opt is not None else str(config.getini("sweep_output"))
    path = Path(raw).expanduser()
    if not path.is_absolute():
        base = config.invocation_params.dir if opt is not None else config.rootpath
        path = base / path
    if check and path.exists() and not path.is_dir():
        raise pytest.UsageError(f"--sweep-output {raw}: exists and is not a folder; choose another path")
    return path


def _progress_mode(config: pytest.Config) -> str:
    opt = config.getoption("sweep_progress")
    mode = opt if opt is not None else str(config.getini("sweep_progress")).strip()
    if mode not in ("auto", "lines", "none"):
        raise pytest.UsageError(f"ini value sweep_progress = {mode!r}: use auto, lines or none")
    return mode


def _overrides(config: pytest.Config) -> dict[str, str]:
    """``--sweep-set`` and its shorthands (``--sweep-epochs``...) as ``KEY -> raw value`` (later wins)."""
    out: dict[str, str] = {}
    for item in config.getoption("sweep_set"):
        key, _, value = item.partition("=")
        out[key] = value
    for dest, key in SHORTHANDS.items():
        value = config.getoption(dest)
        if value is not None:
            flag = "--" + dest.replace("_", "-")
            try:
                out[key] = _one_line(str(value))
            except argparse.ArgumentTypeError as exc:
                raise pytest.UsageError(f"{flag}: {exc}") from None
    return out


def _trial_timeout(config: pytest.Config) -> float | None:
    value = config.getoption("sweep_trial_timeout")
    return float(value) if value is not None else None


def _backend(config: pytest.Config) -> str:
    """``--sweep-backend`` or the ini value ``sweep_backend``: ``serial`` or ``ray``."""
    opt = config.getoption("sweep_backend")
    value = opt if opt is not None else str(config.getini("sweep_backend")).strip() or "serial"
    if value not in BACKENDS:
        raise pytest.UsageError(f"ini value sweep_backend = {value!r}: use serial or ray")
    return str(value)


def _ray_setting(config: pytest.Config, name: str, parse: Any) -> Any:
    opt = config.getoption(name)
    if opt is not None:
        return opt
    raw = str(config.getini(name)).strip()
    try:
        return parse(raw)
    except argparse.ArgumentTypeError as exc:
        raise pytest.UsageError(f"ini value {name} = {raw!r}: {exc}") from None


_HOST = re.compile(r"(?:\[[0-9A-Fa-f:.%a-zA-Z]+\]|[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?)")


def address_problem(address: str) -> str | None:
    """Why ``address`` is not ``auto``, ``local`` or ``HOST:PORT`` (one phrase), or None."""
    if address in ("auto", "local"):
        return None
    host, sep, port = address.rpartition(":")
    if not sep or len(host) > 255 or not _HOST.fullmatch(host) or not port.isascii() or not port.isdigit():
        return "not auto, local or HOST:PORT (e.g. 10.0.0.5:6379, [::1]:6379)"
    if not 0 < int(port) < 65536:
        return f"port {port} is not from 1 to 65535"
    if ":" in host and not host.startswith("["):
        return "an IPv6 address goes in brackets: [ADDRESS]:PORT"
    return None


def _ray_address(config: pytest.Config, *, check_env: bool) -> str:
    """The Ray address to connect to (``auto``: ``RAY_ADDRESS``, else the cluster ``ray start`` started here).

    A malformed one is a usage error here, before ``ray.init`` (which raises ``ValueError`` on it);
    ``RAY_ADDRESS`` is checked on the controller (``check_env``), which connects.
    """
    opt = config.getoption("sweep_ray_address")
    if opt is not None:
        address, where = str(opt).strip(), f"--sweep-ray-address={opt}"
    else:
        raw = str(config.getini("sweep_ray_address"))
        address, where = raw.strip() or "auto", f"ini value sweep_ray_address = {raw!r}"
    problem = address_problem(address)
    if problem is not None:
        raise pytest.UsageError(f"{where}: {problem}")
    env = os.environ.get("RAY_ADDRESS", "").strip()
    if check_env and address == "auto" and env:
        problem = address_problem(env)
        if problem is not None:
            raise pytest.UsageError(
                f"RAY_ADDRESS={env} (--sweep-ray-address=auto connects there): {problem}; fix it or unset it"
            )
    return address


def _ray_cpus_per_trial(config: pytest.Config) -> float:
    return float(_ray_setting(config, "sweep_ray_cpus_per_trial", _positive_float))


def _ray_node_retries(config: pytest.Config) -> int:
    return int(_ray_setting(config, "sweep_ray_node_retries", non_negative_int))


def _ray_flag(config: pytest.Config, name: str) -> bool:
    opt = config.getoption(name)
    if opt is not None:
        return bool(opt)
    try:
        return bool(config.getini(name))
    except (ValueError, pytest.UsageError) as exc:  # pytest's own parsing of a bool ini value
        raise pytest.UsageError(f"ini value {name}: {exc}; use true or false") from None


def _workers_per_gpu(config: pytest.Config) -> int:
    per_gpu = config.getoption("sweep_workers_per_gpu", 1)
    if per_gpu is None:
        return 1
    if per_gpu < 1:
        raise pytest.UsageError(f"--sweep-workers-per-gpu {per_gpu}: use a whole number of at least 1")
    return int(per_gpu)


def _ray_ship_limit(config: pytest.Config) -> int | None:
    """``--sweep-ray-ship-limit``: the largest file shipped to or from a node, in bytes (None: any)."""
    opt = config.getoption("sweep_ray_ship_limit")
    if opt is not None:
        return int(opt) or None
    raw = str(config.getini("sweep_ray_ship_limit")).strip()
    try:
        return parse_size(raw or "off")
    except argparse.ArgumentTypeError as exc:
        raise pytest.UsageError(f"ini value sweep_ray_ship_limit = {raw!r}: {exc}") from None


def _checkpoint_policy(config: pytest.Config) -> checkpoints.Policy:
    """The :class:`~pytest_sweep.matrix.checkpoints.Policy` of ``--sweep-checkpoint-*`` (option, else ini)."""
    from pytest_sweep.matrix.checkpoints import Policy, parse_every

    every = config.getoption("sweep_checkpoint_every")
    name = "--sweep-checkpoint-every" if every is not None else "ini value sweep_checkpoint_every"
    raw = every if every is not None else str(config.getini("sweep_checkpoint_every")).strip()
    try:
        epochs, seconds = parse_every(raw)
    except ValueError as exc:
        raise pytest.UsageError(f"{name}: {exc}") from None
    keep = config.getoption("sweep_checkpoint_keep")
    if keep is None:
        keep = _ray_setting(config, "sweep_checkpoint_keep", positive_int)
    keep_after = config.getoption("sweep_keep_checkpoints")
    if keep_after is None:
        raw = str(config.getini("sweep_keep_checkpoints")).strip().lower()
        if raw not in ("true", "false", "yes", "no", "1", "0", "on", "off", ""):
            raise pytest.UsageError(f"ini value sweep_keep_checkpoints = {raw!r}: use true or false")
        keep_after = raw in ("true", "yes", "1", "on")
    return Policy(epochs, seconds, int(keep), bool(keep_after))


#: Option destinations recorded in ``environment.json`` besides every ``sweep_*`` one (what selects
#: and distributes trials).
OTHER_RECORDED = ("range_config", "config_dir", "numprocesses", "maxprocesses", "dist", "tx", "keyword", "markexpr")
#: Options of the built-in plugins recorded as given (option, else ini, else None) in ``environment.json``.
AS_GIVEN = ("sweep_scheduler", "sweep_order", "sweep_metric")


def recorded_options(config: pytest.Config) -> dict[str, Any]:
    """The sweep's options as parsed (``dest -> value``), and the value of each ``sweep_*`` ini setting:
    ``environment.json``'s record, read when it is written (xdist sets ``dist`` in its own, late,
    ``pytest_configure``), not a resolved value."""
    values = vars(config.option)
    out = {k: values[k] for k in sorted(values) if k.startswith("sweep_") or k in OTHER_RECORDED}
    ini: dict[str, Any] = {}
    for name in out:
        try:
            ini[name] = config.getini(name)
        except ValueError:  # an option without an ini setting of its name
            continue
    out["ini"] = ini
    return out


def _as_given(config: pytest.Config) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name in AS_GIVEN:
        try:
            value = config.getoption(name)
        except ValueError:
            continue
        if value is None:
            try:
                value = config.getini(name) or None
            except ValueError:
                value = None
        found[name.removeprefix("sweep_")] = value
    return found


@dataclass(frozen=True)
class RayOptions:
    """``--sweep-ray-*`` (option, else ini), resolved with ``--sweep-backend=ray`` only."""

    address: str
    cpus_per_trial: float
    node_retries: int
    ship_files: bool
    #: ``--sweep-ray-verbose``: Ray's own messages reach the terminal
    verbose: bool = False
    #: ``--sweep-ray-ship-limit``: the largest file shipped to or from a node, in bytes (None: any)
    ship_limit: int | None = None


@dataclass(frozen=True)
class SweepOptions:
    """The core's options of a sweep, resolved once (command line first, then the ini value).

    :func:`sweep_options` builds it on first use (the entry point's ``pytest_configure``, or the
    ``--sweep-generate`` step before it) and keeps it in ``config.stash``; a bad value is a
    one-line usage error then.  Modules take the fields they need from it instead of reading
    ``config.getoption``/``config.getini``.
    """

    range_config: tuple[str, ...]
    config_dir: tuple[str, ...]
    generate: str | None
    symbols: bool
    output_root: Path
    max_combinations: int
    minutes_per_trial: float | None
    estimate: bool
    overrides: dict[str, str]
    #: ``--sweep-device`` as given (also in ``overrides``; the trainer checks it)
    device: str | None
    trial_timeout: float | None
    progress: str
    summary_interval: float
    resume: str | None
    resume_force: bool
    checkpoint: checkpoints.Policy
    backend: str
    search: search_options.SearchSettings
    #: ``--sweep-scheduler`` (else the ini value ``sweep_scheduler``): the name the factory hook is asked for
    scheduler: str
    #: ``--sweep-workers-per-gpu`` (the GPU plugin's option): xdist workers per GPU; on Ray, actors per
    #: GPU, each reserving ``num_gpus=1/K``
    workers_per_gpu: int = 1
    #: the Ray settings, with ``backend == "ray"`` only
    ray: RayOptions | None = None
    #: the built-in plugins' scheduler, order and metric as given (option, else ini, else None), for
    #: ``environment.json`` (the controller's; not shipped to workers)
    as_given: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def active(self) -> bool:
        """Whether the run runs a sweep (``--range-config`` or ``--config-dir``)."""
        return bool(self.range_config or self.config_dir)

    def resolved(self) -> dict[str, Any]:
        """The options after the ini values and defaults were applied (``environment.json``'s ``resolved``)."""
        out: dict[str, Any] = {
            "backend": self.backend,
            "output_root": str(self.output_root),
            "overrides": dict(self.overrides),
            "trial_timeout": self.trial_timeout,
            "max_combinations": self.max_combinations,
        }
        if self.ray is not None:
            out["ray"] = {
                "address": self.ray.address,
                "cpus_per_trial": self.ray.cpus_per_trial,
                "node_retries": self.ray.node_retries,
                "ship_files": self.ray.ship_files,
                "verbose": self.ray.verbose,
            }
        out.update(self.as_given)
        return out

    def to_dict(self) -> dict[str, Any]:
        """The plain form a worker receives (xdist's ``workerinput``, a Ray actor's spec): str, numbers,
        bools, None, lists and dicts only; :meth:`from_dict` gives the same object back."""
        out = asdict(self)
        del out["as_given"]
        out["output_root"] = str(self.output_root)
        for name in ("range_config", "config_dir"):
            out[name] = list(out[name])
        search = out["search"]
        search["objectives"] = [dict(o) for o in search["objectives"]]
        search["constraints"] = [dict(c) for c in search["constraints"]]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SweepOptions:
        """The object :meth:`to_dict` was made from (its ``as_given`` left empty)."""
        from pytest_sweep.matrix.checkpoints import Policy

        search = dict(data["search"])
        search["objectives"] = tuple(Objective(**o) for o in search["objectives"])
        search["constraints"] = tuple(Constraint(**c) for c in search["constraints"])
        return cls(
            **{
                **data,
                "range_config": tuple(data["range_config"]),
                "config_dir": tuple(data["config_dir"]),
                "output_root": Path(data["output_root"]),
                "overrides": dict(data["overrides"]),
                "checkpoint": Policy(**data["checkpoint"]),
                "search": search_options.SearchSettings(**search),
                "ray": RayOptions(**data["ray"]) if data["ray"] is not None else None,
            }
        )


#: the ``workerinput`` key of the controller's options (:meth:`SweepOptions.to_dict`)
WORKERINPUT_KEY = "sweep_options"


def resolve(config: pytest.Config) -> SweepOptions:
    """Read and check every core option once (see :class:`SweepOptions`); prefer :func:`sweep_options`.

    A worker (xdist, a Ray actor) takes its controller's, shipped in ``workerinput``, where there is one.
    """
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    if workerinput is not None and WORKERINPUT_KEY in workerinput:
        return SweepOptions.from_dict(workerinput[WORKERINPUT_KEY])
    controller = workerinput is None
    estimate = _estimate_asked(config)  # a bad ini value is a usage error before anything runs
    overrides = _overrides(config)
    limit = _max_combinations(config)
    search = search_options.resolve(config)
    output_root = _output_root(config, check=controller)
    progress = _progress_mode(config)
    policy = _checkpoint_policy(config)
    summary = _summary_interval(config)
    backend = _backend(config)
    ray = None
    if backend == "ray":
        ray = RayOptions(
            _ray_address(config, check_env=controller),
            _ray_cpus_per_trial(config),
            _ray_node_retries(config),
            _ray_flag(config, "sweep_ray_ship_files"),
            _ray_flag(config, "sweep_ray_verbose"),
            _ray_ship_limit(config),
        )
    scheduler = config.getoption("sweep_scheduler", None)
    if scheduler is None:
        scheduler = config.getini("sweep_scheduler")
    return SweepOptions(
        range_config=tuple(config.getoption("range_config") or ()),
        config_dir=tuple(config.getoption("config_dir") or ()),
        generate=config.getoption("sweep_generate"),
        symbols=bool(config.getoption("sweep_symbols")),
        output_root=output_root,
        max_combinations=limit,
        minutes_per_trial=_minutes_per_trial(config),
        estimate=estimate,
        overrides=overrides,
        device=config.getoption("sweep_device"),
        trial_timeout=_trial_timeout(config),
        progress=progress,
        summary_interval=summary,
        resume=config.getoption("sweep_resume"),
        resume_force=bool(config.getoption("sweep_resume_force")),
        checkpoint=policy,
        backend=backend,
        search=search,
        scheduler=str(scheduler).strip() or "none",
        workers_per_gpu=_workers_per_gpu(config),
        ray=ray,
        as_given=_as_given(config),
    )


_KEY = pytest.StashKey[SweepOptions]()


def sweep_options(config: pytest.Config) -> SweepOptions:
    """The run's :class:`SweepOptions`: resolved on first use, then kept in ``config.stash``."""
    found = config.stash.get(_KEY, None)
    if found is None:
        found = config.stash[_KEY] = resolve(config)
    return found
