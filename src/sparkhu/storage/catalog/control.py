"""The controller's half of the catalog: the champion history and the controller's cycles.

:class:`ControlStore` is a base of :class:`~sparkhu.storage.catalog.Catalog`. The champion history
is append-only (no method changes or removes a row): each row says which version became a model's
champion, when, by whom and why; the next row of the same model says until when. A row written
for a controller's cycle (``action_id``) is written once per event, so a step replayed after a
crash adds nothing. Cycles (``control_actions``) move from state to state by compare-and-set
(:meth:`ControlStore.move_action`), so two controllers, or one restarted, never take a step twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sparkhu.errors import NotFoundError
from sparkhu.storage.catalog import schema
from sparkhu.storage.catalog.engine import dialect_insert, read_tx, write_tx
from sparkhu.storage.catalog.records import check_json, check_limit, check_text
from sparkhu.timeaxis import from_us, now_us

CONTROL_EVENTS = (
    "retrain.", "challenger.", "promotion.", "champion.", "rollback.", "model.", "cycle.", "training_policy.",
)  # fmt: skip
"""Prefixes of the audit log's actions that are the controller's events (decisions, moves, policies)."""
OPEN_STATES = ("planned", "training", "shadowing", "promoting", "swapping", "watching", "rolling_back")
"""States of a cycle still in progress; the others (promoted, rejected, failed, rolled_back) are final."""


class ControlStore:
    """Champion history and controller cycles (see the module docstring)."""

    _engine: Engine

    # ------------------------------------------------------------------ champion history
    def record_champion(
        self,
        name: str,
        series_id: str | None,
        version: int,
        *,
        previous: int | None,
        event: str,
        actor: str,
        reason: str,
        numbers: Mapping[str, Any] | None = None,
        action_id: int | None = None,
    ) -> bool:
        """Append that ``version`` became ``name``'s champion (``event``: train, promote, rollback);
        False when the row of this ``action_id`` and ``event`` is already there."""
        check_text(name, "model name")
        check_text(actor, "actor")
        row = {
            "series_id": series_id or name,
            "name": name,
            "version": int(version),
            "previous_version": None if previous is None else int(previous),
            "event": event,
            "at": now_us(),
            "actor": actor,
            "reason": reason,
            "numbers": check_json(dict(numbers or {}), f"numbers of {event} {name}"),
            "action_id": action_id,
        }
        history = schema.champion_history
        stmt = dialect_insert(self._engine, history).on_conflict_do_nothing().returning(history.c.id)
        with write_tx(self._engine, f"recording champion {name} v{version}") as conn:
            return (
                conn.execute(stmt, row).first() is not None
            )  # RETURNING: rowcount is not kept on every driver

    def champion_history(self, name: str, *, limit: int = 1000) -> list[dict[str, Any]]:
        """The champions of ``name``, oldest first, with ``since`` and ``until`` (None: still champion)."""
        check_limit(limit)
        h = schema.champion_history
        query = sa.select(h).where(h.c.name == name).order_by(h.c.id.desc()).limit(limit)
        with read_tx(self._engine, f"reading the champion history of {name}") as conn:
            rows = [dict(row._mapping) for row in conn.execute(query)][::-1]
        ats = [row.pop("at") for row in rows]
        for row, at, until in zip(rows, ats, [*ats[1:], None][: len(ats)], strict=True):
            row["since"], row["until"] = from_us(at), None if until is None else from_us(until)
        return rows

    # ------------------------------------------------------------------ controller cycles
    def open_action(
        self,
        series_id: str,
        *,
        trigger: str,
        state: str,
        actor: str,
        policy: str | None = None,
        champion_version: int | None = None,
        challenger_version: int | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> int:
        """Start a cycle for ``series_id`` in ``state``; its id."""
        now = now_us()
        row = {
            "series_id": series_id,
            "policy": policy,
            "trigger": trigger,
            "state": state,
            "champion_version": champion_version,
            "challenger_version": challenger_version,
            "actor": actor,
            "detail": check_json(dict(detail or {}), f"detail of a {trigger} cycle"),
            "created_at": now,
            "updated_at": now,
        }
        with write_tx(self._engine, f"starting a {trigger} cycle of {series_id}") as conn:
            result = conn.execute(
                sa.insert(schema.control_actions).returning(schema.control_actions.c.id), row
            )
            return int(result.scalar_one())

    def move_action(
        self,
        action_id: int,
        expected: str,
        state: str,
        *,
        audit: tuple[str, str, str, Mapping[str, Any]] | None = None,
        **values: Any,
    ) -> bool:
        """Move cycle ``action_id`` from ``expected`` to ``state`` (and set ``values``; ``detail`` is merged
        into the stored one); False when it was not in ``expected`` (someone else moved it). ``audit``
        (actor, action, target, detail): the audit entry of the move, in the same transaction, so a
        crash loses neither and a replayed step writes neither twice."""
        a = schema.control_actions
        with write_tx(self._engine, f"moving cycle {action_id} to {state}") as conn:
            found = conn.execute(sa.select(a.c.state, a.c.detail).where(a.c.id == action_id)).first()
            if found is None or found.state != expected:
                return False
            if "detail" in values:
                values["detail"] = check_json(
                    {**found.detail, **values["detail"]}, f"detail of cycle {action_id}"
                )
            stmt = sa.update(a).where(a.c.id == action_id, a.c.state == expected)
            if conn.execute(stmt.values(state=state, updated_at=now_us(), **values)).rowcount == 0:
                return False
            if audit is not None:
                actor, action, target, detail = audit
                entry = {"at": now_us(), "actor": actor, "action": action, "target": target}
                conn.execute(
                    sa.insert(schema.audit_log), [{**entry, "detail": check_json(dict(detail), action)}]
                )
            return True

    def action(self, action_id: int) -> dict[str, Any]:
        """One cycle by id; :class:`NotFoundError` when there is none."""
        a = schema.control_actions
        with read_tx(self._engine, f"reading cycle {action_id}") as conn:
            row = conn.execute(sa.select(a).where(a.c.id == action_id)).first()
        if row is None:
            raise NotFoundError(f"no controller cycle #{action_id}")
        return dict(row._mapping)

    def actions(
        self,
        *,
        series_id: str | None = None,
        states: Sequence[str] | None = None,
        since_us: int | None = None,
        policy: str | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        """Cycles, newest first (times as µs integers)."""
        check_limit(limit)
        a = schema.control_actions
        query = sa.select(a).order_by(a.c.id.desc()).limit(limit)
        if series_id is not None:
            query = query.where(a.c.series_id == series_id)
        if states is not None:
            query = query.where(a.c.state.in_(list(states)))
        if since_us is not None:
            query = query.where(a.c.created_at >= since_us)
        if policy is not None:
            query = query.where(a.c.policy == policy)
        with read_tx(self._engine, "listing the controller's cycles") as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    # ------------------------------------------------------------------ the controller's events
    def control_events(self, after_id: int | None = None, *, limit: int = 1000) -> list[dict[str, Any]]:
        """The controller's audit entries (:data:`CONTROL_EVENTS`) after the entry ``after_id``, oldest
        first; with ``after_id`` None, none (the newest id is then :meth:`last_audit_id`)."""
        check_limit(limit)
        if after_id is None:
            return []
        a = schema.audit_log
        kinds = sa.or_(*(a.c.action.startswith(prefix, autoescape=True) for prefix in CONTROL_EVENTS))
        query = sa.select(a).where(a.c.id > after_id, kinds).order_by(a.c.id).limit(limit)
        with read_tx(self._engine, "reading the controller's events") as conn:
            rows = [dict(row._mapping) for row in conn.execute(query)]
        for row in rows:
            row["at"] = from_us(row["at"])
        return rows

    def last_audit_id(self) -> int:
        """The id of the newest audit entry (0 when the log is empty)."""
        a = schema.audit_log
        with read_tx(self._engine, "reading the audit log") as conn:
            return int(conn.execute(sa.select(sa.func.max(a.c.id))).scalar() or 0)
