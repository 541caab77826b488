"""Training policies: those declared in ``sparkhu.toml`` (``[[policies]]``) and those set at run time.

Policies set at run time (``sparkhu policies set``, GraphQL ``setPolicy``) are kept in the catalog's
``policies`` table under the kind ``training``; one of them named like a declared policy overrides
it. A series follows the policy whose ``series`` glob matches it with the longest pattern (ties:
the first name), so ``ampds2/electricity/WHE.P`` beats ``ampds2/*`` beats ``*``.

>>> from sparkhu.config import TrainingPolicy
>>> broad, narrow = TrainingPolicy.of({"name": "all"}), TrainingPolicy.of({"name": "p", "series": "a/b/*"})
>>> policy_for("a/b/c", [broad, narrow]).name, policy_for("x/y/z", [broad, narrow]).name
('p', 'all')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from sparkhu.config import TrainingPolicy
from sparkhu.errors import ConfigError, NotFoundError
from sparkhu.storage.catalog import Catalog

KIND = "training"
"""The ``kind`` of training policies in the catalog's ``policies`` table."""


@dataclass(frozen=True)
class PolicyEntry:
    """A policy and where it comes from: ``sparkhu.toml`` or ``catalog`` (set at run time)."""

    policy: TrainingPolicy
    origin: str


def policy_entries(catalog: Catalog, declared: Sequence[TrainingPolicy] = ()) -> list[PolicyEntry]:
    """Every training policy in force, by name (run-time ones override declared ones of the same name)."""
    entries = {p.name: PolicyEntry(p, "sparkhu.toml") for p in declared}
    for row in catalog.policies(KIND):
        entries[row["name"]] = PolicyEntry(
            TrainingPolicy.of(row["body"], f"policy {row['name']!r}"), "catalog"
        )
    return [entries[name] for name in sorted(entries)]


def policies_in_force(catalog: Catalog, declared: Sequence[TrainingPolicy] = ()) -> list[TrainingPolicy]:
    """The policies of :func:`policy_entries`, without their origin."""
    return [entry.policy for entry in policy_entries(catalog, declared)]


def policy_for(series_id: str, policies: Sequence[TrainingPolicy]) -> TrainingPolicy | None:
    """The policy a series follows (see the module docstring); None when no pattern matches it."""
    matching = [p for p in policies if fnmatchcase(series_id, p.series)]
    if not matching:
        return None
    return min(matching, key=lambda p: (-len(p.series), p.name))


def set_policy(catalog: Catalog, fields: Mapping[str, Any] | Any, *, actor: str) -> TrainingPolicy:
    """Validate and save a policy set at run time (audited); :class:`ConfigError` names a bad field."""
    policy = TrainingPolicy.of(fields)
    body = policy.model_dump(mode="json")
    catalog.set_policy(KIND, policy.name, body)
    catalog.audit(actor, "training_policy.set", f"policy/{policy.name}", body)
    return policy


def delete_policy(
    catalog: Catalog, name: str, *, actor: str, declared: Sequence[TrainingPolicy] = ()
) -> None:
    """Remove a policy set at run time (audited). A policy only declared in ``sparkhu.toml`` is the
    file's to remove (:class:`ConfigError`); an unknown name is :class:`NotFoundError`."""
    if not catalog.delete_policy(KIND, name):
        if any(p.name == name for p in declared):
            raise ConfigError(f"policy {name!r} is declared in sparkhu.toml; remove it there")
        raise NotFoundError(f"no training policy named {name!r}; `sparkhu policies list` shows them")
    catalog.audit(actor, "training_policy.delete", f"policy/{name}", {})
