"""Collection speed: ``pytest --range-config=FILE --collect-only -q`` for 1,000 / 10,000 / 100,000 trials.

Each size is a generated range config with five swept keys the built-in plugins consume
(learning rate, weight decay, batch size, seed, Adam beta1) on the LeNet-5/digits trainer, so
parsing, typing and every plugin's validation run as in a real sweep.  The baseline is a bare
``pytest --collect-only -q`` in an empty folder (pytest's own start-up, with our plugins loaded
and inert); the figure that matters is the collection time net of it.  Every command runs in a
fresh process of this interpreter, in a temp dir, loading the plugins through their entry points.

    .venv/bin/python bench/collection.py                 # 3 repeats, prints a markdown block
    .venv/bin/python bench/collection.py --profile 100000   # also cProfile that size, print hot spots
    .venv/bin/python bench/collection.py --smoke            # 1,000 trials once: seconds (the suite runs it)
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

import _common as c

GOAL_SIZE = 100_000
GOAL_SECONDS = 10.0
#: ``--smoke``: the smallest size, once.
SMOKE: dict[str, object] = {"sizes": [1_000], "repeats": 1}

#: Values per swept key for each size (product = size, every key swept).
SHAPES = {
    1_000: (5, 5, 5, 4, 2),
    10_000: (10, 10, 10, 5, 2),
    100_000: (10, 10, 10, 10, 10),
}


def range_config(size: int) -> str:
    """A range config with exactly ``size`` combinations over five swept keys."""
    lr, wd, bs, seed, beta1 = SHAPES[size]
    return "\n".join(
        [
            f"# {size} combinations for bench/collection.py",
            'CONFIG_MODEL="lenet5"',
            'CONFIG_DATASET="digits"',
            'CONFIG_DEVICE="cpu"',
            'CONFIG_OPTIMIZER="adamw"',
            "CONFIG_NUM_EPOCHS=1",
            f"CONFIG_LEARNING_RATE=0.001:0.001:{lr / 1000:.3f}",
            f"CONFIG_WEIGHT_DECAY=0.00:0.01:{(wd - 1) / 100:.2f}",
            f"CONFIG_BATCH_SIZE=16:16:{16 * bs}",
            f"CONFIG_SEED=1:1:{seed}",
            f"CONFIG_ADAM_BETA1=0.80:0.01:{0.80 + (beta1 - 1) / 100:.2f}",
            "",
        ]
    )


def collect_cmd(py: str, path: str, size: int) -> list[str]:
    return [
        py,
        "-m",
        "pytest",
        f"--range-config={path}",
        "--collect-only",
        "-q",
        f"--sweep-max-combinations={size}",
        *c.plugin_args(),
    ]


def baseline_cmd(py: str) -> list[str]:
    return [py, "-m", "pytest", "--collect-only", "-q", *c.plugin_args()]


_COLLECTED = re.compile(r"(\d+) tests? collected")


def collected(out: str) -> int:
    found = _COLLECTED.findall(out)
    return int(found[-1]) if found else 0


def profile(py: str, work: Path, size: int, top: int) -> str:
    """CProfile one collection of ``size`` trials; the top functions by own and cumulative time."""
    prof = work / f"collect-{size}.prof"
    cmd = [
        py,
        "-m",
        "cProfile",
        "-o",
        str(prof),
        "-m",
        "pytest",
        f"--range-config=range-{size}",
        "--collect-only",
        "-q",
        f"--sweep-max-combinations={size}",
        *c.plugin_args(),
    ]
    c.log(f"profiling {size}: {c.shell(cmd)}")
    run = c.timed(cmd, work)
    return c.profile_report(prof, f"{size} trials", run, top)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=sorted(SHAPES), choices=sorted(SHAPES))
    ap.add_argument("--repeats", type=int, default=3, help="runs per size; best and median reported")
    ap.add_argument("--python", default=sys.executable, help="interpreter with pytest-sweep installed")
    ap.add_argument(
        "--profile",
        type=int,
        metavar="SIZE",
        choices=sorted(SHAPES),
        help="also cProfile the collection of SIZE trials and print the hot spots (stderr)",
    )
    ap.add_argument("--top", type=int, default=25, help="functions shown by --profile")
    args = c.parse_args(ap, argv, SMOKE)

    with tempfile.TemporaryDirectory(prefix="bench-collect-") as tmp:
        work, empty = Path(tmp) / "sweep", Path(tmp) / "empty"
        work.mkdir()
        empty.mkdir()
        for size in args.sizes:
            (work / f"range-{size}").write_text(range_config(size), encoding="utf-8")
        base = c.Samples("baseline")
        runs = {size: c.Samples(f"{size}") for size in args.sizes}
        for rep in range(args.repeats):
            # interleaved, so that a burst of load hits every measurement alike
            run = c.timed(baseline_cmd(args.python), empty, ok=(5,))  # 5: no tests collected
            base.add(run.seconds, run.load)
            c.log(f"rep {rep + 1}: baseline {run.seconds:.2f} s")
            for size in args.sizes:
                run = c.timed(collect_cmd(args.python, f"range-{size}", size), work)
                got = collected(run.stdout)
                if got != size:
                    raise RuntimeError(f"expected {size} items, pytest reported {got}:\n{run.stdout[-2000:]}")
                runs[size].add(run.seconds, run.load)
                c.log(f"rep {rep + 1}: {size} trials {run.seconds:.2f} s")
        hot = profile(args.python, work, args.profile, args.top) if args.profile else ""

    rows = [
        [
            "bare `pytest --collect-only -q` (empty dir)",
            "0",
            f"{base.best:.2f}",
            f"{base.median:.2f}",
            "—",
            "—",
            base.all(),
            base.load_range(),
        ]
    ]
    for size in args.sizes:
        s = runs[size]
        net = s.best - base.best
        rows.append(
            [
                f"`--range-config=range-{size}`",
                f"{size:,}",
                f"{s.best:.2f}",
                f"{s.median:.2f}",
                f"{net:.2f}",
                f"{net / size * 1e6:.0f}",
                s.all(),
                s.load_range(),
            ]
        )
    body = [
        f"Collection of generated range configs (5 swept keys: learning rate, weight decay, batch size, "
        f"seed, Adam beta1; LeNet-5 on digits), each `python -m pytest --range-config=range-N --collect-only "
        f"-q --sweep-max-combinations=N` in a fresh process; baseline a bare `python -m pytest --collect-only -q` in "
        f"an empty folder. {args.repeats} interleaved repeats; net = best − best baseline.",
        "",
        c.table(["run", "trials", "best s", "median s", "net s", "net µs/trial", "all runs s", "load (1 min)"], rows),
        "",
    ]
    spread = max(base.seconds) - min(base.seconds)
    if any(runs[size].best - base.best <= spread for size in args.sizes):
        body.append(f"A net figure at or below the baseline's own spread ({spread:.2f} s) is within noise.")
        body.append("")
    if args.smoke:
        body.append(c.SMOKE_NOTE)
    elif GOAL_SIZE in runs:
        s = runs[GOAL_SIZE]
        net = s.best - base.best
        body.append(
            f"Goal: {GOAL_SIZE:,} trials collected in under {GOAL_SECONDS:g} s net of start-up: "
            f"{net:.2f} s net ({s.best:.2f} s wall) — {c.verdict(net < GOAL_SECONDS)}; "
            f"{net / GOAL_SECONDS:.1f}× the goal."
        )
    print(c.block("Collection (bench/collection.py)", c.script_command(), "\n".join(body)))
    if hot:
        print(hot, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
