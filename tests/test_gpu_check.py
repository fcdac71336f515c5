"""``bench/gpu_check.py --device cpu``: the GPU check's dry mode runs end to end (issue 13).

No GPU has been lent so far, so the check itself cannot run here; its dry mode runs the same
code at tiny sizes on the CPU (item 1's direct ``train()``, the profiled steps, the solo trial,
the ``-n 2 --sweep-workers-per-gpu 2`` sweep with item 2's ``cuda:1`` trial, the loop
comparison), so that the script is ready the day a device is lent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sweep_helpers import needs_torchvision

REPO = Path(__file__).resolve().parents[1]


@needs_torchvision  # the loop comparison's reference side is torchvision's DataLoader
def test_the_dry_mode_runs_every_part(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "gpu_check.py"), "--device", "cpu", "--out", str(tmp_path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads((tmp_path / "gpu_check.json").read_text())
    assert res["passed"] and not [k for k in res if k.endswith("_error")]
    assert res["item1"]["cuda_untouched_before"]
    steps = res["profile"]["steps"]
    assert len(steps) == 4 and any(s["mask_update"] for s in steps) and all(s["top_level_ops"] > 0 for s in steps)
    assert res["solo"]["projected_100_epochs_min"] > 0
    sweep = res["sweep"]
    assert [t["status"] for t in sweep["trials"]] == ["passed"] * 4
    assert {t["worker"] for t in sweep["trials"]} <= {"gw0", "gw1"}
    assert sweep["item2"]["cuda:1"] == {
        "status": "failed",
        "error": "CONFIG_DEVICE=cuda:1 but CUDA is not available here; use CONFIG_DEVICE=auto or cpu",
    }
    assert res["compare"]["ours_best"] > 0 and res["compare"]["reference_best"] > 0
    text = (tmp_path / "gpu_check.md").read_text()
    assert "DRY RUN" in text and "**Item 2**" in text and "Loop comparison" in text
