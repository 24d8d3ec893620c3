"""The README's quickstart is the script users run, and it runs."""

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "quickstart.py"


def test_readme_shows_the_quickstart_script_verbatim():
    readme = (ROOT / "README.md").read_text()
    body = SCRIPT.read_text().split('"""', 2)[2].strip()
    assert body in readme


def test_quickstart_prints_the_best_members_result():
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--epochs", "3"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "gradient steps (all members): 240" in completed.stdout
    assert "best member's test loss:" in completed.stdout
    assert "learning_rate" in completed.stdout and "'l2'" in completed.stdout


def test_quickstart_budget_aware_spends_the_same_budget_and_returns_the_survivor():
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--epochs", "3", "--budget-aware"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "gradient steps (all members): 240" in completed.stdout
    assert "best member: 0 " in completed.stdout  # one member is left
