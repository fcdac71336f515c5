"""Fixed cost of a sweep process: this checkout against an earlier revision, in one run.

The sweep is 2 LeNet-5/digits trials of 1 epoch (a fraction of a second of training each), so
its wall time is almost all fixed cost: pytest's start, the xdist workers, the imports of torch,
``torch._dynamo`` (torch's first optimizer imports it) and the data, then the processes' exits.
Each command runs in a fresh process, serial and with ``-n 2``, once for this checkout and once
for ``--baseline REV`` (checked out with ``git worktree`` into a temp dir).  Each side gets a
link tree ``pytest_sweep/{__init__.py,...,matrix,plugins,trainers}`` of its own checkout first on
``PYTHONPATH``, so that the whole ``pytest_sweep`` package (the installed entry points name its
modules) comes from that side; the script checks which copy each side imports.  The commands
alternate, in a rotating order, for ``--repeats`` rounds; the headline is the median of the
per-round ratios ours / baseline.  The baseline must have the ``pytest_sweep`` package (bef9429
and later).

    .venv/bin/python bench/startup.py --baseline bef9429
    .venv/bin/python bench/startup.py --smoke       # HEAD against this checkout, serial, once: the suite runs it
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import _common as c

RANGE = """\
# 2 trials for bench/startup.py: almost all of the run is start-up and shut-down
CONFIG_MODEL="lenet5"
CONFIG_DATASET="digits"
CONFIG_DEVICE="cpu"
CONFIG_OPTIMIZER="adamw"
CONFIG_NUM_EPOCHS=1
CONFIG_BATCH_SIZE=64
CONFIG_LEARNING_RATE=0.001|0.002
"""
MODES = {"serial": [], "-n 2": ["-n", "2"]}
#: ``--smoke``: this checkout against its own ``HEAD``, the serial run once.
SMOKE: dict[str, object] = {"baseline": "HEAD", "repeats": 1, "modes": ["serial"]}
SUBPACKAGES = ("matrix", "plugins", "trainers")


def link_tree(tree: Path, dest: Path) -> Path:
    """``dest/pytest_sweep``: links to ``tree``'s ``pytest_sweep/*`` (``src/pytest_sweep`` since the
    src layout) and its top-level subpackages."""
    root = next(
        (r for r in (tree / "src" / "pytest_sweep", tree / "pytest_sweep") if (r / "__init__.py").is_file()), None
    )
    if root is None:
        raise SystemExit(f"{tree} has no pytest_sweep package (a revision before bef9429); pick a later --baseline")
    pkg = dest / "pytest_sweep"
    pkg.mkdir(parents=True)
    for entry in root.iterdir():
        if entry.name != "__pycache__":
            (pkg / entry.name).symlink_to(entry)
    for sub in SUBPACKAGES:
        if not (pkg / sub).exists():
            (pkg / sub).symlink_to(tree / sub, target_is_directory=True)
    return dest


def env_for(links: Path, tree: Path) -> dict[str, str]:
    env = c.child_env()
    first = os.pathsep.join([str(links), str(tree)])
    env["PYTHONPATH"] = first + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def short_rev(tree: Path) -> str:
    return subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=tree, capture_output=True, text=True, check=True
    ).stdout.strip()


def imported_from(py: str, env: dict[str, str], cwd: Path) -> list[Path]:
    """Where each side's ``pytest_sweep`` and its subpackages really come from (links resolved)."""
    code = "import os, pytest_sweep, pytest_sweep.matrix, pytest_sweep.plugins, pytest_sweep.trainers as t\n"
    code += "for m in ('pytest_sweep', 'pytest_sweep.matrix', 'pytest_sweep.plugins', 'pytest_sweep.trainers'):\n"
    code += "    print(os.path.realpath(__import__('sys').modules[m].__file__))"
    out = subprocess.run([py, "-c", code], env=env, cwd=cwd, capture_output=True, text=True, check=True).stdout
    found = [Path(line) for line in out.split()]
    if len(found) != 4:
        raise SystemExit(f"could not tell where pytest_sweep comes from: {out!r}")
    return found


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", help="git revision to compare against (e.g. bef9429); required")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES), help="which runs (default: all)")
    ap.add_argument("--python", default=sys.executable)
    args = c.parse_args(ap, argv, SMOKE)
    if not args.baseline:
        ap.error("--baseline REV is required (or --smoke)")
    modes = {mode: MODES[mode] for mode in args.modes}

    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp_name:
        tmp = Path(tmp_name)
        base_tree = tmp / "baseline"
        subprocess.run(
            ["git", "worktree", "add", "--detach", "-q", str(base_tree), args.baseline], cwd=c.REPO, check=True
        )
        try:
            base_rev, ours_rev = short_rev(base_tree), short_rev(c.REPO)
            work = tmp / "run"
            work.mkdir()
            (work / "range").write_text(RANGE)
            sides = {
                f"ours ({ours_rev})": env_for(link_tree(c.REPO, tmp / "links-ours"), c.REPO),
                f"baseline ({base_rev})": env_for(link_tree(base_tree, tmp / "links-baseline"), base_tree),
            }
            for (label, env), tree in zip(sides.items(), (c.REPO, base_tree), strict=False):
                wrong = [p for p in imported_from(args.python, env, work) if not p.is_relative_to(tree.resolve())]
                if wrong:
                    raise SystemExit(f"{label} imports {', '.join(map(str, wrong))}, not from {tree}")
            samples = {(side, mode): c.Samples(f"{side} {mode}") for side in sides for mode in modes}
            keys = list(samples)
            for rep in range(args.repeats):
                order = keys[rep % len(keys) :] + keys[: rep % len(keys)]
                for side, mode in order:
                    out = tmp / f"out-{rep}"
                    cmd = [
                        args.python,
                        "-m",
                        "pytest",
                        "--range-config=range",
                        "-q",
                        "-p",
                        "no:cacheprovider",
                        f"--sweep-output={out}",
                        *modes[mode],
                        *c.plugin_args(),
                    ]
                    run = c.timed(cmd, work, env=sides[side])
                    samples[(side, mode)].add(run.seconds, run.load)
                    c.log(f"rep {rep + 1}: {side} {mode}: {run.seconds:.2f} s")
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base_tree)], cwd=c.REPO, check=False)

    ours, base = list(sides)
    rows = []
    for (side, mode), s in samples.items():
        rows.append([f"{side}, {mode}", f"{s.best:.2f}", f"{s.median:.2f}", s.all(), s.load_range()])
    lines = [c.table(["run", "best s", "median s", "all runs s", "load (1 min)"], rows), ""]
    for mode in modes:
        ratios = [a / b for a, b in zip(samples[(ours, mode)].seconds, samples[(base, mode)].seconds, strict=False)]
        saved = [b - a for a, b in zip(samples[(ours, mode)].seconds, samples[(base, mode)].seconds, strict=False)]
        lines.append(
            f"`{mode}`: ours / baseline = **{statistics.median(ratios):.2f}** (per round "
            f"{', '.join(f'{r:.2f}' for r in ratios)}); saved {statistics.median(saved):.2f} s "
            f"per run (median)."
        )
    if args.smoke:
        lines += ["", c.SMOKE_NOTE]
    print(c.block("Start-up and shut-down (bench/startup.py)", c.script_command(), "\n".join(lines)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
