"""The documentation does not rot: every Python block of the getting-started page and the
guides runs (a page's blocks in order, in one process, at the tiny sizes its `<!-- tiny: a ->
b; c -> d -->` markers name for the next block), and the site builds with `mkdocs build
--strict` (broken links, missing references, docstrings that do not render)."""

import importlib.util
import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = [ROOT / "docs" / "getting-started.md", *sorted((ROOT / "docs" / "guides").glob("*.md"))]
BLOCK = re.compile(r"(?:<!-- tiny: (?P<tiny>.*?) -->\s*)?```python\n(?P<code>.*?)```", re.S)
NEEDS = {"ray.md": "ray"}  # a page whose code needs an optional package
SHELL_ONLY = ("benchmarks.md",)  # its blocks are shell commands
RUNNABLE = [page for page in PAGES if page.name not in SHELL_ONLY]


def page_script(page: pathlib.Path) -> str:
    """The page's Python blocks in order, each with its tiny replacements made; a replacement
    that does not occur in its block is an error (the marker has rotted)."""
    blocks = []
    for match in BLOCK.finditer(page.read_text()):
        code = match["code"]
        for replacement in filter(None, (match["tiny"] or "").split(";")):
            old, new = (part.strip() for part in replacement.split("->"))
            assert old in code, f"{page.name}: tiny marker {old!r} is not in its block"
            code = code.replace(old, new)
        blocks.append(code)
    return "\n".join(blocks)


def test_every_guide_has_code_and_the_pages_are_listed():
    assert len(PAGES) >= 11
    for page in PAGES:
        if page.name not in SHELL_ONLY:
            assert page_script(page), f"{page.name} has no Python block"


@pytest.mark.parametrize("page", RUNNABLE, ids=lambda page: page.name)
def test_the_pages_python_runs(page, tmp_path):
    script = page_script(page)
    package = NEEDS.get(page.name)
    if package and importlib.util.find_spec(package) is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{page.name} needs {package}, which CI installs")
        pytest.skip(f"{page.name} needs {package}")
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600,
        cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2",
                               NO_MKDOCS_2_WARNING="1"))
    assert completed.returncode == 0, completed.stderr[-3000:]


def test_the_site_builds_strictly(tmp_path):
    if importlib.util.find_spec("mkdocs") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("mkdocs is missing: CI installs the docs extra")
        pytest.skip('mkdocs is not installed (pip install -e ".[docs]")')
    completed = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
        env=dict(os.environ, NO_MKDOCS_2_WARNING="1"))
    assert completed.returncode == 0, completed.stderr[-3000:]
