"""What in-process pytester runs of the plugin need from the outer test process."""

from __future__ import annotations

import importlib
import pkgutil

import pytest_kvmi


def import_the_package_once() -> None:
    """pytester's in-process runs unload every module first imported inside them, but the
    package object keeps its submodule attributes, so a later run would mix two copies of a
    module (two ``Code`` enums); and cryptography does not survive a re-import at all. Importing
    everything here, once, keeps every run on the same modules."""
    for module in pkgutil.walk_packages(pytest_kvmi.__path__, "pytest_kvmi."):
        importlib.import_module(module.name)
    # httpx imports httpcore on its first real connection; were that inside a run, clients
    # made later in this process would let httpcore's own errors escape unmapped by httpx.
    importlib.import_module("httpcore")
