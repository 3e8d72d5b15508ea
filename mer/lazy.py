"""Modules loaded when first used, so that the shell starts without the services.

A command module names the modules it calls at its top, as usual, but the import costs
nothing until a command uses one: ``mer -c quit`` or a prompt waiting for its first line
never loads them. Type checkers see the ordinary import (``if TYPE_CHECKING``).

Not ``importlib.util.LazyLoader``: on Python 3.11 it may execute a module twice when two
threads touch it at once (the shell's and the event loop's), making two of each class.
The first use here is an ordinary import, under the import system's own lock.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

__all__ = ["lazy_module"]


class _OnFirstUse(ModuleType):
    def __getattr__(self, attr: str) -> Any:
        # The module, not its attributes, is kept: what is read is always the module's
        # own attribute now (one that a test replaced, too).
        module = self.__dict__.get("_loaded")
        if module is None:
            module = self.__dict__["_loaded"] = importlib.import_module(self.__name__)
        return getattr(module, attr)


def lazy_module(name: str) -> ModuleType:
    """A stand-in for the module ``name`` that imports it when an attribute is read."""
    return _OnFirstUse(name)
