"""Run the CPU benchmarks (collection, overhead, parallel scaling, trainer throughput); print their blocks.

``make bench`` calls this.  Each benchmark runs as its own process of this interpreter and prints
a markdown block; this script prints them one after the other, ready to paste into
``docs/benchmarks.md``.  The GPU check (``bench/gpu_check.py``) is not part of it.

    .venv/bin/python bench/run_all.py
    .venv/bin/python bench/run_all.py --only collection overhead --repeats 5
    .venv/bin/python bench/run_all.py --smoke        # each benchmark's --smoke: the suite runs it
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import _common as c

HERE = Path(__file__).resolve().parent
#: name -> extra arguments (the trainer-throughput settings the docs quote for this CPU)
BENCHMARKS = {
    "collection": [],
    "overhead": [],
    "parallel_scaling": [],
    "trainer_throughput": ["--device", "cpu", "--width", "16", "--steps", "30"],
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", choices=list(BENCHMARKS), default=list(BENCHMARKS))
    ap.add_argument("--repeats", type=int, default=None, help="passed to every benchmark (default: theirs, 3)")
    ap.add_argument("--smoke", action="store_true", help="run each benchmark's --smoke (tiny sizes, seconds)")
    args = ap.parse_args(argv)
    started = time.perf_counter()
    blocks: list[str] = []
    failed: list[str] = []
    for name in args.only:
        cmd = [sys.executable, str(HERE / f"{name}.py"), *(["--smoke"] if args.smoke else BENCHMARKS[name])]
        if args.repeats is not None:
            cmd += ["--repeats", str(args.repeats)]
        c.log(f"running {name}: {c.shell(cmd)}")
        proc = subprocess.run(cmd, cwd=c.REPO, stdout=subprocess.PIPE, text=True)  # stderr: progress, live
        if proc.returncode != 0:
            failed.append(name)
            blocks.append(f"### {name}: FAILED (exit {proc.returncode})\n\n```\n{proc.stdout[-3000:]}\n```\n")
        else:
            blocks.append(proc.stdout.strip() + "\n")
    total = time.perf_counter() - started
    smoke = ", smoke run" if args.smoke else ""
    print(f"## CPU benchmarks (bench/run_all.py{smoke}, {total / 60:.1f} min in all)\n")
    print("\n".join(blocks))
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
