"""The methods the harness compares: `METHODS` maps each name (as the records name it) to the
"module:function" of its `run(context: MethodContext) -> MethodResult` (see
`experiments.core.contract`), one adapter module per method beside this file. A method is
imported only when asked for, so a method whose module is missing (or needs an extra package)
breaks nothing but itself.

The adapters build the baselines' algorithms (`baselines`) and the library's (`popdescent`)
over the paper's models; `population` holds what the population methods share.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable

from experiments.core.contract import MethodContext, MethodResult

__all__ = ["METHODS", "MethodNotAvailableError", "get_method", "available_methods"]


# Method name (as records name it) -> "module:function" of its run(context). Adding a method is
# one line here and one adapter module beside this file.
METHODS = {
    "adam": "experiments.methods.adam:run",
    "adam-decay": "experiments.methods.adam:run_decayed",
    "adam-decay-ensemble": "experiments.methods.independent_ensemble:run",
    "adam-decay-rt": "experiments.methods.range_tested:run",
    "adam-replay": "experiments.methods.replay:run",
    "adam-constant": "experiments.methods.replay:run_constant",
    "adam-ramp": "experiments.methods.ramp:run",
    "popdescent": "experiments.methods.popdescent:run",
    "popdescent-budget": "experiments.methods.popdescent_budget:run",
    "popdescent-budget-rt": "experiments.methods.popdescent_budget:run_with_range_test",
    "grid": "experiments.methods.grid:run",
    "random": "experiments.methods.random:run",
    "hyperband": "experiments.methods.keras_tuners:run_hyperband",
    "bayesian": "experiments.methods.keras_tuners:run_bayesian",
    "optuna": "experiments.methods.optuna_search:run",
    "esgd": "experiments.methods.esgd:run",
    "pbt": "experiments.methods.pbt:run",
    "es-single": "experiments.methods.evolution_strategies:run_es_single",
    "pes": "experiments.methods.evolution_strategies:run_pes",
    "truncated-es": "experiments.methods.evolution_strategies:run_truncated_es",
}


class MethodNotAvailableError(RuntimeError):
    """A registered method whose module or `run` function cannot be imported (yet)."""


def get_method(name: str) -> Callable[[MethodContext], MethodResult]:
    """The `run` function of method `name`, imported on first use.

    Raises:
        ValueError: `name` is not in `METHODS`.
        MethodNotAvailableError: the method is registered but its module does not exist yet,
            or it defines no such function. An import error inside an existing module is not
            masked: it propagates as it is.
    """
    if name not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {name!r}")
    module_name, function_name = METHODS[name].split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        parts = module_name.split(".")
        if error.name not in {".".join(parts[: i + 1]) for i in range(len(parts))}:
            raise
        raise MethodNotAvailableError(
            f"method {name!r} is registered as {METHODS[name]!r}, but module {module_name!r} "
            "does not exist (not implemented yet?); available: "
            f"{available_methods()}"
        ) from error
    function = getattr(module, function_name, None)
    if not callable(function):
        raise MethodNotAvailableError(
            f"method {name!r}: module {module_name!r} defines no function {function_name!r}"
        )
    return function


def available_methods() -> list:
    """Names of the registered methods whose module exists (without importing them)."""
    found = []
    for name, target in METHODS.items():
        module_name = target.split(":")[0]
        try:
            if importlib.util.find_spec(module_name) is not None:
                found.append(name)
        except ModuleNotFoundError:
            pass
    return found
