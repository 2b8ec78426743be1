"""``kill -9`` of one of two ``resrl serve env`` replicas in the middle of a collection: the episodes it held end as
``infra_error`` (the trainer masks them), the others finish, and later episodes all go to the survivor."""

from __future__ import annotations

import logging
import threading

import httpx
import pytest

from resrl.client import AsyncRemoteEnv, RemoteEnv
from resrl.models import build_tokenizer
from resrl.rollout import Collector, ScriptedPolicy
from tests.soak.envs import NAP_ID, NapEnv
from tests.soak.procs import serve

pytestmark = pytest.mark.soak


class TrackedRemoteEnv(RemoteEnv):
    """Remembers which server each episode's session opened on."""

    opened: dict[tuple[str, int], str]

    def reset(self, *, seed=None, options=None):
        out = super().reset(seed=seed, options=options)
        self.opened[options["task"].id, seed] = self.url
        return out


class TrackedAsyncRemoteEnv(AsyncRemoteEnv):
    opened: dict[tuple[str, int], str]

    async def reset(self, *, seed=None, options=None):
        out = await super().reset(seed=seed, options=options)
        self.opened[options["task"].id, seed] = self.url
        return out


def _sessions(url: str) -> int:
    return httpx.get(f"{url}/healthz").json()["sessions"]


@pytest.mark.parametrize(
    ("client", "second_nap"),
    [(TrackedRemoteEnv, 0.0), (TrackedAsyncRemoteEnv, 3.0)],
    ids=["sync-killed-between-steps", "async-killed-during-a-step"],
)
def test_a_killed_replica_costs_only_its_episodes(tmp_path, client, second_nap, caplog):
    """Turn 1 naps 0 s, turn 2 ``second_nap`` s, turn 3 says done. The replica dies as the second turns are
    generated: before its steps arrive (refused), or while they nap in it (the connection breaks)."""
    args = ("--import", "tests.soak.envs", "--envs", NAP_ID)
    with serve("env", *args, log_dir=tmp_path) as doomed, serve("env", *args, log_dir=tmp_path) as survivor:
        urls = [doomed.url, survivor.url]
        client.opened = {}
        killed = threading.Event()

        def respond(prompt: str) -> str:
            steps_done = prompt.count("napped")
            if steps_done == 1 and not killed.is_set():
                killed.set()
                # between steps: dead before the engine returns; during: dead while the second steps nap
                threading.Timer(second_nap / 3, doomed.kill).start()
            return ["nap 0", f"nap {second_nap}", "done"][min(steps_done, 2)]

        policy = ScriptedPolicy(build_tokenizer("chatml"), respond)
        collector = Collector(policy, lambda: client(urls, NAP_ID), max_turns=4, progress=False)
        tasks = NapEnv.generate_tasks("train", 4, 0)
        first = collector.collect(tasks, 2)

        assert killed.is_set() and doomed.proc.poll() is not None
        where = [client.opened[t.task_id, t.metadata["sample"]] for t in first]
        assert set(where) == set(urls)  # the balancer spread them over both
        for t, url in zip(first, where, strict=True):
            if url == doomed.url:  # masked, not scored: the fault was ours
                assert t.infra_error and "EnvServerError" in t.infra_error and t.finish_reason == "error"
                assert t.turns == 1
            else:
                assert t.infra_error is None and (t.reward, t.turns, t.finish_reason) == (1.0, 3, "stop")

        client.opened = {}
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="resrl.client"):
            second = collector.collect(tasks, 2)
        assert [t.infra_error for t in second] == [None] * 8
        assert [t.reward for t in second] == [1.0] * 8
        assert set(client.opened.values()) == {survivor.url}
        # new sessions went straight to the survivor: no attempt on the dead replica had to be retried
        assert [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()] == []
        assert _sessions(survivor.url) == 0
