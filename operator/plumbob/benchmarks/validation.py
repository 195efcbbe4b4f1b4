"""Validation of benchmark data with pydantic, kept off the node audit's import path.

The rule models (:mod:`plumbob.benchmarks.rules`) are plain dataclasses; pydantic validates data
into them (types, enums, unknown keys, each model's own ``__post_init__`` checks). Only the
catalog's slow path (loading YAML sources, compiling the shipped catalog) imports this module.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError

T = TypeVar("T")

__all__ = ["ValidationError", "validated"]


_ADAPTERS: dict[type[Any], TypeAdapter[Any]] = {}


def validated(cls: type[T], data: Any) -> T:
    """``data`` as a ``cls`` (a rules dataclass), or :class:`pydantic.ValidationError`."""
    adapter = _ADAPTERS.get(cls)
    if adapter is None:
        adapter = _ADAPTERS[cls] = TypeAdapter(cls)
    result: T = adapter.validate_python(data)
    return result
