"""Extension points: small registries of factories keyed by a ``kind`` or a URI scheme.

Each layer keeps one :class:`Registry` for what it can be extended with — buses by URI scheme
(:data:`sparkhu.stream.BUSES`), engines (:data:`sparkhu.engine.ENGINES`), lake filesystems
(:data:`sparkhu.storage.lake.FILESYSTEMS`), sources and sinks by ``kind``
(:data:`sparkhu.connectors.SOURCES`, :data:`sparkhu.connectors.SINKS`) and models by name
(:data:`sparkhu.forecast.models.MODELS`) — so no caller grows an ``if``/``elif`` per backend.
Built-ins register themselves where they are defined; third parties add theirs through an
entry point of the registry's group, loaded the first time a key is missing::

    # a third party's pyproject.toml
    [project.entry-points."sparkhu.sources"]
    mqtt = "sparkhu_mqtt:MQTT_SOURCE"

>>> greeters = Registry("greeter", group="example.greeters")
>>> @greeters.register("hello")
... def hello(name: str) -> str:
...     return f"hello {name}"
>>> greeters.get("hello")("you")
'hello you'
>>> greeters.get("hi")
Traceback (most recent call last):
...
sparkhu.errors.ConfigError: unknown greeter 'hi'; known: hello
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Generic, TypeVar, overload

from sparkhu.errors import ConfigError

T = TypeVar("T")
log = logging.getLogger(__name__)


class Registry(Generic[T]):
    """Key → registered object (a factory, a class, a settings model...); see the module docstring.

    ``what`` names the kind of thing in error messages; ``group`` is the entry-point group
    that third-party packages use to add keys.
    """

    def __init__(self, what: str, *, group: str) -> None:
        self.what, self.group = what, group
        self._items: dict[str, T] = {}
        self._loaded_entry_points = False
        self._lock = threading.Lock()

    @overload
    def register(self, key: str) -> Callable[[T], T]: ...
    @overload
    def register(self, key: str, item: T) -> T: ...

    def register(self, key: str, item: T | None = None) -> T | Callable[[T], T]:
        """Register ``item`` under ``key``; without ``item``, a decorator. A key registered twice fails."""

        def add(value: T) -> T:
            with self._lock:
                if key in self._items and self._items[key] is not value:
                    raise ConfigError(f"{self.what} {key!r} is registered twice")
                self._items[key] = value
            return value

        return add if item is None else add(item)

    def get(self, key: str) -> T:
        """The item of ``key``; entry points are loaded on a miss. Unknown keys raise :class:`ConfigError`."""
        if key not in self._items:
            self._load_entry_points()
        try:
            return self._items[key]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            raise ConfigError(f"unknown {self.what} {key!r}; known: {known}") from None

    def __contains__(self, key: object) -> bool:
        if key not in self._items:
            self._load_entry_points()
        return key in self._items

    def keys(self) -> list[str]:
        """Every key, built-in and from entry points, sorted."""
        self._load_entry_points()
        return sorted(self._items)

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def _load_entry_points(self) -> None:
        with self._lock:
            if self._loaded_entry_points:
                return
            self._loaded_entry_points = True
            found = list(entry_points(group=self.group))
        for point in found:
            if point.name in self._items:
                continue
            try:
                item = point.load()
            except Exception as exc:  # a broken plug-in names itself instead of breaking every lookup
                raise ConfigError(
                    f"{self.what} {point.name!r} from entry point {point.value!r} ({self.group}) "
                    f"cannot be loaded: {type(exc).__name__}: {exc}"
                ) from exc
            self.register(point.name, item)

    def __repr__(self) -> str:
        return f"Registry({self.what!r}, group={self.group!r}, keys={sorted(self._items)})"


def entry_point_names(group: str) -> set[str]:
    """The keys third parties add to ``group``, without loading them (for settings validation).

    >>> entry_point_names("sparkhu.no-such-group")
    set()
    """
    return {point.name for point in entry_points(group=group)}
