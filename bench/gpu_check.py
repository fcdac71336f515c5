"""GPU check: the CUDA path of the built-in trainer, end to end, on one GPU (issue 13).

For one NVIDIA GPU (an H200), offline, in under 8 minutes.  From the repository root:

    pip install --no-deps --no-build-isolation -e . && python bench/gpu_check.py --out "$OUT"  # the GPU check
    .venv/bin/python bench/gpu_check.py --device cpu --out /tmp/gpu-dry   # dry mode: CPU, tiny sizes

What it does, in this order (each part records its own result; one that fails does not stop
the others; the exit status is 1 when any check failed):

1. **Item 1, peak-memory reset.**  In this process, before anything else touches CUDA, a
   direct :func:`trainers.loop.train` call on ``cuda`` (LeNet-5 on the digits): it raised
   ``Invalid device argument 0: did you call init?`` before the fix.
2. **Profiled steps.**  ResNet-18 (``--width``) with the built-in default trainer (AdamWPrune,
   state pruning, bf16, channels_last, tensor input path) for two epochs of ``--profile-steps``
   steps under ``torch.profiler``; for each step of the second epoch, inside the loop's
   ``pytest_sweep::train_step`` ranges: kernel launches, host syncs (``cuda*Synchronize``,
   blocking ``cudaMemcpy``) and memory copies.  Goal: 0 host syncs on a step without a mask
   update (a mask update, every ``frequency`` steps, reads the exact threshold's counts).
3. **Solo trial.**  The same trainer without the profiler on ``--solo-steps`` batches per
   epoch for two epochs: images/s of epoch 2, peak memory, and the projected time of a 100-epoch
   CIFAR-10 trial (50,000 training images and the 10,000-image test pass per epoch).  Goal:
   at most 2 minutes (the guide assumes 32).
4. **The sweep path.**  ``python -m pytest -n 2 --sweep-workers-per-gpu 2`` (both workers on
   this GPU) over two range files: a 4-trial ResNet-18 sweep on synthetic CIFAR-shaped data
   (a ``conftest.py`` answers ``pytest_sweep_make_dataset``, the documented way for a plugin to
   supply data), and the **item 2** reproduction, ``CONFIG_DEVICE="cuda:0"|"cuda:1"``: under
   xdist a worker sees one GPU, so ``cuda:1`` must fail its item in one line that explains the
   numbering, and ``cuda:0`` must pass.  Reports images/s and peak memory per trial.
5. **Loop comparison.**  :func:`bench.trainer_throughput.compare`: our loop against a plain
   DataLoader + PIL-transform fp32 loop on the same GPU.  Goal: at least 5x.

``--device cpu`` is the dry mode: the same code at tiny sizes on the CPU, so that the script
cannot rot before a GPU is lent (``tests/test_gpu_check.py`` runs it).  There item 2's
``cuda:1`` trial must fail with "CUDA is not available" instead, and the CUDA-only figures
(launches, syncs, peak memory) are n/a.  It writes ``gpu_check.json`` and ``gpu_check.md``
(paste the latter into ``docs/benchmarks.md``) to ``--out`` (default ``$OUT``).
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c
import trainer_throughput as tt

CIFAR_TRAIN = 50_000
CIFAR_TEST = 10_000
EPOCHS_FOR_ESTIMATE = 100
GOAL_RATIO = 5.0
GOAL_MINUTES = 2.0
STEP_RANGE = "pytest_sweep::train_step"
LAUNCHES = ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernelEx", "cudaGraphLaunch")
SYNCS = (
    "cudaStreamSynchronize",
    "cudaDeviceSynchronize",
    "cudaEventSynchronize",
    "cudaMemcpy",
    "cudaMemcpy2D",
    "cuStreamSynchronize",
    "cuCtxSynchronize",
    "cuEventSynchronize",
)

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


# -- sizes ------------------------------------------------------------------------------------
def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="cpu: the dry mode (tiny sizes)")
    ap.add_argument("--out", default=os.environ.get("OUT") or "gpu_check_out", help="default: $OUT")
    ap.add_argument("--width", type=int, help="ResNet-18 width (default 64; dry 4)")
    ap.add_argument("--batch", type=int, help="batch size (default 128; dry 16)")
    ap.add_argument("--profile-steps", type=int, help="profiled steps (default 20; dry 4)")
    ap.add_argument("--solo-steps", type=int, help="steps per epoch of the solo trial (default 200; dry 4)")
    ap.add_argument("--sweep-train", type=int, help="synthetic training images per sweep trial (default 50000)")
    ap.add_argument("--sweep-epochs", type=int, help="epochs per sweep trial (default 3; dry 2)")
    ap.add_argument("--compare-steps", type=int, help="timed steps per loop measurement (default 200; dry 3)")
    ap.add_argument("--repeats", type=int, default=None, help="loop measurements per side (default 3; dry 1)")
    ap.add_argument("--trial-timeout", type=int, default=300, help="seconds before a sweep trial is failed")
    a = ap.parse_args(argv)
    dry = a.device == "cpu"
    defaults = {
        "width": (4, 64),
        "batch": (16, 128),
        "profile_steps": (4, 20),
        "solo_steps": (4, 200),
        "sweep_train": (64, CIFAR_TRAIN),
        "sweep_epochs": (2, 3),
        "compare_steps": (3, 200),
        "repeats": (1, 3),
    }
    for key, (dry_value, gpu_value) in defaults.items():
        if getattr(a, key) is None:
            setattr(a, key, dry_value if dry else gpu_value)
    a.dry = dry
    a.sweep_test = 32 if dry else CIFAR_TEST
    return a


def quiet(_message: str) -> None:
    pass


def synthetic(n_train: int, n_test: int) -> Any:
    from pytest_sweep.trainers.data import make_synthetic

    return make_synthetic(n_train=n_train, n_test=n_test, seed=0)


def default_trainer(a: argparse.Namespace, data: Any, steps: int, *, warmup: int, frequency: int) -> tuple[Any, ...]:
    """ResNet-18 + AdamWPrune (state pruning) + settings as the built-in trainer builds them."""
    import torch

    from pytest_sweep.trainers.adamwprune import AdamWPruneSettings
    from pytest_sweep.trainers.loop import TrainSettings, seed_everything
    from pytest_sweep.trainers.models import build_model
    from pytest_sweep.trainers.optimizers import build_optimizer
    from pytest_sweep.trainers.pruning import build_pruner

    cuda = a.device == "cuda"
    seed_everything(0)
    model = build_model("resnet18", in_channels=3, image_size=32, num_classes=10, width=a.width)
    model = model.to(a.device, memory_format=torch.channels_last) if cuda else model.to(a.device)
    prune = AdamWPruneSettings(steps_per_epoch=steps, warmup=warmup, frequency=frequency, ramp_end_epoch=2)
    opt = build_optimizer("adamwprune", model, lr=1e-3, weight_decay=0.01, prune=prune)
    pruner = build_pruner(  # state pruning: the schedule is the optimizer's own (``prune``)
        "state",
        model,
        opt,
        target_sparsity=0.7,
        warmup=warmup,
        frequency=frequency,
        ramp_end_epoch=2,
        steps_per_epoch=steps,
    )
    settings = TrainSettings(
        epochs=2, batch_size=a.batch, lr=1e-3, device=a.device, amp=cuda, channels_last=cuda, seed=0
    )
    return model, opt, pruner, settings, prune


# -- 1. item 1 ------------------------------------------------------------------------------------
def item1_peak_memory_reset(a: argparse.Namespace) -> dict[str, Any]:
    import torch

    from pytest_sweep.trainers.data import load_dataset
    from pytest_sweep.trainers.loop import TrainSettings, seed_everything, train
    from pytest_sweep.trainers.models import build_model
    from pytest_sweep.trainers.optimizers import build_optimizer
    from pytest_sweep.trainers.pruning import NoPruning

    fresh = not (torch.cuda.is_available() and torch.cuda.is_initialized())
    data = load_dataset("digits")
    seed_everything(0)
    model = build_model("lenet5", in_channels=1, image_size=8, num_classes=10)  # on the CPU: train() moves it
    opt = build_optimizer("adamw", model, lr=1e-3, weight_decay=0.0)
    out = train(model, opt, NoPruning(model), data, TrainSettings(epochs=1, batch_size=256, device=a.device), log=quiet)
    peak = out["peak_memory_bytes"]
    return {
        "passed": True,
        "cuda_untouched_before": fresh,
        "test_acc": out["final_acc"],
        "peak_memory_mb": None if peak is None else round(peak / 2**20, 1),
    }


# -- 2. profiled steps ----------------------------------------------------------------------------
def profiled_steps(a: argparse.Namespace) -> dict[str, Any]:
    import torch
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    from pytest_sweep.trainers.loop import train

    steps = a.profile_steps
    data = synthetic(steps * a.batch, a.batch)
    frequency = max(2, steps // 2)  # one mask update among the profiled steps, at least
    model, opt, pruner, settings, prune = default_trainer(a, data, steps, warmup=1, frequency=frequency)
    cuda = a.device == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        train(model, opt, pruner, data, settings, log=quiet)
    events = [e for e in prof.events() if e.device_type == DeviceType.CPU]
    ranges = sorted((e for e in events if e.name == STEP_RANGE), key=lambda e: e.time_range.start)
    if len(ranges) != 2 * steps:
        raise RuntimeError(f"expected {2 * steps} {STEP_RANGE} ranges, found {len(ranges)}")
    rows = []
    for number, step in enumerate(ranges[steps:], start=steps + 1):
        inside = [
            e
            for e in events
            if step.time_range.start <= e.time_range.start and e.time_range.end <= step.time_range.end and e is not step
        ]
        rows.append(
            {
                "step": number,
                "mask_update": prune.due(number),
                "launches": sum(e.name.startswith(LAUNCHES) for e in inside) if cuda else None,
                "syncs": sum(e.name in SYNCS for e in inside) if cuda else None,
                "memcpy": sum(e.name.startswith(("cudaMemcpy", "cuMemcpy")) for e in inside) if cuda else None,
                "top_level_ops": sum(e.cpu_parent is step and e.name.startswith("aten::") for e in inside),
            }
        )
    plain = [r for r in rows if not r["mask_update"]]

    def mean(key: str, rs: list[dict[str, Any]]) -> float | None:
        values = [r[key] for r in rs if r[key] is not None]
        return sum(values) / len(values) if values else None

    return {
        "steps": rows,
        "frequency": frequency,
        "syncs_per_plain_step_max": max((r["syncs"] for r in plain), default=None) if cuda else None,
        "launches_per_plain_step": mean("launches", plain),
        "top_level_ops_per_plain_step": mean("top_level_ops", plain),
        "passed": (not cuda) or max((r["syncs"] for r in plain), default=0) == 0,
        "torch": torch.__version__,
    }


# -- 3. solo trial --------------------------------------------------------------------------------
def solo_trial(a: argparse.Namespace) -> dict[str, Any]:
    from pytest_sweep.trainers.loop import train

    steps = a.solo_steps
    data = synthetic(steps * a.batch, a.sweep_test)
    model, opt, pruner, settings, _ = default_trainer(a, data, steps, warmup=100, frequency=50)
    out = train(model, opt, pruner, data, settings, log=quiet)
    second = out["history"][-1]
    img_s = second["images_per_s"]
    test_s = max(second["epoch_time"] - steps * a.batch / img_s, 0.0)  # the epoch's test pass
    epoch_s = CIFAR_TRAIN / img_s + test_s * CIFAR_TEST / a.sweep_test
    minutes = epoch_s * EPOCHS_FOR_ESTIMATE / 60
    peak = out["peak_memory_bytes"]
    return {
        "images_per_s": img_s,
        "epoch_s_measured": second["epoch_time"],
        "test_pass_s_measured": test_s,
        "projected_cifar_epoch_s": epoch_s,
        "projected_100_epochs_min": minutes,
        "peak_memory_mb": None if peak is None else round(peak / 2**20, 1),
        "passed": a.dry or minutes <= GOAL_MINUTES,
    }


# -- 4. the sweep path ----------------------------------------------------------------------------
def range_files(a: argparse.Namespace) -> dict[str, str]:
    device_values = '"cuda:0"|"cuda:1"' if not a.dry else '"cpu"|"cuda:1"'
    return {
        "resnet18": "\n".join(
            [
                "# bench/gpu_check.py: a 4-trial ResNet-18 sweep on synthetic CIFAR-shaped data",
                'CONFIG_MODEL="resnet18"',
                'CONFIG_DATASET="cifar10"',
                f"CONFIG_MODEL_WIDTH={a.width}",
                f"CONFIG_NUM_EPOCHS={a.sweep_epochs}",
                f"CONFIG_BATCH_SIZE={a.batch}",
                f'CONFIG_DEVICE="{a.device}"',
                f"CONFIG_SYNTHETIC_TRAIN={a.sweep_train}",
                f"CONFIG_SYNTHETIC_TEST={a.sweep_test}",
                'CONFIG_ADAMWPRUNE_VARIANT="bitter0"|"bitter1"',
                "CONFIG_SEED=1|2",
                "",
            ]
        ),
        "device_index": "\n".join(
            [
                "# bench/gpu_check.py: item 2, cuda:N under xdist (each worker sees one GPU)",
                'CONFIG_MODEL="lenet5"',
                'CONFIG_DATASET="digits"',
                'CONFIG_OPTIMIZER="adamw"',
                "CONFIG_NUM_EPOCHS=1",
                "CONFIG_BATCH_SIZE=256",
                f"CONFIG_DEVICE={device_values}",
                "",
            ]
        ),
    }


def sweep_path(a: argparse.Namespace, out: Path) -> dict[str, Any]:
    sweep_out = out / "sweep"
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        work = Path(tmp)
        for name, text in range_files(a).items():
            (work / name).write_text(text, encoding="utf-8")
        (work / "conftest.py").write_text(CONFTEST, encoding="utf-8")
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            "--range-config=resnet18",
            "--range-config=device_index",
            "-n",
            "2",
            "--sweep-workers-per-gpu",
            "2",
            "-p",
            "no:cacheprovider",
            "-q",
            f"--sweep-output={sweep_out}",
            f"--sweep-trial-timeout={a.trial_timeout}",
            *c.plugin_args(),
        ]
        c.log(f"sweep path: {c.shell(cmd)} (in a temp dir)")
        started = time.perf_counter()
        proc = subprocess.run(
            cmd, cwd=work, env=c.child_env(keep_threads=a.dry), capture_output=True, text=True, timeout=900
        )
        wall = time.perf_counter() - started
    output = proc.stdout + proc.stderr
    (out / "sweep_pytest_output.txt").write_text(output, encoding="utf-8")
    folders = sorted(sweep_out.glob("sweep_*"))
    if not folders:
        raise RuntimeError(f"the sweep exited {proc.returncode} and wrote nothing:\n{output[-3000:]}")
    records = json.loads((folders[-1] / "sweep_summary.json").read_text(encoding="utf-8"))
    resnet = [r for r in records if r["config"].get("CONFIG_MODEL") == "resnet18"]
    index = {r["config"]["CONFIG_DEVICE"]: r for r in records if r["config"].get("CONFIG_MODEL") == "lenet5"}
    trials = []
    for r in resnet:
        doc = json.loads((folders[-1] / r["trial_dir"] / "training_metrics.json").read_text(encoding="utf-8"))
        steady = doc["epochs"][1:] or doc["epochs"]  # epoch 1 pays for cuDNN's autotuning
        trials.append(
            {
                "config": r["config_file"],
                "worker": r.get("worker"),
                "status": r["status"],
                "error": r.get("error"),
                "images_per_s": sum(e["images_per_s"] for e in steady) / len(steady) if steady else None,
                "epoch_s": sum(e["epoch_time"] for e in steady) / len(steady) if steady else None,
                "peak_memory_mb": r.get("peak_memory_mb"),
            }
        )
    bad, good = index.get("cuda:1", {}), index.get("cuda:0" if not a.dry else "cpu", {})
    expected = "but xdist worker gw" if not a.dry else "CONFIG_DEVICE=cuda:1 but CUDA is not available here"
    item2 = {
        "cuda:1": {"status": bad.get("status"), "error": bad.get("error")},
        "other": {"device": "cpu" if a.dry else "cuda:0", "status": good.get("status")},
        "passed": bad.get("status") == "failed"
        and expected in str(bad.get("error"))
        and good.get("status") == "passed"
        and "Traceback" not in output,
    }
    return {
        "command": c.shell(cmd),
        "returncode": proc.returncode,
        "wall_s": wall,
        "trials": trials,
        "item2": item2,
        "passed": all(t["status"] == "passed" for t in trials) and len(trials) == 4 and item2["passed"],
    }


# -- 5. loop comparison ---------------------------------------------------------------------------
def loop_comparison(a: argparse.Namespace) -> dict[str, Any]:
    settings = tt.Settings(
        device=a.device,
        width=a.width,
        batch=a.batch,
        steps=a.compare_steps,
        warmup=1 if a.dry else 20,
        repeats=a.repeats,
        ref_workers=0 if a.dry else 4,
    )
    result = tt.compare(settings, say=c.log)
    result["passed"] = a.dry or result["ratio"] >= GOAL_RATIO
    return result


# -- the report -----------------------------------------------------------------------------------
def facts() -> dict[str, Any]:
    found: dict[str, Any] = {"nproc": os.cpu_count(), "python": platform.python_version(), "load": c.load_average()}
    try:
        import torch

        found.update(torch=torch.__version__, cuda_available=torch.cuda.is_available())
        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            found.update(
                gpu=props.name,
                gpu_memory_gib=round(props.total_memory / 2**30, 1),
                cuda=torch.version.cuda,
                cudnn=torch.backends.cudnn.version(),
            )
    except Exception as exc:
        found["torch_error"] = repr(exc)
    try:
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        found["nvidia_smi"] = smi.stdout.strip() or smi.stderr.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        found["nvidia_smi"] = f"unavailable ({type(exc).__name__})"
    return found


def fmt(value: Any, spec: str = ".0f") -> str:
    return "n/a" if value is None else format(value, spec)


def verdict(part: dict[str, Any] | None, dry: bool) -> str:
    if part is None:
        return "**FAILED** (see the error below)"
    if dry:
        return "ran (dry mode: no goal applies)"
    return "**met**" if part.get("passed") else "**missed**"


def render(res: dict[str, Any], a: argparse.Namespace, command: str) -> str:
    f = res["facts"]
    title = "### GPU check (bench/gpu_check.py)" + (" — DRY RUN (CPU, tiny sizes; not a measurement)" if a.dry else "")
    lines = [
        title,
        "",
        f"Command (from the repository root): `{command}`  ",
        f"Measured {time.strftime('%Y-%m-%d %H:%M %Z')}; load average at the start `{f['load']}`, at the end "
        f"`{c.load_average()}`; total {res['total_s']:.0f} s.",
        "",
        f"Machine: {f.get('gpu', 'no GPU')} ({f.get('gpu_memory_gib', '-')} GiB; nvidia-smi: {f.get('nvidia_smi')}), "
        f"`nproc` = {f['nproc']}, Python {f['python']}, torch {f.get('torch')}, CUDA {f.get('cuda')}, "
        f"cuDNN {f.get('cudnn')}.",
        "",
    ]
    i1 = res.get("item1")
    lines += [
        f"1. **Item 1** (peak-memory reset in a fresh process, direct `train()` on {a.device}): "
        + (
            f"passed (CUDA untouched before: {i1['cuda_untouched_before']}, peak {fmt(i1['peak_memory_mb'], '.1f')} MiB)"
            if i1
            else "**FAILED**"
        ),
    ]
    p = res.get("profile")
    if p:
        lines += [
            f"2. **Profiled steps** (ResNet-18 w{a.width}, AdamWPrune state pruning, batch {a.batch}, "
            f"{a.profile_steps} steps of epoch 2; masks recomputed every {p['frequency']} steps): "
            f"host syncs per step without a mask update, max **{fmt(p['syncs_per_plain_step_max'], 'd')}** "
            f"(goal 0: {verdict(p, a.dry)}); kernel launches per step **{fmt(p['launches_per_plain_step'])}**; "
            f"top-level ATen ops per step {fmt(p['top_level_ops_per_plain_step'])}.",
            "",
            "   "
            + c.table(
                ["step", "mask update", "launches", "host syncs", "memcpy", "top-level ops"],
                [
                    [
                        r["step"],
                        "yes" if r["mask_update"] else "",
                        fmt(r["launches"], "d"),
                        fmt(r["syncs"], "d"),
                        fmt(r["memcpy"], "d"),
                        r["top_level_ops"],
                    ]
                    for r in p["steps"]
                ],
            ).replace("\n", "\n   "),
        ]
    else:
        lines += ["2. **Profiled steps FAILED** (see below)."]
    s = res.get("solo")
    if s:
        lines += [
            "",
            f"3. **Solo trial** (the same trainer, {a.solo_steps} steps per epoch, epoch 2): "
            f"**{s['images_per_s']:.0f} images/s**, peak {fmt(s['peak_memory_mb'], '.1f')} MiB; projected "
            f"100-epoch CIFAR-10 trial (test pass included): **{s['projected_100_epochs_min']:.1f} min** "
            f"(goal ≤ {GOAL_MINUTES:g} min, the guide assumes 32: {verdict(s, a.dry)}).",
        ]
    else:
        lines += ["3. **Solo trial FAILED** (see below)."]
    sw = res.get("sweep")
    if sw:
        i2 = sw["item2"]
        lines += [
            "",
            f"4. **Sweep path** (`pytest -n 2 --sweep-workers-per-gpu 2`, {a.sweep_train} synthetic images per trial, "
            f"{a.sweep_epochs} epochs; {sw['wall_s']:.0f} s for the whole command): {verdict(sw, a.dry)}.",
            "",
            "   "
            + c.table(
                ["trial", "worker", "status", "images/s (epochs 2+)", "epoch s", "peak MiB"],
                [
                    [
                        t["config"],
                        t["worker"],
                        t["status"],
                        fmt(t["images_per_s"]),
                        fmt(t["epoch_s"], ".2f"),
                        fmt(t["peak_memory_mb"], ".1f"),
                    ]
                    for t in sw["trials"]
                ],
            ).replace("\n", "\n   "),
            "",
            f"   **Item 2** (`CONFIG_DEVICE=cuda:1` under xdist): {i2['cuda:1']['status']}: "
            f"`{i2['cuda:1']['error']}`; {i2['other']['device']}: {i2['other']['status']} — "
            + ("passed" if i2["passed"] else "**FAILED**")
            + ".",
        ]
    else:
        lines += ["4. **Sweep path FAILED** (see below)."]
    cmp_ = res.get("compare")
    if cmp_:
        lines += [
            "",
            f"5. **Loop comparison**: ours {cmp_['ours_best']:.0f} images/s against "
            f"{cmp_['reference_best']:.0f} for the DataLoader fp32 loop: **{cmp_['ratio']:.2f}×** "
            f"(goal ≥ {GOAL_RATIO:g}×: {verdict(cmp_, a.dry)}).",
            "",
        ]
        block = tt.markdown(cmp_, "(run by bench/gpu_check.py)", machine=False)
        lines += ["   " + ln.replace("### ", "#### ", 1) if ln else "" for ln in block.splitlines()]
    else:
        lines += ["5. **Loop comparison FAILED** (see below)."]
    for key in ("item1", "profile", "solo", "sweep", "compare"):
        if res.get(f"{key}_error"):
            lines += ["", f"{key} error:", "", "```", res[f"{key}_error"][-3000:], "```"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    a = parse(argv)
    out = Path(a.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    res: dict[str, Any] = {"args": vars(a)}
    parts: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("item1", lambda: item1_peak_memory_reset(a)),  # first: nothing may have touched CUDA yet
        ("profile", lambda: profiled_steps(a)),
        ("solo", lambda: solo_trial(a)),
        ("sweep", lambda: sweep_path(a, out)),
        ("compare", lambda: loop_comparison(a)),
    ]
    if not a.dry:
        import torch

        if not torch.cuda.is_available():
            print("CUDA is not available; run with --device cpu for the dry mode", file=sys.stderr)
            return 2
    for name, run in parts:
        c.log(f"{name} ...")
        try:
            res[name] = run()
            c.log(f"{name}: {'passed' if res[name].get('passed') else 'missed its goal'}")
        except Exception:
            res[f"{name}_error"] = traceback.format_exc()
            c.log(f"{name} FAILED:\n{res[f'{name}_error']}")
    res["facts"] = facts()
    res["total_s"] = time.perf_counter() - started
    res["passed"] = all(res.get(name, {}).get("passed") for name, _ in parts)
    text = render(res, a, "python " + c.script_command().removeprefix(".venv/bin/python "))
    (out / "gpu_check.json").write_text(json.dumps(res, indent=2, default=str) + "\n", encoding="utf-8")
    (out / "gpu_check.md").write_text(text, encoding="utf-8")
    print(text)
    c.log(f"wrote {out / 'gpu_check.json'} and {out / 'gpu_check.md'} in {res['total_s']:.0f} s")
    return 0 if res["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
