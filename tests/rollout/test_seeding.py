"""Seeded sampling per (collect seed, task, sample, turn): an episode's tokens do not depend on which other
episodes share the batch (so not on how many ranks split the groups), for the ``hf`` batch and stream paths."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from lookup_env import ENV_ID, LookupEnv

from resrl.rollout import Collector, HFPolicy, SamplingParams
from resrl.rollout.seeding import derive_seed, request_seeds

COLLECT = dict(max_turns=4, max_tokens=300, max_new_tokens_per_turn=48, temperature=1.0, progress=False)


class _RoundsOnly:
    """The same hf policy without ``open_stream``: the collector then runs lock-step rounds of batched
    ``generate`` calls (the path the ``openai`` backend takes)."""

    def __init__(self, policy: HFPolicy) -> None:
        self.policy, self.tokenizer, self.model = policy, policy.tokenizer, policy.model

    def generate(self, prompts, sampling):
        return self.policy.generate(prompts, sampling)

    def update_weights(self, named_tensors):
        self.policy.update_weights(named_tensors)


def _episodes(trajectories):
    return {(t.task_id, t.metadata["sample"]): t.response_ids for t in trajectories}


@pytest.fixture(scope="module")
def hf(trained_dir):
    return HFPolicy(str(trained_dir), batch_size=16)


@pytest.mark.parametrize("path", ["stream", "rounds"])
def test_an_episode_samples_the_same_whatever_shares_its_batch(hf, path):
    policy = hf if path == "stream" else _RoundsOnly(hf)
    tasks = LookupEnv.generate_tasks("test", 4, 21)
    collector = Collector(policy, ENV_ID, **COLLECT)
    hf.reset_prefix_cache()
    together = collector.collect(tasks, n=3, seed=7)
    assert any(t.turns >= 2 for t in together), "later turns must be covered too"
    # As two ranks would split the groups: the first two tasks, then the rest in reverse order.
    split = []
    for part in (tasks[:2], tasks[:1:-1]):
        hf.reset_prefix_cache()
        split += collector.collect(part, n=3, seed=7)
    hf.reset_prefix_cache()
    alone = collector.collect(tasks[2:3], n=3, seed=7)
    assert _episodes(split) == _episodes(together)
    assert _episodes(alone).items() <= _episodes(together).items()
    hf.reset_prefix_cache()
    other = collector.collect(tasks, n=3, seed=8)
    assert _episodes(other) != _episodes(together), "the collect seed must matter"


def test_samples_of_a_group_differ_and_a_repeated_task_gets_fresh_samples(tiny_dir):
    # the untrained model: near-uniform over its vocabulary, so equal seeds would be the only way to repeat
    policy = HFPolicy(str(tiny_dir), batch_size=16)
    task = LookupEnv.generate_tasks("test", 1, 5)[0]
    trajs = Collector(policy, ENV_ID, **{**COLLECT, "max_turns": 1}).collect([task, task], n=3, seed=1)
    firsts = [tuple(t.response_ids[:8]) for t in trajs]
    assert len(set(firsts)) == len(firsts), firsts


def test_unseeded_sampling_follows_torchs_global_rng(tiny_dir):
    policy = HFPolicy(str(tiny_dir), batch_size=16)
    tasks = LookupEnv.generate_tasks("test", 2, 5)
    collector = Collector(policy, ENV_ID, **{**COLLECT, "max_turns": 1})

    def run(torch_seed: int, rounds: bool) -> dict:
        torch.manual_seed(torch_seed)
        c = Collector(_RoundsOnly(policy), ENV_ID, **{**COLLECT, "max_turns": 1}) if rounds else collector
        return _episodes(c.collect(tasks, n=2))

    for rounds in (False, True):
        assert run(0, rounds) == run(0, rounds)
        assert run(0, rounds) != run(1, rounds)
    prompt, sp = [5, 6, 7, 8], SamplingParams(temperature=1.0, max_new_tokens=6)
    torch.manual_seed(3)
    first = policy.generate([prompt, prompt], sp)
    torch.manual_seed(3)
    assert policy.generate([prompt, prompt], sp) == first
    assert first[0].token_ids != first[1].token_ids


def test_generate_honours_per_request_seeds(tiny_dir):
    policy = HFPolicy(str(tiny_dir), batch_size=16)
    p, q = [5, 6, 7, 8], [9, 10, 11, 12, 13, 14, 15]

    def sp(seed: int | None) -> SamplingParams:
        return SamplingParams(temperature=1.0, max_new_tokens=12, seed=seed)

    alone = policy.generate([p], [sp(11)])[0]
    batched = policy.generate([q, p, q], [sp(12), sp(11), sp(None)])
    assert batched[1].token_ids == alone.token_ids
    assert max(abs(a - b) for a, b in zip(batched[1].logprobs, alone.logprobs, strict=True)) < 1e-4
    # one shared SamplingParams with a seed: each prompt its own stream, repeatable
    shared = policy.generate([p, p], sp(11))
    assert shared[0].token_ids != shared[1].token_ids
    assert policy.generate([p, p], sp(11)) == shared
    assert request_seeds(sp(11), 2) == [derive_seed(11, 0), derive_seed(11, 1)]
    assert request_seeds([sp(11), sp(None)], 2) == [11, None]


def test_stream_honours_per_request_seeds_whenever_a_request_joins(tiny_dir):
    policy = HFPolicy(str(tiny_dir), batch_size=16)
    p = [5, 6, 7, 8]
    sp = SamplingParams(temperature=1.0, max_new_tokens=10, seed=42)
    alone = policy.generate([p], [sp])[0]
    stream = policy.open_stream(seed=0)
    stream.add(0, [9, 10, 11], SamplingParams(temperature=1.0, max_new_tokens=10, seed=1))
    done = dict(stream.step() + stream.step() + stream.step())
    stream.add(1, p, sp)  # joins a batch that has already decoded three tokens
    while stream.busy():
        done.update(stream.step())
    assert done[1].token_ids == alone.token_ids


def test_derived_seeds_are_stable_across_processes_and_fit_int64():
    parts = (7, "fc/weather", "train-0-3", 0, 2, 1)
    seed = derive_seed(*parts)
    assert 0 <= seed < 2**63
    assert derive_seed(7, "fc/weather", "train-0-3", 0, 2, 2) != seed
    code = f"from resrl.rollout.seeding import derive_seed; print(derive_seed(*{parts!r}))"
    hash_seed = "1" if os.environ.get("PYTHONHASHSEED") != "1" else "2"  # Python's own hash() would differ
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert int(out.stdout) == seed
    with pytest.raises(TypeError, match="seed parts"):
        derive_seed(1.5)


def test_inverse_cdf_sampling_draws_the_softmax_distribution():
    from resrl.rollout.hf import draws, sample

    logits = torch.tensor([[2.0, -30.0, 0.5, 1.0, -1.0, 0.0]]).repeat(40_000, 1)
    temps = torch.full((40_000,), 0.8)
    chosen, logp = sample(logits, temps, draws(40_000, 5))
    probs = torch.softmax(logits[0] / 0.8, -1)
    freq = torch.bincount(chosen, minlength=6).double() / 40_000
    assert (freq - probs).abs().max() < 0.01, (freq, probs)  # 4 standard errors at most
    assert freq[1] == 0  # a token of probability ~1e-17 is never drawn
    assert torch.allclose(logp, torch.log_softmax(logits / 0.8, -1).gather(1, chosen[:, None]).squeeze(1))
    greedy, _ = sample(logits[:2], torch.zeros(2), torch.ones(2))
    assert greedy.tolist() == [0, 0]
