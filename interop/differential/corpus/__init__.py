"""The scenario corpus: each module registers scenarios with `@scenario("name")`.

A scenario is a function of a `Session` (see `engine.py`); names are unique and stable, since
`deliberate.toml` refers to them.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import Callable

_REGISTRY: list["Scenario"] = []


@dataclass
class Scenario:
    name: str
    run: Callable


def scenario(name: str):
    def register(fn):
        _REGISTRY.append(Scenario(name, fn))
        return fn
    return register


def add(name: str, fn: Callable) -> None:
    """Registers a generated scenario (for families built in a loop)."""
    _REGISTRY.append(Scenario(name, fn))


def load() -> list[Scenario]:
    for module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
        importlib.import_module(f"{__name__}.{module}")
    return list(_REGISTRY)
