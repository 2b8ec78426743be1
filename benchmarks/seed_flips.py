"""How often batching changes a seeded episode: collect groups all together, then in chunks, and compare.

With per-request seeds (:mod:`resrl.rollout.seeding`) an episode's random numbers do not depend on its batch,
but its logits can: padding, the batch's shape and prefix-cache hits change matmul reductions in the last float
bits, and a token flips where its uniform falls within that much of a boundary of the cumulative distribution.
This collects ``--tasks`` × ``--n`` episodes at once and again ``--chunk`` tasks at a time (as ranks splitting
the groups would), for the ``hf`` stream (continuous batching) and lock-step rounds paths, and prints the
episodes that differ, the policy tokens compared (up to each episode's first difference) and the flips per
policy token. Then, for ``--prefixes`` prefixes of the collected episodes, it compares the next-token
distribution of each alone with the one from a padded batch of them all: ``sum |cdf_alone - cdf_batched|`` over
the vocabulary bounds the chance that the same uniform picks a different token. A tiny model is built and
fine-tuned on gold episodes first (so episodes have several turns), unless ``--model`` names a checkpoint.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/seed_flips.py --tasks 8 --n 4 --chunk 2 --seeds 1 \
        --max-new-tokens 64 --max-tokens 256 --prefixes 32

On a loaded 2-core CPU (its build and fine-tune take about 18 minutes there, a collection about two): 0 of 32
episodes differed on either path (2580 policy tokens); alone vs batched, log-probs differed by up to 6.4e-6 and
the flip bound was 4.6e-5 per token on average (1.3e-4 at most): about one flipped token in 20,000, so about one
80-token episode in 270 changes with its batch.
"""

from __future__ import annotations

import argparse
import logging
import random
import tempfile
from pathlib import Path

log = logging.getLogger("resrl.bench.seed_flips")


class _RoundsOnly:
    """An hf policy without ``open_stream``, so the collector runs lock-step rounds of ``generate`` calls."""

    def __init__(self, policy) -> None:
        self.policy, self.tokenizer, self.model = policy, policy.tokenizer, policy.model

    def generate(self, prompts, sampling):
        return self.policy.generate(prompts, sampling)


def compare(together, split) -> dict:
    """Episodes that differ, and the policy tokens of the ``together`` run compared up to each first difference."""
    other = {(t.task_id, t.metadata["sample"]): t for t in split}
    differ = tokens = 0
    for t in together:
        u = other[t.task_id, t.metadata["sample"]]
        first = next(
            (i for i, (a, b) in enumerate(zip(t.response_ids, u.response_ids, strict=False)) if a != b),
            None if len(t.response_ids) == len(u.response_ids) else min(len(t.response_ids), len(u.response_ids)),
        )
        differ += first is not None
        upto = len(t.response_ids) if first is None else first + 1
        tokens += sum(t.loss_mask[:upto])
    return {"episodes": len(together), "differ": differ, "tokens": tokens}


def distribution_noise(hf, trajectories, n: int, temperature: float) -> dict:
    """Largest log-prob difference and the mean and largest flip bound, alone vs in one padded batch."""
    import torch

    rng = random.Random(0)
    prefixes = []
    for t in rng.sample(trajectories, min(n, len(trajectories))):
        cut = rng.choice([i for i, m in enumerate(t.loss_mask) if m])
        prefixes.append(t.prompt_ids + t.response_ids[:cut])

    def cdf(logits):
        return torch.softmax(logits.double() / temperature, -1).cumsum(-1)

    hf.reset_prefix_cache()
    batched = hf.prefill(prefixes)[2]
    alone = []
    for prefix in prefixes:
        hf.reset_prefix_cache()
        alone.append(hf.prefill([prefix])[2][0])
    alone = torch.stack(alone)
    logp = [torch.log_softmax(x.double() / temperature, -1) for x in (alone, batched)]
    bound = (cdf(alone) - cdf(batched)).abs().sum(-1)
    return {"max_dlogp": float((logp[0] - logp[1]).abs().max()), "mean": float(bound.mean()), "max": float(bound.max())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="checkpoint directory (default: build and fine-tune a tiny one)")
    parser.add_argument("--env", default="fc/multi/banking")
    parser.add_argument("--tasks", type=int, default=32)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--chunk", type=int, default=4, help="tasks per collection in the split run")
    parser.add_argument("--seeds", type=int, default=2, help="collect seeds to repeat the comparison with")
    parser.add_argument("--prefixes", type=int, default=64, help="episode prefixes for the distribution check")
    parser.add_argument("--max-turns", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=512)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--hidden", type=int, default=256, help="width of the built model")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--sft-lr", type=float, default=3e-3)
    parser.add_argument("--sft-tasks", type=int, default=64)
    parser.add_argument("--sft-epochs", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    import resrl
    from resrl.rollout import Collector, HFPolicy

    if args.model:
        model_dir = Path(args.model)
    else:
        import sys

        sys.path.insert(0, str(Path(__file__).parent))
        from rollout import prepare_model  # the rollout benchmark's tiny model, fine-tuned on gold episodes

        model_dir = prepare_model(Path(tempfile.mkdtemp(prefix="resrl-bench-")) / "tiny", args.env, args)
    tasks = resrl.make(args.env).generate_tasks("test", args.tasks, 1)
    hf = HFPolicy(str(model_dir), batch_size=args.tasks * args.n)
    kw = dict(
        max_turns=args.max_turns,
        max_tokens=args.max_tokens,
        max_new_tokens_per_turn=args.max_new_tokens,
        temperature=args.temperature,
        progress=False,
    )
    print(f"{'path':7} {'seed':>4} {'episodes':>8} {'turns':>6} {'differ':>6} {'tokens':>7} {'flips/token':>11}")
    for name, policy in (("stream", hf), ("rounds", _RoundsOnly(hf))):
        collector = Collector(policy, args.env, **kw)
        for seed in range(args.seeds):
            hf.reset_prefix_cache()
            together = collector.collect(tasks, args.n, seed=seed)
            split = []
            for start in range(0, len(tasks), args.chunk):
                hf.reset_prefix_cache()
                split += collector.collect(tasks[start : start + args.chunk], args.n, seed=seed)
            r = compare(together, split)
            turns = sum(t.turns for t in together) / len(together)
            rate = r["differ"] / max(r["tokens"], 1)
            print(
                f"{name:7} {seed:>4} {r['episodes']:>8} {turns:>6.2f} {r['differ']:>6} {r['tokens']:>7} {rate:>11.2e}",
                flush=True,
            )
    noise = distribution_noise(hf, together, args.prefixes, args.temperature)
    print(
        f"next-token distributions, {args.prefixes} prefixes alone vs one padded batch: max |d logp| "
        f"{noise['max_dlogp']:.2e}, flip bound sum|d cdf| mean {noise['mean']:.2e}, max {noise['max']:.2e}"
    )


if __name__ == "__main__":
    main()
