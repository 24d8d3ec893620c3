"""examples/cifar10_augmented.py: a population fed by a tf.data augmentation pipeline runs."""

import os
import pathlib
import subprocess
import sys

from tests.helpers.data import skip_without_data

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "cifar10_augmented.py"
CIFAR_BASE = pathlib.Path(os.environ.get("POPDESCENT_DATA") or ROOT.parent / "shared" / "datasets")


def test_small_run_trains_exactly_its_member_steps_from_the_pipeline():
    if not (CIFAR_BASE / "cifar-10-batches-py").is_dir():
        skip_without_data(f"{CIFAR_BASE}/cifar-10-batches-py absent: set POPDESCENT_DATA")
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--small", "--data-dir", str(CIFAR_BASE)],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2"),
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    # 3 iterations x 5 steps x 3 members: the 63-batch pipeline never cuts one short
    assert "gradient steps (all members): 45" in completed.stdout
    assert "best member's test accuracy:" in completed.stdout
