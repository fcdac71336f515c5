"""What the runtime estimate costs collection: ``--collect-only`` with and without ``--sweep-estimate``.

Until issue 18 every collection timed a few optimizer steps of each trainer in a child process
(what ``--sweep-estimate`` does now); now it reads pytest's cache and earlier sweep folders only.
Both run here, alternately, in fresh processes with an empty cache and no earlier sweeps, on the
same range config, so the ratio is measured under one load:

    .venv/bin/python bench/estimate.py                      # defconfigs/resnet18-published-table, 3 repeats
    .venv/bin/python bench/estimate.py --smoke              # one repeat on a one-trial digits config (the suite)
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import _common as c

SMOKE_CONFIG = 'CONFIG_MODEL="lenet5"\nCONFIG_DATASET="digits"\nCONFIG_DEVICE="cpu"\nCONFIG_OPTIMIZER="adamw"\n'


def collect(work: Path, rc: str, *extra: str) -> c.Run:
    cache = work / ".pytest_cache"
    shutil.rmtree(cache, ignore_errors=True)  # no timing from an earlier repeat
    cmd = [sys.executable, "-m", "pytest", *c.plugin_args(), f"--range-config={rc}", "--collect-only", "-q", *extra]
    run = c.timed(cmd, work, c.child_env({"OMP_NUM_THREADS": "1"}, keep_threads=True), timeout=900)
    return run


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="defconfigs/resnet18-published-table")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--smoke", action="store_true", help="one repeat on a one-trial digits config")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
        if args.smoke:
            rc, repeats = "smoke.rc", 1
            (work / rc).write_text(SMOKE_CONFIG, encoding="utf-8")
        else:
            rc, repeats = Path(args.config).name, args.repeats
            shutil.copy(c.REPO / args.config, work / rc)
        plain, timed = c.Samples("without --sweep-estimate"), c.Samples("with --sweep-estimate")
        for i in range(repeats):
            for samples, extra in ((plain, ()), (timed, ("--sweep-estimate",))):
                run = collect(work, rc, *extra)
                line = next((ln for ln in run.stdout.splitlines() if ln.startswith("sweep: estimated runtime")), "")
                c.log(f"repeat {i + 1}, {samples.label}: {run.seconds:.2f} s: {line}")
                samples.add(run.seconds, run.load)
        rows = [[s.label, s.all(), f"{s.median:.2f}", s.load_range()] for s in (plain, timed)]
        body = c.table(["collect-only", "wall s (each repeat)", "median s", "load (1 min)"], rows)
        body += f"\n\nRatio of the medians, with / without: **{timed.median / plain.median:.1f}x**.\n"
        print(c.block(f"Collection with and without the timed estimate ({rc})", c.script_command(argv), body))
    return 0


if __name__ == "__main__":
    sys.exit(main())
