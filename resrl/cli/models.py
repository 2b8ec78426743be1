"""``resrl models tiny``: build a tiny tool-calling tokenizer and causal LM locally."""

from __future__ import annotations

import argparse

from resrl.models.templates import TEMPLATES


def register(sub: argparse._SubParsersAction) -> None:
    models = sub.add_parser("models", help="build local models").add_subparsers(dest="models_cmd", required=True)
    tiny = models.add_parser("tiny", help="a tiny BPE tokenizer + Qwen2-architecture LM, saved with save_pretrained")
    tiny.add_argument("--out", required=True, help="output directory")
    tiny.add_argument(
        "--template",
        choices=sorted(TEMPLATES),
        default="chatml",
        help="chat template (chatml: Hermes tool calls; compact: chatml, one line per tool; llama3: pythonic calls)",
    )
    tiny.add_argument("--vocab-size", type=int, default=2048)
    tiny.add_argument("--hidden", type=int, default=64)
    tiny.add_argument("--layers", type=int, default=2)
    tiny.add_argument("--heads", type=int, default=2, help="attention heads (vLLM CPU needs head size >= 32)")
    tiny.add_argument("--seed", type=int, default=0)
    tiny.set_defaults(func=_tiny)


def _tiny(args: argparse.Namespace) -> int:
    from resrl.models import build_tiny

    if args.hidden % args.heads:
        raise ValueError("--hidden must be a multiple of --heads")
    out = build_tiny(
        args.out,
        template=args.template,
        vocab_size=args.vocab_size,
        hidden=args.hidden,
        layers=args.layers,
        heads=args.heads,
        seed=args.seed,
    )
    print(f"saved tiny model and tokenizer to {out}")
    return 0
