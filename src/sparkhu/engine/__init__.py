"""Engines map per-series functions over series: :func:`open_engine` picks one by URI.

:data:`ENGINES` is keyed by the URI's scheme: ``local`` → :class:`~sparkhu.engine.local.LocalEngine`
(a process pool of ``workers``); ``spark`` — ``spark://host:port`` and Spark's own ``local[N]``,
``local[*]`` masters — → :class:`~sparkhu.engine.spark.SparkEngine`. Third parties add a scheme
through an entry point of the ``sparkhu.engines`` group naming an :data:`EngineFactory`.

>>> from sparkhu.config import EngineSettings
>>> with open_engine(EngineSettings(uri="local", workers=1)) as engine:
...     engine
LocalEngine(workers=1)
>>> open_engine(EngineSettings(uri="local[2]"))
SparkEngine('local[2]')
>>> engine_scheme("spark://master:7077"), engine_scheme("local[4]"), engine_scheme("local")
('spark', 'spark', 'local')
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sparkhu.config import EngineSettings
from sparkhu.engine.base import Engine
from sparkhu.errors import ConfigError
from sparkhu.plugins import Registry

__all__ = ["ENGINES", "Engine", "EngineFactory", "engine_scheme", "open_engine"]

EngineFactory = Callable[..., Engine]
"""``factory(settings: EngineSettings, **options) -> Engine``; nothing may start before the first call."""

ENGINES: Registry[EngineFactory] = Registry("engine", group="sparkhu.engines")


def engine_scheme(uri: str) -> str:
    """The registry key of an engine URI: its scheme, ``spark`` for Spark's ``local[N]`` masters."""
    if "://" in uri:
        return uri.split("://", 1)[0]
    return "spark" if uri.startswith("local[") else uri


def open_engine(settings: EngineSettings, **options: Any) -> Engine:
    """The engine ``settings.uri`` names; ``options`` go to its constructor (e.g. Spark ``conf``).

    Nothing starts until the first call (the Spark session is created lazily).
    """
    try:
        factory = ENGINES.get(engine_scheme(settings.uri))
    except ConfigError:
        known = ", ".join(ENGINES.keys())
        raise ConfigError(
            f"engine.uri: unsupported engine {settings.uri!r}; expected local, local[N], local[*] or "
            f"spark://host:port (registered engines: {known})"
        ) from None
    return factory(settings, **options)


@ENGINES.register("local")
def _local_engine(settings: EngineSettings, **options: Any) -> Engine:
    from sparkhu.engine.local import LocalEngine

    return LocalEngine(settings.workers, **options)


@ENGINES.register("spark")
def _spark_engine(settings: EngineSettings, **options: Any) -> Engine:
    from sparkhu.engine.spark import SparkEngine

    conf: Mapping[str, str] = options.pop("conf", None) or {}
    return SparkEngine(settings.uri, conf=conf, **options)
