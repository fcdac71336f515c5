"""GPU check: one ResNet-18 trial through the real sweep path, and our loop against a plain one.

For one NVIDIA GPU (an H200), offline, in well under 8 minutes.  From the repository root:

    PYTHONPATH=. python bench/gpu_check.py --out "$OUT"
    PYTHONPATH=. python bench/gpu_check.py --smoke --out /tmp/gpu-smoke     # CPU, tiny sizes

What it does:

1. **Sweep path.**  Writes a temp range config (ResNet-18 width 64, CIFAR-10 shape, batch 128,
   AdamWPrune with state pruning — the built-in trainer's defaults — ``--epochs`` epochs) and runs
   ``python -m pytest --range-config=range -q -p no:cacheprovider`` on it: the real plugin, the
   real built-in trainer, model, optimizer, pruner and loop.  ``trainers/`` knows no synthetic
   dataset name (``CONFIG_DATASET`` is cifar10, mnist or digits, and CIFAR-10 cannot be downloaded
   offline), so a ``conftest.py`` in the temp dir answers ``pytest_sweep_make_dataset`` with
   :func:`trainers.data.make_synthetic` (50,000 + 10,000 random CIFAR-shaped images) — the
   documented way for a plugin to supply data; everything else is the built-in path.
2. **Loop comparison.**  :func:`bench.trainer_throughput.compare`: our loop (tensor input path,
   bf16, channels_last) against a reference-style DataLoader + PIL-transform fp32 loop.
3. Prints and writes ``gpu_check.json`` and ``gpu_check.md`` to ``--out`` (default ``$OUT``):
   images/s, the ratio, peak memory, and the estimated time of 100 CIFAR-10 epochs
   (50,000 images each).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c
import trainer_throughput as tt

CIFAR_TRAIN = 50_000
EPOCHS_FOR_ESTIMATE = 100

CONFTEST = '''\
"""bench/gpu_check.py: synthetic CIFAR-shaped data for trials that set CONFIG_SYNTHETIC_TRAIN."""
import pytest

from pytest_sweep.matrix import Symbol


def pytest_sweep_declare_symbols():
    return [
        Symbol("CONFIG_SYNTHETIC_TRAIN", "int", 0, "Train on N synthetic images instead (0: off)", low=0),
        Symbol("CONFIG_SYNTHETIC_TEST", "int", 10000, "Synthetic test images", low=1),
    ]


@pytest.hookimpl
def pytest_sweep_make_dataset(trial):
    n = trial["CONFIG_SYNTHETIC_TRAIN"]
    if not n:
        return None
    from pytest_sweep.trainers.data import make_synthetic

    return make_synthetic(n_train=n, n_test=trial["CONFIG_SYNTHETIC_TEST"], seed=0)
'''


def range_config(a: argparse.Namespace) -> str:
    return "\n".join(
        [
            "# bench/gpu_check.py: one ResNet-18 trial on synthetic CIFAR-shaped data",
            'CONFIG_MODEL="resnet18"',
            'CONFIG_DATASET="cifar10"',
            f"CONFIG_MODEL_WIDTH={a.width}",
            f"CONFIG_NUM_EPOCHS={a.epochs}",
            f"CONFIG_BATCH_SIZE={a.batch}",
            f'CONFIG_DEVICE="{a.device}"',
            f'CONFIG_OPTIMIZER="{a.optimizer}"',
            f"CONFIG_SYNTHETIC_TRAIN={a.n_train}",
            f"CONFIG_SYNTHETIC_TEST={a.n_test}",
            "",
        ]
    )


def gpu_facts() -> dict[str, Any]:
    facts: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "lscpu": c.lscpu_head(),
        "load": c.load_average(),
    }
    try:
        import torch

        facts["torch"] = torch.__version__
        facts["cuda_available"] = torch.cuda.is_available()
        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            facts["gpu"] = props.name
            facts["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
            facts["cuda"] = torch.version.cuda
            facts["cudnn"] = torch.backends.cudnn.version()
    except Exception as exc:
        facts["torch_error"] = repr(exc)
    try:
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version,utilization.gpu", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        facts["nvidia_smi"] = smi.stdout.strip() or smi.stderr.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        facts["nvidia_smi"] = f"unavailable ({type(exc).__name__})"
    return facts


def sweep_trial(a: argparse.Namespace, out: Path) -> dict[str, Any]:
    """Run the one-trial sweep through pytest; read back what the trial recorded."""
    sweep_out = out / "sweep"
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        work = Path(tmp)
        (work / "range").write_text(range_config(a), encoding="utf-8")
        (work / "conftest.py").write_text(CONFTEST, encoding="utf-8")
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            "--range-config=range",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--sweep-output={sweep_out}",
            f"--sweep-trial-timeout={a.trial_timeout}",
            "--sweep-progress=lines",
            *c.plugin_args(),
        ]
        c.log(f"sweep path: {c.shell(cmd)} (in a temp dir)")
        started = time.perf_counter()
        proc = subprocess.run(
            cmd,
            cwd=work,
            env=c.child_env(keep_threads=True),
            capture_output=True,
            text=True,
            timeout=a.trial_timeout + 120,
        )
        wall = time.perf_counter() - started
    (out / "sweep_pytest_output.txt").write_text(proc.stdout + proc.stderr, encoding="utf-8")
    folders = sorted(sweep_out.glob("sweep_*"))
    if proc.returncode != 0 or not folders:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
        raise RuntimeError(f"the sweep exited {proc.returncode}:\n{tail}")
    record = json.loads((folders[-1] / "sweep_summary.json").read_text(encoding="utf-8"))[0]
    metrics = json.loads((folders[-1] / record["trial_dir"] / "training_metrics.json").read_text(encoding="utf-8"))
    epochs = metrics["epochs"]
    steady = epochs[1:] or epochs  # the first epoch pays for CUDA/cuDNN start-up
    epoch_s = sum(e["epoch_time"] for e in steady) / len(steady)
    img_s = sum(e["images_per_s"] for e in steady) / len(steady)
    scale = CIFAR_TRAIN / a.n_train
    return {
        "command": c.shell(cmd),
        "wall_s": wall,
        "status": record["status"],
        "device": record.get("device"),
        "trainer": record.get("trainer"),
        "epochs": [
            {k: e.get(k) for k in ("epoch", "epoch_time", "images_per_s", "train_loss", "test_acc", "sparsity")}
            for e in epochs
        ],
        "steady_images_per_s": img_s,
        "steady_epoch_s": epoch_s,
        "peak_memory_mb": record.get("peak_memory_mb"),
        "final_sparsity": record.get("final_sparsity"),
        "training_time_s": record.get("training_time"),
        "estimate_100_epochs_h": epoch_s * scale * EPOCHS_FOR_ESTIMATE / 3600,
    }


def render(res: dict[str, Any], a: argparse.Namespace, command: str) -> str:
    f = res["facts"]
    lines = [
        "### GPU check (bench/gpu_check.py)" + (" — SMOKE RUN (CPU, tiny sizes; not a measurement)" if a.smoke else ""),
        "",
        f"Command (from the repository root): `{command}`  ",
        f"Measured {time.strftime('%Y-%m-%d %H:%M %Z')}; load average at the start `{f['load']}`, at the end "
        f"`{c.load_average()}`.",
        "",
        f"Machine: {f.get('gpu', 'no GPU')} ({f.get('gpu_memory_gib', '?')} GiB; nvidia-smi: {f.get('nvidia_smi')}), "
        f"`nproc` = {f['nproc']}, Python {f['python']}, torch {f.get('torch')}, CUDA {f.get('cuda')}, "
        f"cuDNN {f.get('cudnn')}.",
        "",
    ]
    sw = res.get("sweep")
    if sw:
        lines += [
            f"**Sweep path** (`pytest --range-config` → built-in trainer; {sw['trainer']}, width {a.width}, "
            f"{a.n_train} synthetic train / {a.n_test} test images; status {sw['status']}, device {sw['device']}):",
            "",
            c.table(
                ["epoch", "epoch s (incl. test)", "train images/s", "train loss", "sparsity"],
                [
                    [
                        e["epoch"],
                        f"{e['epoch_time']:.2f}",
                        f"{e['images_per_s']:.0f}",
                        f"{e['train_loss']:.3f}",
                        f"{e['sparsity']:.3f}",
                    ]
                    for e in sw["epochs"]
                ],
            ),
            "",
            f"- steady-state train images/s (epochs 2+): **{sw['steady_images_per_s']:.0f}**",
            f"- peak memory (torch.cuda.max_memory_allocated): **{sw['peak_memory_mb']} MiB**"
            if sw["peak_memory_mb"] is not None
            else "- peak memory: n/a (CPU)",
            f"- estimated 100 CIFAR-10 epochs (50,000 images, test pass included): "
            f"**{sw['estimate_100_epochs_h'] * 60:.1f} min** ({sw['steady_epoch_s'] * CIFAR_TRAIN / a.n_train:.2f} s/epoch)",
            f"- whole pytest command: {sw['wall_s']:.1f} s",
            "",
        ]
    elif res.get("sweep_error"):
        lines += ["**Sweep path FAILED**:", "", "```", res["sweep_error"][-3000:], "```", ""]
    cmp_ = res.get("compare")
    if cmp_:
        block = tt.markdown(cmp_, "(run by bench/gpu_check.py)", machine=False)
        lines += [ln.replace("### ", "#### ", 1) for ln in block.splitlines()]
        est = CIFAR_TRAIN / cmp_["ours_best"] * EPOCHS_FOR_ESTIMATE / 3600
        ref_est = CIFAR_TRAIN / cmp_["reference_best"] * EPOCHS_FOR_ESTIMATE / 3600
        lines += [
            "",
            f"Train-only time for 100 epochs at these rates (SGD, no pruning, no test pass): ours "
            f"{est * 60:.1f} min, reference-style {ref_est * 60:.1f} min.",
        ]
    elif res.get("compare_error"):
        lines += ["**Loop comparison FAILED**:", "", "```", res["compare_error"][-3000:], "```"]
    lines += ["", f"Total time of this check: {res['total_s']:.0f} s."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--out",
        default=os.environ.get("OUT") or "gpu_check_out",
        help="folder for gpu_check.json / gpu_check.md (default: $OUT, else ./gpu_check_out)",
    )
    ap.add_argument("--smoke", action="store_true", help="CPU, tiny sizes: checks that the script runs")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--n-train", type=int, default=CIFAR_TRAIN)
    ap.add_argument("--n-test", type=int, default=10_000)
    ap.add_argument("--optimizer", default="adamwprune", help="CONFIG_OPTIMIZER of the sweep trial")
    ap.add_argument("--steps", type=int, default=200, help="timed steps per loop measurement")
    ap.add_argument("--repeats", type=int, default=3, help="loop measurements per side")
    ap.add_argument("--ref-workers", type=int, default=4, help="DataLoader workers of the reference loop")
    ap.add_argument("--trial-timeout", type=int, default=240, help="seconds before the sweep trial is failed")
    ap.add_argument("--skip-sweep", action="store_true")
    ap.add_argument("--skip-compare", action="store_true")
    a = ap.parse_args(argv)
    a.device = "cuda"
    settings = tt.Settings(
        device="cuda",
        width=a.width,
        batch=a.batch,
        steps=a.steps,
        warmup=20,
        repeats=a.repeats,
        ref_workers=a.ref_workers,
    )
    if a.smoke:
        a.device, a.width, a.epochs, a.n_train, a.n_test, a.batch = "cpu", 4, 2, 256, 64, 32
        a.trial_timeout = min(a.trial_timeout, 300)
        settings = replace(settings, device="cpu", width=4, batch=32, steps=3, warmup=1, repeats=1, ref_workers=0)
    out = Path(a.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    res: dict[str, Any] = {"args": vars(a), "facts": gpu_facts()}
    c.log(f"facts: {res['facts'].get('gpu') or 'no GPU'}; torch {res['facts'].get('torch')}")
    if not a.smoke and not res["facts"].get("cuda_available"):
        print("CUDA is not available; run with --smoke to check the script on the CPU", file=sys.stderr)
        return 2
    if not a.skip_sweep:
        try:
            res["sweep"] = sweep_trial(a, out)
            c.log(f"sweep: {res['sweep']['steady_images_per_s']:.0f} img/s, peak {res['sweep']['peak_memory_mb']} MiB")
        except Exception:
            res["sweep_error"] = traceback.format_exc()
            c.log("sweep path failed; see gpu_check.md")
    if not a.skip_compare:
        try:
            res["compare"] = tt.compare(settings)
        except Exception:
            res["compare_error"] = traceback.format_exc()
            c.log("loop comparison failed; see gpu_check.md")
    res["total_s"] = time.perf_counter() - started
    text = render(res, a, "PYTHONPATH=. python " + c.script_command().removeprefix(".venv/bin/python "))
    (out / "gpu_check.json").write_text(json.dumps(res, indent=2, default=str) + "\n", encoding="utf-8")
    (out / "gpu_check.md").write_text(text, encoding="utf-8")
    print(text)
    c.log(f"wrote {out / 'gpu_check.json'} and {out / 'gpu_check.md'}")
    return 0 if ("sweep_error" not in res and "compare_error" not in res) else 1


if __name__ == "__main__":
    sys.exit(main())
