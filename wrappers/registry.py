"""Wrappers by name and version: ``name`` (latest), ``name@1`` (latest 1.x), ``name@1.2.0``."""

from __future__ import annotations

import importlib.util
import inspect
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from wrappers.base import Wrapper
from wrappers.errors import ConfigurationError, NotFound

__all__ = ["WrapperRegistry", "load_directory"]


class WrapperNotFound(NotFound):
    code = "wrapper_not_found"


class WrapperRegistry:
    def __init__(self, wrappers: Iterable[type[Wrapper]] = ()) -> None:
        self._by_name: dict[str, dict[str, type[Wrapper]]] = {}
        self._newest_first: dict[str, tuple[type[Wrapper], ...]] = {}  # read on every call
        for wrapper in wrappers:
            self.add(wrapper)

    def add(self, wrapper: type[Wrapper]) -> None:
        versions = self._by_name.setdefault(wrapper.name, {})
        if wrapper.version in versions and versions[wrapper.version] is not wrapper:
            raise ConfigurationError(f"wrapper {wrapper.ref()} is defined twice")
        versions[wrapper.version] = wrapper
        self._newest_first[wrapper.name] = tuple(
            sorted(versions.values(), key=lambda w: w.version_tuple(), reverse=True)
        )

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def versions(self, name: str) -> list[type[Wrapper]]:
        """All versions of ``name``, newest first."""
        if name not in self._newest_first:
            raise WrapperNotFound(f"no wrapper named {name!r}", param="model")
        return list(self._newest_first[name])

    def resolve(self, ref: str, version: str | None = None) -> type[Wrapper]:
        """``ref`` is ``name`` or ``name@version``; ``version`` may be given separately."""
        name, _, pinned = ref.partition("@")
        wanted = version or pinned
        candidates = self.versions(name)
        if not wanted:
            return candidates[0]
        prefix = wanted.split(".")
        for wrapper in candidates:
            if wrapper.version.split(".")[: len(prefix)] == prefix:
                return wrapper
        available = ", ".join(w.version for w in candidates)
        raise WrapperNotFound(
            f"wrapper {name!r} has no version {wanted!r} (available: {available})", param="version"
        )

    def __iter__(self) -> Iterator[type[Wrapper]]:
        for name in self.names():
            yield from self.versions(name)

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_name.values())


def load_directory(directory: Path) -> list[type[Wrapper]]:
    """Every ``Wrapper`` subclass defined in the ``*.py`` modules of ``directory``."""
    if not directory.is_dir():
        raise ConfigurationError(f"wrappers directory {directory} does not exist")
    found: list[type[Wrapper]] = []
    for path in sorted(directory.glob("*.py")):
        module_name = f"wrapserve_user_wrappers.{path.stem}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            continue
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as error:
            raise ConfigurationError(
                f"cannot load wrappers from {path}: {type(error).__name__}: {error}"
            ) from error
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, Wrapper) and value.__module__ == module_name and "name" in value.__dict__:
                found.append(value)
    return found
