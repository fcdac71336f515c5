"""What pytest-sweep costs a project that does not use it: ``pytest --collect-only`` of one test, with and without us.

Every pytest run in an environment where pytest-sweep is installed loads its entry point, so its
start-up cost is paid by every project there, sweep or not (issue 17: at most 1.10x).  A one-test
project is collected with ``--collect-only`` in a fresh process each time, our plugin loaded and
not, alternating, ``--repeats`` rounds; the headline is the ratio of the medians, measured in one
run (the median of the per-round ratios next to it).  Two ways to load the plugins:

- ``hermetic``: ``PYTEST_DISABLE_PLUGIN_AUTOLOAD=1``, xdist (``xdist.plugin``) in both, ours added
  (the modules of ``pytest_sweep.plugin_args()`` of the environment measured), through ``PYTEST_PLUGINS``;
- ``autoload``: every installed plugin loads as it would for a user; without us means
  ``-p no:NAME`` for each of pytest-sweep's entry points (so its modules are not imported at all).

``--python`` measures another environment (an older checkout installed in its own venv gives the
"before" figure); ``--smoke`` runs one round of each, checks the output, and is what the suite runs.

    .venv/bin/python bench/plugin_startup.py --repeats 15
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as c

ONE_TEST = "def test_one():\n    assert True\n"
PROBE = """\
import importlib.metadata, json, pytest_sweep
eps = [ep.name for ep in importlib.metadata.entry_points(group="pytest11") if ep.dist and ep.dist.name == "pytest-sweep"]
print(json.dumps({"version": pytest_sweep.__version__, "file": pytest_sweep.__file__, "eps": sorted(eps),
                  "args": pytest_sweep.plugin_args()}))
"""


def environment(python: str, cwd: Path) -> dict[str, Any]:
    """The measured environment's pytest-sweep: version, location, entry points, ``-p`` options.

    Asked from the project's folder, as pytest runs there (the checkout's root holds the build's
    ``pytest_sweep.egg-info``, which would answer first from there).
    """
    out = subprocess.run(
        [python, "-c", PROBE], capture_output=True, text=True, check=True, env=base_env(), cwd=cwd
    ).stdout
    info: dict[str, Any] = json.loads(out)
    return info


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, str, str]:
    """Wall seconds, CPU seconds (user + system of the child, steadier than wall on a busy machine), stdout, load."""
    load = c.load_average()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0 or "1 test collected" not in proc.stdout:
        raise SystemExit(f"{c.shell(cmd)} exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.stdout, load


def base_env() -> dict[str, str]:
    """The user's environment: byte code is written (pip compiles it at install time; the warm-up
    round writes it for an editable install), no ``PYTHONPATH`` or pytest variables."""
    drop = ("PYTHONPATH", "PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTHONDONTWRITEBYTECODE")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.pop("PYTEST_DISABLE_PLUGIN_AUTOLOAD", None)
    env["PY_COLORS"] = "0"
    return env


def commands(python: str, info: dict[str, Any]) -> dict[str, dict[str, tuple[list[str], dict[str, str]]]]:
    """Mode -> side ("with", "without") -> (command, environment)."""
    collect = [python, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"]
    hermetic = {**base_env(), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    eps = [str(name) for name in info["eps"]]
    blocked = [arg for name in eps for arg in ("-p", f"no:{name}")]
    args = [str(a) for a in info["args"]]
    ours = [module for flag, module in zip(args[::2], args[1::2], strict=True) if flag == "-p"]
    # PYTEST_PLUGINS rather than -p: pytest looks a -p name up among every installed entry point
    # first, a scan of all the distributions' metadata that a user's run does once, not per plugin
    return {
        "hermetic": {
            "with": (collect, {**hermetic, "PYTEST_PLUGINS": ",".join(["xdist.plugin", *ours])}),
            "without": (collect, {**hermetic, "PYTEST_PLUGINS": "xdist.plugin"}),
        },
        "autoload": {"with": (collect, base_env()), "without": ([*collect, *blocked], base_env())},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15, help="rounds of each pair (default 15)")
    ap.add_argument("--python", default=sys.executable, help="interpreter of the environment to measure")
    ap.add_argument("--modes", nargs="+", choices=("hermetic", "autoload"), default=["hermetic", "autoload"])
    ap.add_argument(
        "--smoke", action="store_true", help="one round of each, no warm-up, output checked (the suite runs this)"
    )
    args = ap.parse_args()
    repeats = 1 if args.smoke else args.repeats
    with tempfile.TemporaryDirectory(prefix="bench-plugin-startup-") as tmp_name:
        project = Path(tmp_name)
        (project / "test_one.py").write_text(ONE_TEST, encoding="utf-8")
        info = environment(args.python, project)
        cmds = {mode: sides for mode, sides in commands(args.python, info).items() if mode in args.modes}
        walls = {(mode, side): c.Samples(f"{mode} {side}") for mode in cmds for side in ("with", "without")}
        cpus = {key: c.Samples(f"{key[0]} {key[1]}") for key in walls}
        for sides in cmds.values() if not args.smoke else ():  # warm-up: byte code written, files cached
            for cmd, env in sides.values():
                timed(cmd, project, env)
        for rep in range(repeats):
            for mode, sides in cmds.items():
                for side in ("with", "without") if rep % 2 == 0 else ("without", "with"):
                    wall, cpu, _, load = timed(*sides[side][:1], project, sides[side][1])
                    walls[(mode, side)].add(wall, load)
                    cpus[(mode, side)].add(cpu, load)
                    c.log(f"round {rep + 1}: {mode} {side}: {wall * 1000:.0f} ms wall, {cpu * 1000:.0f} ms CPU")
        example = {
            mode: c.shell([*(f"{k}={env[k]}" for k in ("PYTEST_PLUGINS",) if k in env), "python", *cmd[1:]])
            for mode, sides in cmds.items()
            for cmd, env in [sides["with"]]
        }
    rows, lines = [], []
    for mode in cmds:
        for key in ((mode, "with"), (mode, "without")):
            w, u = walls[key], cpus[key]
            rows.append(
                [w.label, f"{w.median * 1000:.0f}", f"{w.best * 1000:.0f}", f"{u.median * 1000:.0f}", w.load_range()]
            )
        parts = []
        for what, samples in (("wall", walls), ("CPU", cpus)):
            ours, theirs = samples[(mode, "with")], samples[(mode, "without")]
            ratio = ours.median / theirs.median
            per_round = statistics.median(a / b for a, b in zip(ours.seconds, theirs.seconds, strict=True))
            parts.append(
                f"{what} **{ratio:.3f}x** (per-round median {per_round:.3f}x, "
                f"{1000 * (ours.median - theirs.median):+.0f} ms)"
            )
        goal = walls[(mode, "with")].median / walls[(mode, "without")].median <= 1.10
        lines.append(
            f"`{mode}` ({repeats} rounds), with / without, medians: {'; '.join(parts)}; goal <= 1.10x (wall): "
            f"{c.verdict(goal)}.  With us: `{example[mode]}`"
        )
    body = "\n".join(
        [
            f"pytest-sweep {info['version']} at `{info['file']}`; entry points: {', '.join(info['eps'])} "
            f"({len(info['eps'])}).",
            "",
            c.table(["run", "wall median ms", "wall best ms", "CPU median ms", "load (1 min)"], rows),
            "",
            *lines,
        ]
    )
    print(c.block("Start-up of a project that does not sweep (bench/plugin_startup.py)", c.script_command(), body))
    return 0


if __name__ == "__main__":
    sys.exit(main())
