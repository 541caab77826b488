"""A controller process for the kill test: a predictor, its champion server and the controller over a
home, in rounds until the home's cycle ends; with ``--kill-after N`` it kills itself (SIGKILL) right
after its N-th durable control write (a cycle moved, a champion history row, the champion alias set).

Prints ``final <state> <label served>`` and exits 0 when the cycle ended, 1 when the stream ran dry.
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import sys
from pathlib import Path
from typing import Any

SERIES, TOPIC = "ctl/kill/P", "ctl_kill"


def _count_writes(kill_after: int) -> None:
    """Make the N-th durable control write the process's last act."""
    from mlflow.tracking import MlflowClient

    from sparkhu.storage.catalog import Catalog

    done = {"writes": 0}

    def counted(cls: Any, name: str) -> None:
        original = getattr(cls, name)

        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            result = original(*args, **kwargs)
            if name == "set_registered_model_alias" and args[2] != "champion":
                return result
            done["writes"] += 1
            if done["writes"] == kill_after:
                sys.stdout.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            return result

        setattr(cls, name, wrapper)

    for cls, name in (
        (Catalog, "move_action"),
        (Catalog, "record_champion"),
        (MlflowClient, "set_registered_model_alias"),
    ):
        counted(cls, name)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("home", type=Path)
    parser.add_argument("--kill-after", type=int, default=0)
    args = parser.parse_args()
    if args.kill_after:
        _count_writes(args.kill_after)

    from sparkhu.app.runtime import Runtime
    from sparkhu.config import Settings
    from sparkhu.control.controller import Controller
    from sparkhu.control.evidence import StoreEvidence
    from sparkhu.control.policies import policies_in_force
    from sparkhu.online.champions import ChampionServer
    from sparkhu.online.learner import OnlinePredictor
    from sparkhu.storage.catalog.control import OPEN_STATES

    settings = Settings.load(toml_path=args.home / "sparkhu.toml", env={}, overrides={"home": str(args.home)})
    with Runtime(settings) as runtime:
        predictor = OnlinePredictor(
            runtime.bus, TOPIC, runtime.predictions, horizon=3, window=20, min_points=2, dataset=TOPIC,
            max_messages=8,
        )  # fmt: skip
        server = ChampionServer(runtime.registry, predictor, series=[SERIES], poll_s=1.0)

        def no_retrain(series_id: str, policy: Any) -> int:
            raise AssertionError("the kill test's cycle is past training")

        controller = Controller(
            runtime.catalog,
            runtime.registry,
            StoreEvidence(runtime.predictions, runtime.lake),
            policies=lambda: policies_in_force(runtime.catalog, settings.policies),
            retrain=no_retrain,
            series=predictor.known_series,
            predictor_of=lambda sid: predictor if sid == SERIES else None,
        )
        for _ in range(200):
            predictor.run_once(timeout=0.2)
            server.sync()
            predictor.apply_swaps()
            controller.step()
            (cycle,) = runtime.catalog.actions(series_id=SERIES)
            if cycle["state"] not in OPEN_STATES:
                server.sync()
                predictor.apply_swaps()
                print("final", cycle["state"], predictor.labels.get(SERIES))
                predictor.close()
                return 0
        predictor.close()
    return 1


if __name__ == "__main__":
    sys.exit(main())
