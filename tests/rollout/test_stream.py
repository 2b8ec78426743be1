"""Continuous batching (``HFStream``) and the collector's two drivers: requests joining a running batch get what
they would get alone, episodes rejoin without waiting for the slowest turn, and runs stay reproducible."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap

import pytest
import torch
from lookup_env import ENV_ID, LookupEnv

from resrl.rollout import Collector, HFPolicy, SamplingParams, score_logprobs
from resrl.rollout.kvstore import PrefixKVStore, select_rows, stack_rows


def test_requests_joining_a_running_batch_match_generating_alone(trained_dir):
    policy = HFPolicy(str(trained_dir), batch_size=8)
    greedy = SamplingParams(temperature=0.0, max_new_tokens=10)
    prompts = {0: [5, 6, 7], 1: [9, 10, 11, 12, 13, 14], 2: [20, 21], 3: [30, 31, 32, 33]}
    alone = {k: policy.generate([p], greedy)[0] for k, p in prompts.items()}
    policy.reset_prefix_cache()
    stream = policy.open_stream(seed=0)
    stream.add(0, prompts[0], greedy)
    stream.add(1, prompts[1], greedy)
    done = dict(stream.step())
    for _ in range(3):  # 0 and 1 are mid-generation when 2 and 3 arrive
        done.update(stream.step())
    stream.add(2, prompts[2], greedy)
    stream.add(3, prompts[3], greedy)
    stream.abort(3)
    while stream.busy():
        done.update(stream.step())
    assert set(done) == {0, 1, 2}, "an aborted request must not come back"
    for k in done:
        assert done[k].token_ids == alone[k].token_ids
        assert max(abs(a - b) for a, b in zip(done[k].logprobs, alone[k].logprobs, strict=True)) < 1e-4


def test_a_continued_prompt_reuses_its_kv_and_samples_the_true_distribution(trained_dir):
    policy = HFPolicy(str(trained_dir))
    stream = policy.open_stream(seed=3)
    first = [5, 6, 7, 8]
    stream.add(0, first, SamplingParams(temperature=1.0, max_new_tokens=6))
    (_, g), *_ = _drain(stream)
    longer = first + g.token_ids + [40, 41, 42]
    assert policy.store.longest_prefix(tuple(longer))[0] == len(first) + len(g.token_ids) - 1
    stream.add(1, longer, SamplingParams(temperature=0.8, max_new_tokens=6))
    (_, g2), *_ = _drain(stream)
    expected = score_logprobs(policy.model, longer, g2.token_ids, temperature=0.8)
    assert max(abs(a - b) for a, b in zip(g2.logprobs, expected, strict=True)) < 1e-3


def test_store_keeps_sibling_entries_and_consumes_what_it_hands_out(trained_dir):
    policy = HFPolicy(str(trained_dir))
    kv = [(torch.zeros(1, 3, 4), torch.zeros(1, 3, 4))]  # 96 bytes
    store = PrefixKVStore(policy.model, 250)
    store.put((1, 2, 3), kv)
    store.put((1, 2, 3, 4, 5), kv)  # a sibling sample of the same prompt, further along
    assert (1, 2, 3) in store.entries and store.bytes == 192
    store.discard((1, 2, 3))
    assert list(store.entries) == [(1, 2, 3, 4, 5)] and store.bytes == 96
    store.put((7,), kv)
    store.put((8,), kv)  # over the byte budget: the least recently used entry goes
    assert list(store.entries) == [(7,), (8,)] and store.bytes == 192


def test_stacking_and_selecting_rows_keep_each_rows_kv(trained_dir):
    policy = HFPolicy(str(trained_dir))
    cache_a, attn_a, _ = policy.prefill([[5, 6, 7, 8, 9], [5, 6, 7, 8, 10]])
    cache_b, attn_b, _ = policy.prefill([[11, 12]])
    cache, attn = stack_rows(cache_a, attn_a, cache_b, attn_b)
    assert attn.tolist() == [[1] * 5, [1] * 5, [0, 0, 0, 1, 1]]
    assert torch.equal(cache.layers[0].keys[2, :, 3:], cache_b.layers[0].keys[0])
    attn = select_rows(cache, attn, torch.tensor([2]))  # only the short row is left: its padding goes too
    assert attn.tolist() == [[1, 1]] and cache.layers[0].keys.shape[2] == 2
    assert torch.equal(cache.layers[0].keys[0], cache_b.layers[0].keys[0])


class _Recording:
    """A policy whose stream logs when requests are added and when they finish (in engine steps)."""

    def __init__(self, policy: HFPolicy) -> None:
        self.policy, self.tokenizer, self.events = policy, policy.tokenizer, []

    def generate(self, prompts, sampling):
        return self.policy.generate(prompts, sampling)

    def open_stream(self, seed=None):
        stream, events, steps = self.policy.open_stream(seed), self.events, [0]

        class Logged:
            busy, abort, release = stream.busy, stream.abort, stream.release

            def add(self, key, prompt, sampling):
                events.append(("add", key, steps[0]))
                stream.add(key, prompt, sampling)

            def step(self):
                steps[0] += 1
                done = stream.step()
                events.extend(("done", key, steps[0]) for key, _ in done)
                return done

        return Logged()


def test_episodes_rejoin_while_others_generate(trained_dir):
    policy = _Recording(HFPolicy(str(trained_dir), batch_size=16))
    tasks = LookupEnv.generate_tasks("test", 4, 7)
    kw = dict(max_turns=4, max_tokens=400, max_new_tokens_per_turn=64, temperature=1.0, seed=11, progress=False)
    trajs = Collector(policy, ENV_ID, **kw).collect(tasks, n=4)
    assert sum(t.turns for t in trajs) > len(trajs), "the tiny model should take several turns"
    adds = [(key, step) for kind, key, step in policy.events if kind == "add"]
    dones = [(key, step) for kind, key, step in policy.events if kind == "done"]
    first_done = {}
    for key, step in dones:
        first_done.setdefault(key, step)
    rejoined = [(key, step) for key, step in adds if step > 0]
    # Some episode's next turn entered the batch while another episode's first turn was still generating:
    # no lock-step round boundary held it back.
    assert any(step < max(first_done.values()) for _, step in rejoined)
    policy.policy.reset_prefix_cache()
    again = Collector(policy, ENV_ID, **kw).collect(tasks, n=4)
    assert [t.response_ids for t in again] == [t.response_ids for t in trajs], "a seeded collection repeats"


def test_overlapping_env_steps_keep_trajectories_exact(trained_dir):
    policy = HFPolicy(str(trained_dir), batch_size=16)
    tasks = LookupEnv.generate_tasks("test", 3, 9)
    collector = Collector(
        policy, ENV_ID, max_turns=4, max_tokens=400, max_new_tokens_per_turn=64, overlap_env=True, progress=False
    )
    trajs = collector.collect(tasks, n=3)
    assert all(t.infra_error is None for t in trajs) and any(t.turns >= 2 for t in trajs)
    for t in trajs:
        fresh = score_logprobs(policy.model, t.prompt_ids, t.response_ids)
        assert all(abs(a - b) < 1e-3 for a, b, m in zip(t.logprobs, fresh, t.loss_mask, strict=True) if m)


def _drain(stream):
    done = []
    while stream.busy():
        done += stream.step()
    return done


def test_an_episode_past_its_timeout_is_dropped_from_the_running_batch(tiny_dir):
    policy = HFPolicy(str(tiny_dir), batch_size=8)
    tasks = LookupEnv.generate_tasks("test", 2, 0)
    collector = Collector(
        policy,
        ENV_ID,
        max_turns=2,
        max_tokens=6000,
        max_new_tokens_per_turn=3000,
        temperature=0.0,  # greedy: the untrained model loops without a stop token, so turns run long
        episode_timeout=0.3,
        progress=False,
    )
    trajs = collector.collect(tasks, n=2)
    assert all(t.finish_reason == "timeout" and "exceeded" in t.infra_error for t in trajs)
    # dropped mid-turn: the unfinished turn is not recorded, so no turn ran to its 3,000-token limit
    assert all(len(t.response_ids) < 3000 for t in trajs)


_RSS_AFTER_FREE = textwrap.dedent(
    """
    import sys
    from resrl.rollout import HFPolicy

    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096

    if sys.argv[1] == "policy":
        HFPolicy(sys.argv[2])
    block = b"x" * (256 << 20)  # written, so resident
    high = rss()
    del block
    print(high - rss())
    """
)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="retain_freed_memory tunes glibc's malloc only")
def test_cpu_policy_keeps_freed_memory_in_the_process(tiny_dir):
    """Without the policy glibc gives a freed large block back to the system (the next batch faults in fresh
    zeroed pages); a CPU ``HFPolicy`` has it kept for reuse."""

    def released(mode: str) -> int:
        run = subprocess.run(
            [sys.executable, "-c", _RSS_AFTER_FREE, mode, str(tiny_dir)], capture_output=True, text=True, timeout=120
        )
        assert run.returncode == 0, run.stderr[-2000:]
        return int(run.stdout.split()[-1])

    assert released("plain") > 200 << 20
    assert released("policy") < 16 << 20
