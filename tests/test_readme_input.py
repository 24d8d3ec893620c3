"""The README's input section (a tf.data pipeline, a two-input model) runs as shown."""

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
SECTION = "### Input: arrays, `tf.data` pipelines, multi-input models"


def test_readme_input_snippet_runs_and_trains_exact_member_steps():
    readme = (ROOT / "README.md").read_text()
    assert SECTION in readme
    snippet = readme.split(SECTION, 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    # the two-input population: 192 of 256 examples after validation_split, batches of 32
    check = "\nassert pop.gradient_steps == 3 * (192 // 32) * 4, pop.gradient_steps\n"
    completed = subprocess.run(
        [sys.executable, "-c", snippet + check], capture_output=True, text=True, timeout=300,
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2"),
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
