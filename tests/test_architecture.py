"""The import graph of the repository runs one way: experiments -> baselines -> popdescent.

Every .py file is parsed with `ast` (nothing is imported), so a forbidden import fails here
even inside a function or an `if TYPE_CHECKING` block.
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
# Package (or module prefix) -> what it must never import.
FORBIDDEN = {
    "popdescent": ("baselines", "experiments"),
    "baselines": ("experiments",),
    # Inside the harness: the foundation knows no method, report or script; reports read
    # records only; methods know no script or report.
    "experiments.core": ("experiments.methods", "experiments.reports", "experiments.benchmark",
                         "experiments.ablation", "experiments.sensitivity",
                         "experiments.robustness", "experiments.report",
                         "experiments.reproduce", "experiments.static_search"),
    "experiments.reports": ("experiments.methods", "experiments.benchmark",
                            "experiments.ablation", "experiments.sensitivity",
                            "experiments.robustness", "experiments.report",
                            "experiments.reproduce", "experiments.static_search"),
    "experiments.methods": ("experiments.reports", "experiments.benchmark",
                            "experiments.ablation", "experiments.sensitivity",
                            "experiments.robustness", "experiments.report",
                            "experiments.reproduce"),
}


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imported_modules(source: str, module: str, is_package: bool = False) -> set:
    """Every module `source` (the text of `module`) imports, relative imports resolved;
    `from a import b` counts as importing both `a` and `a.b`."""
    package = module if is_package else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def upward_imports(module: str, imported: set) -> list:
    """(module, imported) pairs that break `FORBIDDEN`."""
    return sorted((module, name) for layer, banned in FORBIDDEN.items() if within(module, layer)
                  for name in imported for target in banned if within(name, target))


def source_files():
    for package in ("popdescent", "baselines", "experiments"):
        yield from sorted((ROOT / package).rglob("*.py"))


def test_the_source_tree_is_found():
    names = {module_name(path) for path in source_files()}
    assert {"popdescent", "baselines.esgd", "experiments.core.runner"} <= names


def test_no_module_imports_a_layer_above_it():
    broken = []
    for path in source_files():
        module = module_name(path)
        imported = imported_modules(path.read_text(encoding="utf-8"), module,
                                    path.name == "__init__.py")
        broken += upward_imports(module, imported)
    assert broken == [], f"imports that run upward: {broken}"


@pytest.mark.parametrize("module, source", [
    ("popdescent.population.population", "from experiments.core import contract"),
    ("popdescent.strategies.base", "def f():\n    import baselines.esgd\n"),
    ("baselines.esgd", "from experiments.methods.population import build_population"),
    ("baselines.grid_search", "import experiments"),
    ("experiments.core.runner", "from experiments import benchmark"),
    ("experiments.reports.robustness", "from .. import robustness"),
])
def test_an_upward_import_is_caught(module, source):
    assert upward_imports(module, imported_modules(source, module)) != []


@pytest.mark.parametrize("module, source", [
    ("experiments.benchmark", "from experiments.methods import get_method"),
    ("experiments.methods.esgd", "from baselines.esgd import paper_esgd"),
    ("baselines.esgd", "from popdescent.population.selection import rank_by_fitness"),
    ("popdescent.population.population", "from .backup import BackupAndRestore"),
])
def test_a_downward_import_is_allowed(module, source):
    assert upward_imports(module, imported_modules(source, module)) == []
