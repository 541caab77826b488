"""Resource settings of a study (the grid), the price table, and where executors fit (or pend).

A grid file is TOML or JSON::

    [prices]                      # optional; per hour of what the executors reserve
    vcpu_hour = 0.04
    gb_hour = 0.005

    [[setting]]
    name = "2x1c"                 # unique
    executor_cores = 1
    executor_memory = "512m"      # Spark's units: k, m, g
    executor_instances = 2        # with dynamic allocation: the most it may ask for
    dynamic_allocation = false    # optional

A malformed file raises one :class:`~sparkhu.errors.InputError` naming the file, the
setting and the field.

:func:`placement` tells before a run how many of a setting's executors the workers can hold
and, for the rest, which resource (cores or memory) of which worker the request exceeds:

>>> w = [WorkerState("w1", "127.0.0.1", 1, 1, 1024, 1024), WorkerState("w2", "127.0.0.1", 1, 1, 1024, 1024)]
>>> p = placement(Setting("big", executor_cores=2, executor_memory_mb=512, executor_instances=1), w)
>>> p.will_pend, p.fits
(True, 0)
>>> for part in p.reason.split("; "):
...     print(part)
all 1 executor(s) will pend: each asks 2 cores and 512 MB
w1 has 1 core(s) (cores short), w2 has 1 core(s) (cores short)
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sparkhu.errors import InputError

_MEMORY_RE = re.compile(r"^\s*(\d+)\s*([kmgt]?)b?\s*$", re.IGNORECASE)
_MB_PER = {"k": 1 / 1024, "m": 1, "": 1, "g": 1024, "t": 1024 * 1024}
_SETTING_FIELDS = {
    "name", "executor_cores", "executor_memory", "executor_instances", "dynamic_allocation", "conf",
}  # fmt: skip


def parse_memory(text: str | int, *, field: str = "memory") -> int:
    """Megabytes (MiB, as Spark counts) from Spark's memory strings; a bare number is MB.

    >>> parse_memory("512m"), parse_memory("2g"), parse_memory(768)
    (512, 2048, 768)
    >>> parse_memory("2 GB"), parse_memory("lots")
    Traceback (most recent call last):
    ...
    sparkhu.errors.InputError: memory: 'lots' is not a memory size; expected e.g. 512m or 2g
    """
    if isinstance(text, int) and not isinstance(text, bool):
        mb = text
    else:
        match = _MEMORY_RE.match(str(text))
        if match is None:
            raise InputError(f"{text!r} is not a memory size; expected e.g. 512m or 2g", field=field)
        mb = int(int(match.group(1)) * _MB_PER[match.group(2).lower()])
    if mb <= 0:
        raise InputError(f"{text!r} must be more than 0", field=field)
    return mb


@dataclass(frozen=True)
class Prices:
    """What an hour of one vCPU and of one GB of memory costs (editable in the grid file)."""

    vcpu_hour: float = 0.04
    gb_hour: float = 0.005

    def cost(self, vcpu_seconds: float, gb_seconds: float) -> float:
        """The cost of reserving ``vcpu_seconds`` and ``gb_seconds``."""
        return (vcpu_seconds * self.vcpu_hour + gb_seconds * self.gb_hour) / 3600


@dataclass(frozen=True)
class Setting:
    """One point of the grid: what each executor asks for and how many executors."""

    name: str
    executor_cores: int = 1
    executor_memory_mb: int = 512
    executor_instances: int = 1
    dynamic_allocation: bool = False
    conf: Mapping[str, str] = field(default_factory=dict)

    def spark_conf(self) -> dict[str, str]:
        """The Spark properties of this setting (standalone: ``spark.cores.max`` bounds the executors)."""
        conf = {
            "spark.executor.cores": str(self.executor_cores),
            "spark.executor.memory": f"{self.executor_memory_mb}m",
            "spark.cores.max": str(self.executor_cores * self.executor_instances),
        }
        if self.dynamic_allocation:
            conf |= {
                "spark.dynamicAllocation.enabled": "true",
                # no external shuffle service on a local cluster: track shuffle files instead
                "spark.dynamicAllocation.shuffleTracking.enabled": "true",
                "spark.dynamicAllocation.minExecutors": "0",
                "spark.dynamicAllocation.initialExecutors": "1",
                "spark.dynamicAllocation.maxExecutors": str(self.executor_instances),
                "spark.dynamicAllocation.schedulerBacklogTimeout": "1s",
                "spark.dynamicAllocation.executorIdleTimeout": "10s",
            }
        else:
            conf["spark.executor.instances"] = str(self.executor_instances)
        return conf | dict(self.conf)

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (for JSON between the study and its runs)."""
        return {
            "name": self.name,
            "executor_cores": self.executor_cores,
            "executor_memory": f"{self.executor_memory_mb}m",
            "executor_instances": self.executor_instances,
            "dynamic_allocation": self.dynamic_allocation,
            "conf": dict(self.conf),
        }


@dataclass(frozen=True)
class Grid:
    """The settings of a study and its price table."""

    settings: tuple[Setting, ...]
    prices: Prices = Prices()


def setting_from_dict(data: Mapping[str, Any], where: str = "setting") -> Setting:
    """A :class:`Setting` from a mapping, every field checked (errors name ``where`` and the field)."""
    if not isinstance(data, Mapping):
        raise InputError(f"expected a table of fields, got {type(data).__name__}", field=where)
    unknown = sorted(set(data) - _SETTING_FIELDS)
    if unknown:
        raise InputError(
            f"unknown field {unknown[0]!r}; expected {', '.join(sorted(_SETTING_FIELDS))}", field=where
        )
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise InputError("a non-empty string is required", field=f"{where}.name")

    def positive_int(key: str, default: int) -> int:
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"expected a whole number >= 1, got {value!r}", field=f"{where}.{key}")
        return value

    dynamic = data.get("dynamic_allocation", False)
    if not isinstance(dynamic, bool):
        raise InputError(f"expected true or false, got {dynamic!r}", field=f"{where}.dynamic_allocation")
    conf = data.get("conf", {})
    if not isinstance(conf, Mapping) or not all(isinstance(k, str) for k in conf):
        raise InputError("expected a table of Spark properties", field=f"{where}.conf")
    return Setting(
        name=name.strip(),
        executor_cores=positive_int("executor_cores", 1),
        executor_memory_mb=parse_memory(
            data.get("executor_memory", "512m"), field=f"{where}.executor_memory"
        ),
        executor_instances=positive_int("executor_instances", 1),
        dynamic_allocation=dynamic,
        conf={k: str(v) for k, v in conf.items()},
    )


def load_grid(path: str | Path) -> Grid:
    """Read a grid file (``.toml`` or ``.json``); one clear error for anything malformed."""
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(f"cannot read the grid file ({exc.strerror or exc})", source=source) from exc
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise InputError(
            f"not valid {'JSON' if path.suffix == '.json' else 'TOML'}: {exc}", source=source
        ) from exc
    try:
        return grid_from_dict(data)
    except InputError as exc:
        raise InputError(exc.reason, source=source, field=exc.field) from exc


def grid_from_dict(data: Mapping[str, Any]) -> Grid:
    """A :class:`Grid` from the parsed file: ``setting`` (a list of tables) and optional ``prices``."""
    if not isinstance(data, Mapping):
        raise InputError("expected a table with a 'setting' list", field="grid")
    unknown = sorted(set(data) - {"setting", "prices"})
    if unknown:
        raise InputError(
            f"unknown key {unknown[0]!r}; expected 'setting' and optionally 'prices'", field="grid"
        )
    raw = data.get("setting")
    if not isinstance(raw, Sequence) or isinstance(raw, str) or not raw:
        raise InputError("at least one [[setting]] is required", field="setting")
    settings = tuple(setting_from_dict(item, f"setting[{i}]") for i, item in enumerate(raw))
    names = [s.name for s in settings]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise InputError(f"the name {name!r} is used twice", field=f"setting[{i}].name")
    prices_raw = data.get("prices", {})
    if not isinstance(prices_raw, Mapping):
        raise InputError("expected a table", field="prices")
    prices = {}
    for key, value in prices_raw.items():
        if key not in ("vcpu_hour", "gb_hour"):
            raise InputError(f"unknown price {key!r}; expected vcpu_hour or gb_hour", field="prices")
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise InputError(f"expected a number >= 0, got {value!r}", field=f"prices.{key}")
        prices[key] = float(value)
    return Grid(settings, Prices(**prices))


# ---------------------------------------------------------------------- where executors fit


@dataclass(frozen=True)
class WorkerState:
    """One worker as the master reports it: id, host, cores and memory (MB), total and free."""

    id: str
    host: str
    cores: int
    cores_free: int
    memory_mb: int
    memory_free_mb: int
    alive: bool = True

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WorkerState:
        """From one entry of the master's ``/json`` ``workers`` list."""
        return cls(
            id=str(data.get("id", "")),
            host=str(data.get("host", "")),
            cores=int(data.get("cores", 0)),
            cores_free=int(data.get("coresfree", data.get("cores", 0) - data.get("coresused", 0))),
            memory_mb=int(data.get("memory", 0)),
            memory_free_mb=int(data.get("memoryfree", data.get("memory", 0) - data.get("memoryused", 0))),
            alive=data.get("state", "ALIVE") == "ALIVE",
        )


@dataclass(frozen=True)
class Placement:
    """How many of a setting's executors the workers hold, and why the rest pend."""

    setting: str
    requested: int
    fits: int
    reason: str

    @property
    def will_pend(self) -> bool:
        """No executor can start: the run would wait forever."""
        return self.fits == 0

    @property
    def pending(self) -> int:
        """Executors that will wait for resources."""
        return self.requested - self.fits


def placement(setting: Setting, workers: Sequence[WorkerState], *, free: bool = False) -> Placement:
    """Where ``setting``'s executors fit on ``workers`` (their total resources, or ``free`` ones)."""
    cores, memory = setting.executor_cores, setting.executor_memory_mb
    requested = setting.executor_instances
    fits, notes = 0, []
    for w in workers:
        have_cores = w.cores_free if free else w.cores
        have_mb = w.memory_free_mb if free else w.memory_mb
        by_cores, by_memory = have_cores // cores, have_mb // memory
        fits += min(by_cores, by_memory)
        short = [what for what, n in (("cores", by_cores), ("memory", by_memory)) if n == 0]
        label = "free " if free else ""
        if short:
            has = f"{w.id} has {have_cores} {label}core(s)"
            if short != ["cores"]:
                has += f" and {have_mb} MB {label}memory"
            notes.append(f"{has} ({' and '.join(short)} short)")
        else:
            limit = "cores" if by_cores <= by_memory else "memory"
            notes.append(f"{w.id} holds {min(by_cores, by_memory)} ({limit} bound)")
    fits = min(fits, requested)
    ask = f"each asks {cores} cores and {memory} MB"
    if not workers:
        return Placement(
            setting.name, requested, 0, f"all {requested} executor(s) will pend: no alive worker"
        )
    if fits == 0:
        reason = f"all {requested} executor(s) will pend: {ask}; " + ", ".join(notes)
    elif fits < requested:
        reason = f"{requested - fits} of {requested} executor(s) will pend: {ask}; " + ", ".join(notes)
    else:
        reason = f"all {requested} executor(s) fit"
    return Placement(setting.name, requested, fits, reason)
