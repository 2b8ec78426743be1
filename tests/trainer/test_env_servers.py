"""``data.env_servers``: training runs its episodes on env-server replicas (real ``resrl serve env`` processes
on loopback), and a replica killed mid-episode costs only the episodes it held (``infra_error``, masked) while
training goes on with the other."""

from __future__ import annotations

import threading
import time

import httpx

from resrl.trainer.config import validate_config
from resrl.trainer.loop import Trainer
from tests.soak.procs import serve
from tests.trainer.conftest import base_config


def _sessions(url: str) -> int:
    return httpx.get(f"{url}/healthz", timeout=5).json()["sessions"]


def test_training_on_replicas_survives_a_replica_killed_mid_episode(warm_model, tmp_path):
    args = ("--import", "tests.trainer.parity_env", "--envs", "test/slow-parity")
    with serve("env", *args, log_dir=tmp_path) as doomed, serve("env", *args, log_dir=tmp_path) as survivor:
        raw = base_config(
            warm_model,
            tmp_path / "run",
            data={"envs": ["test/slow-parity"], "env_servers": [doomed.url, survivor.url]},
            train={"eval_at_start": False, "eval_every": 0},
        )
        trainer = Trainer(validate_config(raw))
        seen: dict[str, int] = {}

        def kill_once_busy() -> None:  # the first steps nap 2 s in the server: kill it while they do
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                seen["doomed"] = _sessions(doomed.url)
                if seen["doomed"] > 0:
                    time.sleep(0.5)
                    doomed.kill()
                    return
                time.sleep(0.05)

        killer = threading.Thread(target=kill_once_busy)
        try:
            killer.start()
            first = trainer.train_step(1)
            killer.join(timeout=130)
            second = trainer.train_step(2)
        finally:
            trainer.close()
        episodes = raw["rollout"]["n"] * raw["train"]["tasks_per_step"]
        assert seen["doomed"] > 0 and doomed.proc.poll() is not None
        assert 0 < first["infra_errors"] < episodes  # the doomed replica's episodes, not the survivor's
        assert first["episodes"] == episodes and "grad_norm" in first  # it trained on the rest
        assert second["infra_errors"] == 0 and "grad_norm" in second  # every new session on the survivor
        assert _sessions(survivor.url) == 0  # every session it held was closed
