"""Shared helpers of the benchmark scripts: the machine, the load, timed subprocesses, markdown.

The scripts are meant to be re-run at a quiet moment; each prints a markdown block that can be
pasted into ``docs/benchmarks.md`` as it is.  Every figure is a ratio or a difference against a
baseline measured in the same run, with the load average recorded next to it.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pytest_sweep import installed
from pytest_sweep import plugin_args as builtin_plugin_args

REPO = Path(__file__).resolve().parents[1]


# -- the machine ---------------------------------------------------------------------------------
def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def lscpu_head(lines: int = 10) -> list[str]:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return [f"(lscpu unavailable) {platform.processor() or platform.machine()}"]
    return [ln.rstrip() for ln in out.splitlines()[:lines]]


def machine_block() -> str:
    """``nproc``, ``lscpu | head``, Python/torch/pytest versions, as markdown."""
    versions = (
        f"Python {platform.python_version()}, torch {_version('torch')}, "
        f"torchvision {_version('torchvision')}, pytest {_version('pytest')}, "
        f"pytest-xdist {_version('pytest-xdist')}, pluggy {_version('pluggy')}"
    )
    cpu = "\n".join(f"    {ln}" for ln in lscpu_head())
    return f"Machine: `nproc` = {os.cpu_count()}; {versions}.\n\n    $ lscpu | head\n{cpu}\n"


def load_average() -> str:
    """``uptime``'s three load averages (1, 5, 15 min), e.g. ``1.58 1.03 0.50``."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "n/a"
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


# -- running things ------------------------------------------------------------------------------
def plugin_args() -> list[str]:
    """``-p`` options that load the plugins when they are not installed (a ``PYTHONPATH=.`` checkout)."""
    return [] if installed() else builtin_plugin_args()


def child_env(extra: dict[str, str] | None = None, keep_threads: bool = False) -> dict[str, str]:
    """The environment of a benchmarked subprocess.

    The repository goes on ``PYTHONPATH`` (the subprocess runs in a temp dir).  Thread-count
    variables are removed unless ``keep_threads``, so that the plugin under test decides them.
    """
    env = dict(os.environ)
    if not keep_threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env.pop(var, None)
    paths = [str(REPO)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    env["PY_COLORS"] = "0"
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("PYTEST_XDIST_AUTO_NUM_WORKERS", None)
    if extra:
        env.update(extra)
    return env


@dataclass
class Run:
    seconds: float
    returncode: int
    stdout: str
    stderr: str
    load: str


def timed(
    cmd: Sequence[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 1800, ok: Sequence[int] = (0,)
) -> Run:
    """Run ``cmd`` once; wall time measured around the whole process (start-up included)."""
    load = load_average()
    started = time.perf_counter()
    proc = subprocess.run(list(cmd), cwd=cwd, env=env or child_env(), capture_output=True, text=True, timeout=timeout)
    seconds = time.perf_counter() - started
    if proc.returncode not in ok:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
        raise RuntimeError(f"{shell(cmd)} (in {cwd}) exited {proc.returncode}:\n{tail}")
    return Run(seconds, proc.returncode, proc.stdout, proc.stderr, load)


@dataclass
class Samples:
    """Repeated wall times of one measurement, with the load average before each."""

    label: str
    seconds: list[float] = field(default_factory=list)
    loads: list[str] = field(default_factory=list)

    def add(self, seconds: float, load: str) -> None:
        self.seconds.append(seconds)
        self.loads.append(load)

    @property
    def best(self) -> float:
        return min(self.seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    def all(self, digits: int = 2) -> str:
        return ", ".join(f"{s:.{digits}f}" for s in self.seconds)

    def load_range(self) -> str:
        ones = [float(l.split()[0]) for l in self.loads if l != "n/a"]
        return f"{min(ones):.2f}–{max(ones):.2f}" if ones else "n/a"


# -- smoke mode ----------------------------------------------------------------------------------
#: The line a smoke run prints where its goal verdict would be.
SMOKE_NOTE = "Smoke run (`--smoke`, tiny sizes): it shows that the benchmark runs; no goal applies to its figures."


def parse_args(ap: argparse.ArgumentParser, argv: Sequence[str] | None, smoke: dict[str, object]) -> argparse.Namespace:
    """Parse ``argv`` with a ``--smoke`` option whose ``smoke`` values become the defaults.

    A smoke run takes the benchmark's own code paths at tiny sizes, in seconds, so that the test
    suite can run every script; an option given explicitly still wins over the smoke value.
    """
    shown = ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in smoke.items() if not isinstance(v, bool))
    ap.add_argument("--smoke", action="store_true", help=f"tiny sizes, seconds, for the test suite ({shown})")
    args = ap.parse_args(argv)
    if args.smoke:
        ap.set_defaults(**smoke)
        args = ap.parse_args(argv)
    return args


# -- output --------------------------------------------------------------------------------------
def shell(cmd: Sequence[str]) -> str:
    return " ".join(shlex.quote(str(c)) for c in cmd)


def script_command(argv: Sequence[str] | None = None) -> str:
    """How this script was run, relative to the repository root, for the markdown block."""
    argv = list(sys.argv if argv is None else argv)
    script = Path(argv[0]).resolve()
    try:
        shown = str(script.relative_to(REPO))
    except ValueError:
        shown = str(script)
    return shell([".venv/bin/python", shown, *argv[1:]])


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def block(title: str, command: str, body: str, *, machine: bool = True) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M %Z")
    parts = [
        f"### {title}",
        "",
        f"Command (from the repository root): `{command}`  ",
        f"Measured {stamp}, load average at the end `{load_average()}`.",
        "",
    ]
    if machine:
        parts += [machine_block()]
    parts += [body.rstrip(), ""]
    return "\n".join(parts)


def log(message: str) -> None:
    """Progress on stderr, so that stdout holds only the markdown block."""
    print(f"[{time.strftime('%H:%M:%S')} load {load_average()}] {message}", file=sys.stderr, flush=True)


def profile_report(prof: Path, what: str, run: Run, top: int) -> str:
    """The top ``top`` functions of a cProfile file, by own and by cumulative time."""
    import io
    import pstats

    buf = io.StringIO()
    stats = pstats.Stats(str(prof), stream=buf)
    stats.strip_dirs()
    buf.write(
        f"\ncProfile of {what} (wall {run.seconds:.2f} s under cProfile, load {run.load}); top {top} by own time:\n"
    )
    stats.sort_stats("tottime").print_stats(top)
    buf.write(f"top {top} by cumulative time:\n")
    stats.sort_stats("cumulative").print_stats(top)
    keep = [ln for ln in buf.getvalue().splitlines() if ln.strip() and not ln.startswith(("   Ordered", "   List"))]
    return "\n".join(keep)
