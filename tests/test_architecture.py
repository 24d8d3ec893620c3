"""The import graph of the repository runs one way: experiments -> baselines -> popdescent.

Inside popdescent too, room by room (`ROOMS`): ray, tuners -> callbacks -> strategies ->
population -> returned -> inputs -> validation, hyperparameters; the package's own
`__init__` (the public API) sits above them all.

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
# popdescent's rooms, lowest first: a room imports only the rooms of the layers before its own
# (never a room beside it, never the package's public `__init__`).
ROOMS = (
    ("popdescent.validation", "popdescent.hyperparameters"),
    ("popdescent.inputs",),
    ("popdescent.returned",),
    ("popdescent.population",),
    ("popdescent.strategies",),
    ("popdescent.callbacks",),
    ("popdescent.tuners", "popdescent.ray"),
)
for _layer, _rooms in enumerate(ROOMS):
    for _room in _rooms:
        FORBIDDEN[_room] = tuple(other for later in ROOMS[_layer:] for other in later
                                 if other != _room)
# The upward imports still there, each with why; fixing one means deleting its entry.
KNOWN_UPWARD = {
    ("popdescent.population.population", "popdescent.callbacks.backup"):
        "Population.fit orders its callbacks (strategies, the others, the backup) with "
        "arrange_callbacks, which knows PopulationStrategy and BackupAndRestore by type: "
        "the loop population -> backup -> strategies.base that STYLE.md names",
}


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imported_modules(source: str, module: str, is_package: bool = False,
                     with_names: bool = True) -> set:
    """Every module `source` (the text of `module`) imports, relative imports resolved;
    `from a import b` counts as importing both `a` and `a.b` (only `a` without `with_names`)."""
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
            if with_names:
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


def known_upward(module: str, name: str) -> bool:
    return any(module == known and within(name, target) for known, target in KNOWN_UPWARD)


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
    broken = [(module, name) for module, name in broken if not known_upward(module, name)]
    assert broken == [], f"imports that run upward: {broken}"


def test_each_known_upward_import_is_still_there():
    for module, target in KNOWN_UPWARD:
        path = ROOT / (module.replace(".", "/") + ".py")
        imported = imported_modules(path.read_text(encoding="utf-8"), module)
        assert any(within(name, target) for name in imported), (
            f"{module} no longer imports {target}: delete the entry from KNOWN_UPWARD")


def library_files():
    return [path for path in source_files() if module_name(path).startswith("popdescent.")]


def test_every_module_of_popdescent_sits_in_a_room():
    rooms = [room for layer in ROOMS for room in layer]
    homeless = sorted(module_name(path) for path in library_files()
                      if not any(within(module_name(path), room) for room in rooms))
    assert homeless == [], f"modules in no room of ROOMS: {homeless}"
    missing = [room for room in rooms if not (ROOT / (room.replace(".", "/") + ".py")).is_file()
               and not (ROOT / room.replace(".", "/") / "__init__.py").is_file()]
    assert missing == [], f"rooms of ROOMS that do not exist: {missing}"


def test_each_room_says_what_it_holds_and_what_it_may_import():
    for layer in ROOMS:
        for room in layer:
            package = ROOT / room.replace(".", "/") / "__init__.py"
            if package.is_file():
                docstring = ast.get_docstring(ast.parse(package.read_text(encoding="utf-8")))
                assert docstring and "import" in docstring.lower(), (
                    f"{room}/__init__.py: its docstring says what lives there and what it imports")


def test_no_room_imports_the_public_api_above_it():
    for path in library_files():
        module = module_name(path)
        imported = imported_modules(path.read_text(encoding="utf-8"), module,
                                    path.name == "__init__.py")
        assert "popdescent" not in imported, (
            f"{module} imports the package's public API; import from the room instead")


def imported_bases(source: str, module: str, is_package: bool = False) -> set:
    """The modules `source` names in `import a.b` and as `a.b` in `from a.b import c`."""
    return imported_modules(source, module, is_package, with_names=False)


def test_every_import_of_popdescent_names_a_module_that_exists():
    """After a module moves, an import of its old path (say in a branch merged later) fails
    here at once, not only when the test that imports it runs."""
    stale = []
    for folder in ("popdescent", "baselines", "experiments", "tests", "examples"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            module = module_name(path)
            for name in imported_bases(path.read_text(encoding="utf-8"), module,
                                       path.name == "__init__.py"):
                if not within(name, "popdescent"):
                    continue
                file = ROOT / name.replace(".", "/")
                if not (file.with_suffix(".py").is_file() or (file / "__init__.py").is_file()):
                    stale.append((module, name))
    assert stale == [], f"imports of popdescent modules that do not exist: {stale}"


@pytest.mark.parametrize("module, source", [
    ("popdescent.population.population", "from experiments.core import contract"),
    ("popdescent.strategies.base", "def f():\n    import baselines.esgd\n"),
    ("baselines.esgd", "from experiments.methods.population import build_population"),
    ("baselines.grid_search", "import experiments"),
    ("experiments.core.runner", "from experiments import benchmark"),
    ("experiments.reports.robustness", "from .. import robustness"),
    ("popdescent.inputs.training_data", "from popdescent.strategies import PopDescent"),
    ("popdescent.returned.schedules", "from popdescent.strategies.budget_aware import due_size"),
    ("popdescent.returned.ensemble", "def f():\n    from ..population import members\n"),
    ("popdescent.population.members", "from popdescent.callbacks.backup import read_backup"),
    ("popdescent.population.member_fitness", "from ..strategies import replacement"),
    ("popdescent.strategies.pbt", "from popdescent.callbacks import backup"),
    ("popdescent.validation", "from popdescent.inputs.array_inputs import take"),
    ("popdescent.hyperparameters", "from popdescent.validation import check_number"),
    ("popdescent.tuners.genes", "from popdescent.ray import keras_trainable"),
])
def test_an_upward_import_is_caught(module, source):
    assert upward_imports(module, imported_modules(source, module)) != []


@pytest.mark.parametrize("module, source", [
    ("experiments.benchmark", "from experiments.methods import get_method"),
    ("experiments.methods.esgd", "from baselines.esgd import paper_esgd"),
    ("baselines.esgd", "from popdescent.population.selection import rank_by_fitness"),
    ("popdescent.population.population", "from .finished import restore_finished"),
    ("popdescent.returned.ensemble", "from ..inputs.array_inputs import take"),
    ("popdescent.strategies.base", "from popdescent.population.selection import rank_by_fitness"),
    ("popdescent.callbacks.backup", "from popdescent.strategies.base import PopulationStrategy"),
    ("popdescent.ray.islands", "from popdescent.population.population import Population"),
])
def test_a_downward_import_is_allowed(module, source):
    assert upward_imports(module, imported_modules(source, module)) == []
