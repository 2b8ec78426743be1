"""The collector with the real ``hf`` backend: multi-turn episodes, exact log-probs, limits and failures."""

from __future__ import annotations

import threading
import time

import pytest
import torch
from lookup_env import ENV_ID, LookupEnv

import resrl
from resrl.rollout import Collector, HFPolicy, SamplingParams, ScriptedPolicy, score_logprobs


@pytest.fixture(scope="module")
def policy(trained_dir):
    return HFPolicy(str(trained_dir), batch_size=16)


@pytest.fixture(scope="module")
def trajectories(policy):
    tasks = LookupEnv.generate_tasks("test", 4, 3)
    collector = Collector(
        policy, ENV_ID, max_turns=4, max_tokens=400, max_new_tokens_per_turn=64, temperature=1.0, seed=5, progress=False
    )
    return tasks, collector.collect(tasks, n=4)


def test_groups_and_record_invariants(trajectories, policy):
    tasks, trajs = trajectories
    assert len(trajs) == 16
    assert [t.group_id for t in trajs] == [t.id for t in tasks for _ in range(4)]
    stops = set(policy.tokenizer.convert_tokens_to_ids(["<|im_end|>"]))
    for t in trajs:
        assert t.infra_error is None and t.env_id == ENV_ID and t.task_id == t.group_id
        assert len(t.response_ids) == len(t.loss_mask) == len(t.logprobs) <= 400
        assert all(lp == 0.0 for lp, m in zip(t.logprobs, t.loss_mask, strict=True) if not m)
        assert all(lp <= 0.0 for lp in t.logprobs)
        assert t.loss_mask[0] == 1 and t.turns <= 4
        # Each policy segment ends in a stop token unless the episode was cut for length.
        segments = _segments(t)
        assert len(segments) == sum(m["role"] == "assistant" for m in t.messages)
        for seg in segments[:-1]:
            assert seg[-1] in stops
    assert any(t.turns >= 2 for t in trajs), "the trained tiny model should produce multi-turn episodes"


def test_rescoring_reproduces_logprobs_including_later_turns(trajectories, policy):
    _, trajs = trajectories
    checked_late = 0
    for t in trajs:
        fresh = score_logprobs(policy.model, t.prompt_ids, t.response_ids)
        first_obs = t.loss_mask.index(0) if 0 in t.loss_mask else len(t.loss_mask)
        for i, (old, new, m) in enumerate(zip(t.logprobs, fresh, t.loss_mask, strict=True)):
            if m:
                assert abs(old - new) < 1e-3, (t.task_id, i, old, new)
                checked_late += i > first_obs
    assert checked_late > 0, "no policy token after an observation was checked"


def test_observation_tokens_are_the_template_delta(trajectories, policy):
    _, trajs = trajectories
    t = next(t for t in trajs if t.turns >= 2 and t.finish_reason == "stop")
    tok = policy.tokenizer
    text = tok.decode(t.prompt_ids + t.response_ids)
    # Re-rendering the conversation (generated text re-tokenized) gives the same text, so the observation
    # tokens between the turns are exactly the template's.
    rendered = tok.apply_chat_template(t.messages, tools=LookupEnv.tools.schemas(), tokenize=False)
    assert rendered == text + "\n"


def test_greedy_is_deterministic_and_batched_equals_single(policy):
    prompts = [[5, 6, 7], [9, 10, 11, 12, 13, 14]]
    greedy = SamplingParams(temperature=0.0, max_new_tokens=12)
    both = policy.generate(prompts, greedy)
    alone = [policy.generate([p], greedy)[0] for p in prompts]
    assert [g.token_ids for g in both] == [g.token_ids for g in alone]
    for a, b in zip(both, alone, strict=True):
        assert max(abs(x - y) for x, y in zip(a.logprobs, b.logprobs, strict=True)) < 1e-4


def test_temperature_logprobs_are_of_the_scaled_distribution(policy):
    prompt = [5, 6, 7, 8]
    g = policy.generate([prompt], SamplingParams(temperature=0.7, max_new_tokens=8, seed=1))[0]
    expected = score_logprobs(policy.model, prompt, g.token_ids, temperature=0.7)
    assert max(abs(a - b) for a, b in zip(g.logprobs, expected, strict=True)) < 1e-3
    assert (
        max(abs(a - b) for a, b in zip(g.logprobs, score_logprobs(policy.model, prompt, g.token_ids), strict=True))
        > 1e-3
    )


def test_update_weights_changes_outputs(tiny_dir):
    pol = HFPolicy(str(tiny_dir))
    prompt = [5, 6, 7, 8]
    before = pol.generate([prompt], SamplingParams(temperature=1.0, max_new_tokens=4, seed=0))[0]
    name, weight = next((n, p) for n, p in pol.model.named_parameters() if "embed" in n)
    pol.update_weights([(name, torch.randn_like(weight))])
    after = score_logprobs(pol.model, prompt, before.token_ids)
    assert max(abs(a - b) for a, b in zip(before.logprobs, after, strict=True)) > 1e-2
    with pytest.raises(KeyError, match="no parameter"):
        pol.update_weights([("nope", weight)])


def _segments(t):
    segs, cur = [], []
    for tok, m in zip(t.response_ids, t.loss_mask, strict=True):
        if m:
            cur.append(tok)
        elif cur:
            segs.append(cur)
            cur = []
    return [*segs, cur] if cur else segs


class _BrokenEnv(LookupEnv):
    """Crashes on step (an infrastructure fault) for tasks whose key is 'apple'."""

    def _act(self, action):
        if self.task.metadata["key"] == "apple":
            raise RuntimeError("backend down")
        if self.task.metadata["key"] == "river":
            time.sleep(3)
        result = super()._act(action)
        if self.task.metadata["key"] == "cloud":
            result.info["infra_error"] = "database unavailable"
        return result


def _task(key):
    return next(t for t in LookupEnv.generate_tasks("train", 200, 0) if t.metadata["key"] == key)


def test_infra_failures_are_flagged_not_scored(policy):
    resrl.register("test/broken", _BrokenEnv)
    tasks = [_task(k) for k in ("apple", "river", "cloud", "otter")]
    hermes = resrl.get_format("hermes")

    def respond(prompt: str) -> str:  # always calls the tool first, so every env gets a step
        key = prompt.split("stored under '")[1].split("'")[0]
        return hermes.render("", [resrl.ToolCall(name="lookup", arguments={"key": key})])

    scripted = ScriptedPolicy(policy.tokenizer, respond)
    collector = Collector(scripted, "test/broken", max_turns=2, episode_timeout=60, progress=False)
    fast = [t for t in tasks if t.metadata["key"] != "river"]
    by_key = {t.metadata["key"]: traj for t, traj in zip(fast, collector.collect(fast, 1), strict=True)}
    assert by_key["apple"].finish_reason == "error" and "backend down" in by_key["apple"].infra_error
    assert by_key["cloud"].finish_reason == "error" and "database unavailable" in by_key["cloud"].infra_error
    assert by_key["otter"].infra_error is None and by_key["otter"].finish_reason == "max_turns"
    # A step that hangs past the episode timeout ends the episode as an infrastructure timeout.
    slow = Collector(scripted, "test/broken", max_turns=2, episode_timeout=1.0, progress=False)
    (river,) = slow.collect([_task("river")], 1)
    assert river.finish_reason == "timeout" and "timeout" in river.infra_error


def test_limits(policy):
    tasks = LookupEnv.generate_tasks("test", 2, 0)
    short = Collector(policy, ENV_ID, max_turns=1, max_new_tokens_per_turn=8, max_tokens=8, progress=False)
    for t in short.collect(tasks, 2):
        assert t.turns <= 1 and len(t.response_ids) <= 8
        assert t.finish_reason in {"stop", "max_turns", "length"}
    with pytest.raises(ValueError, match="positive"):
        Collector(policy, ENV_ID, max_turns=0)


def test_prefix_kv_store_is_used_and_dropped_when_weights_change(trajectories, policy):
    _, trajs = trajectories
    store = policy.store
    assert store.entries, "finished generations should leave their KV for the next turn"
    later = next(t for t in trajs if t.turns >= 2)
    second_prompt = later.prompt_ids + later.response_ids[: later.loss_mask.index(1, later.loss_mask.index(0))]
    store.put(tuple(second_prompt[:-3]), next(iter(store.entries.values())))
    assert store.longest_prefix(tuple(second_prompt))[0] == len(second_prompt) - 3
    with torch.no_grad():  # an optimizer step changes parameters in place
        next(policy.model.parameters()).add_(0.0)
    assert store.longest_prefix(tuple(second_prompt)) == (0, None) and not store.entries


class _FastBrokenEnv(_BrokenEnv):
    fast_step = True  # stepped in the collector's thread, not the pool


def test_fast_step_envs_step_inline_and_their_failures_are_still_flagged(policy):
    resrl.register("test/fast_broken", _FastBrokenEnv)
    tasks = [_task(k) for k in ("apple", "otter")]
    hermes = resrl.get_format("hermes")
    steppers = set()

    def respond(prompt: str) -> str:
        key = prompt.split("stored under '")[1].split("'")[0]
        return hermes.render("", [resrl.ToolCall(name="lookup", arguments={"key": key})])

    def factory():
        env = resrl.make("test/fast_broken")
        step = env.step

        def recorded(action):
            steppers.add(threading.current_thread().name)
            return step(action)

        env.step = recorded
        return env

    scripted = ScriptedPolicy(policy.tokenizer, respond)
    apple, otter = Collector(scripted, factory, max_turns=2, progress=False).collect(tasks, 1)
    assert apple.finish_reason == "error" and "backend down" in apple.infra_error
    assert otter.infra_error is None and otter.turns == 2
    assert steppers == {threading.current_thread().name}
