"""Engines map per-series functions over series: :func:`open_engine` picks one by URI.

``local`` → :class:`~sparkhu.engine.local.LocalEngine` (a process pool of ``workers``);
``local[N]``, ``local[*]`` or ``spark://host:port`` → :class:`~sparkhu.engine.spark.SparkEngine`.

>>> from sparkhu.config import EngineSettings
>>> with open_engine(EngineSettings(uri="local", workers=1)) as engine:
...     engine
LocalEngine(workers=1)
>>> open_engine(EngineSettings(uri="local[2]"))
SparkEngine('local[2]')
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sparkhu.config import EngineSettings
from sparkhu.engine.base import Engine
from sparkhu.errors import ConfigError


def open_engine(settings: EngineSettings, **options: Any) -> Engine:
    """The engine ``settings.uri`` names; ``options`` go to its constructor (e.g. Spark ``conf``).

    Nothing starts until the first call (the Spark session is created lazily).
    """
    uri = settings.uri
    if uri == "local":
        from sparkhu.engine.local import LocalEngine

        return LocalEngine(settings.workers, **options)
    if uri.startswith(("local[", "spark://")):
        from sparkhu.engine.spark import SparkEngine

        conf: Mapping[str, str] = options.pop("conf", None) or {}
        return SparkEngine(uri, conf=conf, **options)
    raise ConfigError(
        f"engine.uri: unsupported engine {uri!r}; expected local, local[N], local[*] or spark://host:port"
    )
