"""A chat template or tokenizer error in one episode makes that episode ``infra_error``; the batch completes.

The template raises on two messages only: an opening user message containing ``BOOM`` (the fault comes at
reset, rendering the prompt) and the tool result ``1280`` (the fault comes after a step, rendering the
observation). Both drivers are exercised: lock-step (a policy without a stream) and continuous batching (a
policy with ``open_stream``, here the real ``hf`` backend and a streaming gold player).
"""

from __future__ import annotations

import pytest
from lookup_env import _TABLE, ENV_ID, LookupEnv

from resrl import Task
from resrl.models.templates import load_template
from resrl.rollout import Collector, GoldPolicy, HFPolicy

GUARD = (
    "{%- for m in messages %}"
    "{%- if m.role == 'user' and 'BOOM' in m.content %}{{ raise_exception('cannot render BOOM') }}{% endif %}"
    "{%- if m.role == 'tool' and m.content == '1280' %}{{ raise_exception('cannot render 1280') }}{% endif %}"
    "{%- endfor %}"
)


def _tasks() -> list[Task]:
    keys = ["apple", "stone", "otter"]  # stone's value is 1280: its tool result breaks the template
    tasks = [
        Task(
            id=f"fault-{k}",
            env_id=ENV_ID,
            answer=_TABLE[k],
            metadata={"key": k},
            messages=[{"role": "user", "content": f"What value is stored under '{k}'? Use the tool."}],
            tools=LookupEnv.tools.schemas(),
        )
        for k in keys
    ]
    boom = tasks[0].model_copy(update={"id": "fault-boom"})
    boom.messages = [{"role": "user", "content": "BOOM: what value is stored under 'apple'?"}]
    return [boom, *tasks]


class StreamingGold(GoldPolicy):
    """The gold player behind a generation stream, so the collector runs its continuous-batching driver."""

    def open_stream(self, seed=None):
        policy, queue = self, {}

        class Stream:
            def add(self, key, prompt, sampling):
                queue[key] = (prompt, sampling)

            def step(self):
                done = [(k, policy.generate([p], [s])[0]) for k, (p, s) in queue.items()]
                queue.clear()
                return done

            def busy(self):
                return bool(queue)

            def abort(self, key):
                queue.pop(key, None)

            def release(self, key):
                queue.pop(key, None)

        return Stream()


@pytest.fixture(scope="module")
def guarded(base_tokenizer):
    import copy

    tok = copy.deepcopy(base_tokenizer)
    tok.chat_template = GUARD + load_template("chatml")
    return tok


@pytest.mark.parametrize("policy_cls", [GoldPolicy, StreamingGold], ids=["lock-step", "streaming"])
def test_a_template_fault_masks_one_episode_and_the_batch_completes(guarded, policy_cls):
    tasks = _tasks()
    trajs = Collector(policy_cls(guarded), ENV_ID, max_turns=4, progress=False).collect(tasks, 1)
    by_id = {t.task_id: t for t in trajs}
    assert by_id["fault-boom"].infra_error and "cannot render BOOM" in by_id["fault-boom"].infra_error
    assert by_id["fault-boom"].response_ids == []  # never reached the engine
    stone = by_id["fault-stone"]
    assert stone.infra_error and "cannot render 1280" in stone.infra_error and stone.finish_reason == "error"
    assert sum(stone.loss_mask) > 0  # its first turn was generated before the fault
    for key in ("apple", "otter"):
        ok = by_id[f"fault-{key}"]
        assert ok.infra_error is None and ok.reward == 1.0 and ok.finish_reason == "stop"


def test_a_template_fault_with_the_hf_backend(tiny_dir):
    policy = HFPolicy(str(tiny_dir), batch_size=4)
    policy.tokenizer.chat_template = GUARD + load_template("chatml")
    tasks = _tasks()
    trajs = Collector(
        policy, ENV_ID, max_turns=2, max_tokens=64, max_new_tokens_per_turn=8, seed=0, progress=False
    ).collect(tasks, 2)
    assert [t.task_id for t in trajs] == [t.id for t in tasks for _ in range(2)]
    boom = [t for t in trajs if t.task_id == "fault-boom"]
    assert all(t.infra_error and "cannot render BOOM" in t.infra_error for t in boom)
    others = [t for t in trajs if t.task_id != "fault-boom"]
    assert all(sum(t.loss_mask) > 0 for t in others)  # the rest of the batch was generated
