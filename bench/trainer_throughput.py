"""Training throughput: our loop against a plain reference-style loop, ResNet-18, in one run.

* **ours**: :func:`trainers.loop.train` with the tensor input path (the whole uint8 dataset on the
  device, crop + flip + normalise vectorised there; bf16 autocast and channels_last on CUDA, as
  the built-in trainer does by default).
* **reference-style**: what the reference (and most CIFAR-10 tutorials) do: a ``Dataset`` of
  HWC uint8 images turned into PIL images one by one, torchvision ``RandomCrop(32, padding=4)`` +
  ``RandomHorizontalFlip`` + ``ToTensor`` + ``Normalize``, a ``DataLoader``, fp32, contiguous
  (no channels_last), ``loss.item()`` and the accuracy read back every step.

Both train the same ResNet-18 (same width and initial weights) with the same SGD (lr 0.1,
momentum 0.9, weight decay 5e-4) at the same batch size on the same images (synthetic
CIFAR-shaped data by default, :func:`trainers.data.make_synthetic`).  Each side first runs a few
warm-up steps that are not timed, then ``--steps`` timed steps; the two are measured alternately,
``--repeats`` times.  The headline ratio is the median of the per-repeat ratios (each repeat
measures both sides back to back, so a burst of load on a shared machine hits both alike); the
ratio of the best images/s is shown too.  On the CPU the default is one torch thread: on this
2-core box, shared with other work, two threads made both loops swing by up to 5x between runs.

    .venv/bin/python bench/trainer_throughput.py --device cpu --width 16 --steps 10   # CPU, < 2 min
    python bench/trainer_throughput.py --device cuda                     # GPU: width 64
    python bench/trainer_throughput.py --device cuda --dataset cifar10 --data-dir DIR   # real images
    .venv/bin/python bench/trainer_throughput.py --smoke                 # seconds: the suite runs it
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _common as c

CPU_GOAL = 1.0
#: ``--smoke``: the same code paths at tiny sizes (a few seconds on one CPU thread), for the suite.
SMOKE: dict[str, object] = {"device": "cpu", "width": 4, "batch": 16, "steps": 2, "warmup": 1, "repeats": 2}


@dataclass
class Settings:
    device: str = "cpu"
    width: int = 16
    batch: int = 128
    steps: int = 10
    warmup: int = 2
    repeats: int = 3
    ref_workers: int = 0
    dataset: str = "synthetic"
    data_dir: str = "data"
    threads: int | None = None
    smoke: bool = False


def _data(s: Settings, n_train: int) -> Any:
    from pytest_sweep.trainers.data import load_dataset, make_synthetic

    if s.dataset == "synthetic":
        return make_synthetic(n_train=n_train, n_test=s.batch, seed=0)
    from pytest_sweep.trainers.errors import DataUnavailableError

    try:
        full = load_dataset(s.dataset, data_dir=s.data_dir)
    except DataUnavailableError as exc:
        raise SystemExit(f"--dataset {s.dataset} --data-dir {s.data_dir}: {exc}") from None
    if n_train > len(full.train_y):
        raise SystemExit(f"--steps x --batch = {n_train} is more than the {len(full.train_y)} training images")
    from pytest_sweep.trainers.data import DataBundle

    return DataBundle(
        full.name,
        full.train_x[:n_train],
        full.train_y[:n_train],
        full.test_x[: s.batch],
        full.test_y[: s.batch],
        full.num_classes,
        full.mean,
        full.std,
        full.augment,
    )


def _model(s: Settings, data: Any) -> Any:
    import torch

    from pytest_sweep.trainers.models import build_model

    torch.manual_seed(0)
    return build_model(
        "resnet18",
        in_channels=data.in_channels,
        image_size=data.image_size,
        num_classes=data.num_classes,
        width=s.width,
    )


def _sgd(model: Any) -> Any:
    import torch

    return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _reset_peak(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak_mb(device: str) -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None


def run_ours(s: Settings) -> dict[str, Any]:
    """``trainers.loop.train`` for one epoch of ``steps`` batches, after a warm-up epoch; train-phase images/s."""
    from pytest_sweep.trainers.loop import TrainSettings, train
    from pytest_sweep.trainers.pruning import NoPruning

    cuda = s.device.startswith("cuda")
    data = _data(s, s.steps * s.batch)
    model = _model(s, data)
    opt = _sgd(model)
    settings = TrainSettings(
        epochs=1, batch_size=s.batch, lr=0.1, device=s.device, seed=0, amp=cuda, channels_last=cuda, loader="tensor"
    )
    quiet = lambda _msg: None  # noqa: E731
    if s.warmup > 0:
        train(model, opt, NoPruning(model), _data(s, s.warmup * s.batch), settings, log=quiet)
    _reset_peak(s.device)
    out = train(model, opt, NoPruning(model), data, settings, log=quiet)
    epoch = out["history"][0]
    return {"images_per_s": epoch["images_per_s"], "images": s.steps * s.batch, "peak_mb": _peak_mb(s.device)}


def reference_loader(s: Settings, data: Any) -> Any:
    """torchvision-style: PIL image per sample, per-image transforms, a DataLoader."""
    import torch
    from PIL import Image
    from torchvision import transforms

    class RefDataset(torch.utils.data.Dataset):  # the shape of torchvision.datasets.CIFAR10
        def __init__(self, images: Any, targets: list[int], transform: Any) -> None:
            self.data, self.targets, self.transform = images, targets, transform

        def __len__(self) -> int:
            return len(self.targets)

        def __getitem__(self, index: int) -> tuple[Any, int]:
            return self.transform(
                Image.fromarray(self.data[index].squeeze(-1) if self.data.shape[-1] == 1 else self.data[index])
            ), self.targets[index]

    steps: list[Any] = []
    if data.augment:
        steps += [transforms.RandomCrop(data.image_size, padding=data.crop_padding), transforms.RandomHorizontalFlip()]
    steps += [transforms.ToTensor(), transforms.Normalize(data.mean, data.std)]
    images = data.train_x.permute(0, 2, 3, 1).contiguous().numpy()  # N x H x W x C, as CIFAR10.data
    dataset = RefDataset(images, data.train_y.tolist(), transforms.Compose(steps))
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=s.batch,
        shuffle=True,
        num_workers=s.ref_workers,
        pin_memory=s.device.startswith("cuda"),
        generator=torch.Generator().manual_seed(0),
    )


def run_reference(s: Settings) -> dict[str, Any]:
    """A plain loop over the DataLoader: warm-up steps untimed, then ``steps`` timed steps."""
    from torch.nn import functional as F

    data = _data(s, (s.steps + s.warmup) * s.batch)
    model = _model(s, data).to(s.device)
    opt = _sgd(model)
    model.train()
    loader = reference_loader(s, data)
    seen = correct = 0
    running = 0.0
    started = 0.0
    for step, (xb, yb) in enumerate(loader):
        if step == s.warmup:
            _sync(s.device)
            _reset_peak(s.device)
            started = time.perf_counter()
        xb, yb = xb.to(s.device), yb.to(s.device)
        opt.zero_grad()
        out = model(xb)
        loss = F.cross_entropy(out, yb)
        loss.backward()
        opt.step()
        running += loss.item()
        correct += int(out.argmax(1).eq(yb).sum().item())
        if step >= s.warmup:
            seen += yb.shape[0]
    _sync(s.device)
    seconds = time.perf_counter() - started
    return {"images_per_s": seen / seconds, "images": seen, "peak_mb": _peak_mb(s.device)}


def compare(s: Settings, say: Any = c.log) -> dict[str, Any]:
    """Measure both loops alternately; the ratio of the best images/s (ours / reference)."""
    import torch

    if s.threads:
        torch.set_num_threads(s.threads)
    if s.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda but CUDA is not available here")
    ours: list[dict[str, Any]] = []
    ref: list[dict[str, Any]] = []
    loads: list[str] = []
    for rep in range(s.repeats):
        for side in ("ours", "ref") if rep % 2 == 0 else ("ref", "ours"):
            loads.append(c.load_average())
            result = run_ours(s) if side == "ours" else run_reference(s)
            (ours if side == "ours" else ref).append(result)
            say(f"rep {rep + 1}: {side} {result['images_per_s']:.1f} img/s")
    best_ours = max(r["images_per_s"] for r in ours)
    best_ref = max(r["images_per_s"] for r in ref)
    paired = [o["images_per_s"] / f["images_per_s"] for o, f in zip(ours, ref, strict=False)]
    return {
        "settings": asdict(s),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name() if s.device.startswith("cuda") else None,
        "ours_images_per_s": [r["images_per_s"] for r in ours],
        "reference_images_per_s": [r["images_per_s"] for r in ref],
        "ours_best": best_ours,
        "reference_best": best_ref,
        "ratio": statistics.median(paired),
        "paired_ratios": paired,
        "ratio_of_best": best_ours / best_ref,
        "ours_peak_mb": max((r["peak_mb"] or 0) for r in ours) or None,
        "reference_peak_mb": max((r["peak_mb"] or 0) for r in ref) or None,
        "loads": loads,
    }


def markdown(r: dict[str, Any], command: str, machine: bool = True) -> str:
    s = r["settings"]
    cuda = s["device"].startswith("cuda")
    ours_how = "tensor path" + (
        ", bf16 autocast, channels_last" if cuda else " (fp32; amp/channels_last are CUDA-only)"
    )
    ref_how = f"DataLoader (num_workers={s['ref_workers']}) + PIL transforms, fp32, contiguous"
    fmt = lambda xs: ", ".join(f"{x:.0f}" for x in xs)  # noqa: E731
    peak = lambda v: "—" if v is None else f"{v:.0f}"  # noqa: E731
    ones = [float(l.split()[0]) for l in r["loads"] if l != "n/a"]
    rows = [
        [
            f"ours: `trainers.loop.train`, {ours_how}",
            f"{r['ours_best']:.0f}",
            fmt(r["ours_images_per_s"]),
            peak(r["ours_peak_mb"]),
        ],
        [
            f"reference-style: {ref_how}",
            f"{r['reference_best']:.0f}",
            fmt(r["reference_images_per_s"]),
            peak(r["reference_peak_mb"]),
        ],
    ]
    body = [
        f"ResNet-18 width {s['width']} on {s['dataset']} CIFAR-shaped data (3×32×32, crop + flip), batch "
        f"{s['batch']}, SGD, device {r['gpu'] or s['device']}, torch threads {r['torch_threads']}; "
        f"{s['warmup']} warm-up steps untimed, then {s['steps']} timed steps ({s['steps'] * s['batch']} images) "
        f"per measurement, {s['repeats']} alternating repeats; load (1 min) "
        f"{min(ones):.2f}–{max(ones):.2f}."
        if ones
        else "",
        "",
        c.table(["loop", "best images/s", "all runs images/s", "peak MiB"], rows),
        "",
        f"Ratio ours / reference-style: **{r['ratio']:.2f}×** (median of the per-repeat ratios "
        f"{', '.join(f'{x:.2f}' for x in r['paired_ratios'])}; ratio of the best runs {r['ratio_of_best']:.2f}×).",
    ]
    if s.get("smoke"):
        body += ["", c.SMOKE_NOTE]
    elif not cuda:
        body += ["", f"CPU goal: ratio not below {CPU_GOAL:g} — {c.verdict(r['ratio'] >= CPU_GOAL)}."]
    return c.block("Trainer throughput (bench/trainer_throughput.py)", command, "\n".join(body), machine=machine)


def parse(argv: list[str] | None = None) -> Settings:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda when available")
    ap.add_argument("--width", type=int, default=None, help="ResNet-18 base width (default 16 on CPU, 64 on CUDA)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default 10 on CPU, 200 on CUDA)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 2 on CPU, 20 on CUDA)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--ref-workers",
        type=int,
        default=None,
        help="DataLoader workers of the reference loop (default 0 on CPU, 4 on CUDA)",
    )
    ap.add_argument("--dataset", choices=("synthetic", "cifar10"), default="synthetic")
    ap.add_argument(
        "--data-dir",
        "--sweep-data-dir",
        dest="data_dir",
        default="data",
        help="where --dataset cifar10 is (or is downloaded to); --sweep-data-dir is an alias",
    )
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch.set_num_threads (default: 1 on CPU, torch's own on CUDA; 0: torch's own)",
    )
    a = c.parse_args(ap, argv, SMOKE)
    if a.device is None:
        import torch

        a.device = "cuda" if torch.cuda.is_available() else "cpu"
    cuda = a.device == "cuda"
    return Settings(
        device=a.device,
        width=a.width or (64 if cuda else 16),
        batch=a.batch,
        steps=a.steps or (200 if cuda else 10),
        warmup=a.warmup if a.warmup is not None else (20 if cuda else 2),
        repeats=a.repeats,
        ref_workers=a.ref_workers if a.ref_workers is not None else (4 if cuda else 0),
        dataset=a.dataset,
        data_dir=a.data_dir,
        threads=a.threads if a.threads is not None else (None if cuda else 1),
        smoke=a.smoke,
    )


def main(argv: list[str] | None = None) -> int:
    s = parse(argv)
    result = compare(s)
    print(markdown(result, c.script_command()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
