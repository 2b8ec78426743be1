"""Multi-turn collection throughput vs the raw engine, for the ``hf`` and ``vllm`` backends, in one run.

For each backend: collect ``--tasks`` × ``--n`` episodes of a multi-turn env and count the generated (policy)
tokens per second; then let the same engine generate exactly as many tokens for the same opening prompts in
one call, stop tokens ignored (the peer: "raw engine"). The ratio collection/raw is the collector's
efficiency (target ≥ 0.9). A tiny model is built and briefly fine-tuned on gold episodes first (so it ends
its turns and episodes have several turns), unless ``--model`` names a checkpoint.

Both backends collect with continuous batching (an episode rejoins the running batch as soon as its env step
returns). The collection must also prefill every observation (tool results, the next generation prompt),
which the raw engine never sees: the table shows how many per policy token (``obs/token``) and the share of
the collection spent inside the engine (``engine %``; the rest is env steps, templating and resets).
``--overlap-env`` lets the engine keep decoding while env steps run (faster; sampling then depends on env
timing).

    python benchmarks/rollout.py [--model DIR] [--env fc/multi/banking] [--tasks 16] [--n 4] [--skip-vllm]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")

log = logging.getLogger("resrl.bench.rollout")


def prepare_model(out: Path, env_id: str, sft_tasks: int, epochs: int) -> Path:
    """A tiny model fine-tuned on ``sft_tasks`` gold episodes of ``env_id``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import resrl
    from resrl.models import build_tiny
    from resrl.trainer.sft import sft_warmup

    build_tiny(out)
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    tasks = resrl.make(env_id).generate_tasks("train", sft_tasks, 0)
    losses = sft_warmup(model, tok, tasks, epochs=epochs, batch_size=8, lr=1e-2)
    log.info("SFT warm-up: loss %.3f → %.3f", losses[0], losses[-1])
    model.save_pretrained(out)
    return out


def measure(name: str, policy, env_id: str, tasks, n: int, args) -> dict:
    """Collection vs raw generation of the same token counts from the same prompts, on one engine."""
    from resrl.rollout import Collector, SamplingParams

    policy.generate([[1, 2, 3]], SamplingParams(max_new_tokens=4))  # warm-up
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
    collect_tps, raw_tps, engine_share = [], [], []
    for _ in range(args.repeats):  # alternate the two so a busy machine slows both alike; report medians
        policy.reset_prefix_cache()  # both start cold: neither reuses the other's prompt KV
        start = time.perf_counter()
        trajs = collector.collect(tasks, n)
        collect_s = time.perf_counter() - start
        tokens = [t.n_policy_tokens for t in trajs]
        params = [SamplingParams(temperature=1.0, max_new_tokens=max(k, 1), ignore_stop=True) for k in tokens]
        policy.reset_prefix_cache()
        start = time.perf_counter()
        raw = policy.generate([t.prompt_ids for t in trajs], params)
        raw_s = time.perf_counter() - start
        collect_tps.append(sum(tokens) / collect_s)
        engine_share.append(collector.timings["generate_s"] / collect_s)
        raw_tps.append(sum(len(g.token_ids) for g in raw) / raw_s)
        log.info("%s: collect %.1f tok/s, raw engine %.1f tok/s", name, collect_tps[-1], raw_tps[-1])
    total = sum(tokens)
    result = {
        "backend": name,
        "episodes": len(trajs),
        "mean_turns": sum(t.turns for t in trajs) / len(trajs),
        "policy_tokens": total,
        # observation tokens (tool results, next generation prompts) the collection prefills and the raw engine
        # never sees, per policy token; and the share of collection time spent inside the engine
        "observation_per_policy_token": sum(len(t.response_ids) for t in trajs) / total - 1,
        "engine_share": statistics.median(engine_share),
        "collect_tok_s": statistics.median(collect_tps),
        "raw_engine_tok_s": statistics.median(raw_tps),
        "repeats": args.repeats,
        "overlap_env": bool(args.overlap_env),
    }
    result["ratio_vs_raw_engine"] = result["collect_tok_s"] / result["raw_engine_tok_s"]
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
    parser.add_argument("--sft-tasks", type=int, default=64)
    parser.add_argument("--sft-epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3, help="alternating collect/raw runs (medians reported)")
    parser.add_argument("--overlap-env", action="store_true", help="decode while env steps run (not reproducible)")
    parser.add_argument("--skip-hf", action="store_true")
    parser.add_argument("--skip-vllm", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    import resrl
    from resrl.rollout import HFPolicy

    workdir = Path(tempfile.mkdtemp(prefix="resrl-bench-"))
    model_dir = (
        Path(args.model) if args.model else prepare_model(workdir / "tiny", args.env, args.sft_tasks, args.sft_epochs)
    )
    tasks = resrl.make(args.env).generate_tasks("test", args.tasks, 1)
    header = (
        f"{'backend':8} {'episodes':>8} {'turns':>6} {'tokens':>7} {'obs/token':>9} {'engine %':>8} "
        f"{'collect tok/s':>14} {'raw engine tok/s':>17} {'ratio':>6}"
    )
    results = []

    def report(r: dict) -> None:
        results.append(r)
        print(header)
        print(
            f"{r['backend']:8} {r['episodes']:8d} {r['mean_turns']:6.2f} {r['policy_tokens']:7d} "
            f"{r['observation_per_policy_token']:9.2f} {100 * r['engine_share']:8.0f} {r['collect_tok_s']:14.1f} "
            f"{r['raw_engine_tok_s']:17.1f} {r['ratio_vs_raw_engine']:6.2f}",
            flush=True,
        )

    if not args.skip_hf:
        report(measure("hf", HFPolicy(str(model_dir)), args.env, tasks, args.n, args))
    if not args.skip_vllm:
        from resrl.rollout import VLLMPolicy

        engine = VLLMPolicy(str(model_dir), dtype="float32", max_model_len=2048, seed=0)
        report(measure("vllm", engine, args.env, tasks, args.n, args))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
