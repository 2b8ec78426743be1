"""A tiny tool-calling tokenizer and causal LM, built locally (no hub downloads).

The tokenizer is a byte-level BPE trained on generated function-calling text (tool schemas, ``<tool_call>``
JSON, tool responses, short English requests), so tool-call text costs few tokens. Newlines are split off
before BPE so a chat template's ``\\n`` boundaries tokenize the same alone and in context, which keeps
observation tokens (rendered against a base conversation) identical to a full-conversation rendering.
The model is a Qwen2-architecture causal LM from a ``transformers`` config; both are saved with
``save_pretrained`` and load through the same path as any real checkpoint.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterable
from pathlib import Path

from resrl.models.templates import TEMPLATES, load_template

log = logging.getLogger("resrl.models")

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|begin_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
]
# Added as ordinary (non-special) tokens: they are part of the text a tool-calling model writes and reads.
TAG_TOKENS = [
    "<tool_call>",
    "</tool_call>",
    "<tool_response>",
    "</tool_response>",
    "<think>",
    "</think>",
    "<tools>",
    "</tools>",
]
EOS_OF_TEMPLATE = {"chatml": "<|im_end|>", "compact": "<|im_end|>", "think": "<|im_end|>", "llama3": "<|eot_id|>"}
# Pieces split off before BPE (newlines always: a template's ``\n`` boundaries then tokenize the same alone and
# in context). "copy": a punctuation run with its leading space, a letter run, one digit, other whitespace.
PRETOKENIZERS = {"gpt2": r"\n", "copy": r"\n| ?[^\s\p{L}\p{N}]+|\p{L}+|\p{N}|[^\S\n]+"}

_WORDS = [
    "the",
    "a",
    "an",
    "of",
    "to",
    "in",
    "for",
    "on",
    "with",
    "and",
    "or",
    "is",
    "are",
    "what",
    "how",
    "many",
    "please",
    "find",
    "get",
    "set",
    "add",
    "list",
    "show",
    "weather",
    "city",
    "temperature",
    "search",
    "file",
    "user",
    "name",
    "id",
    "value",
    "total",
    "price",
    "order",
    "account",
    "balance",
    "send",
    "message",
    "email",
    "date",
    "time",
    "number",
    "count",
    "sum",
    "result",
    "error",
    "unknown",
    "tool",
    "call",
    "arguments",
    "return",
    "status",
    "ok",
    "true",
    "false",
    "null",
    "items",
    "query",
    "convert",
    "currency",
    "amount",
    "from",
    "into",
    "book",
    "flight",
    "hotel",
    "room",
    "create",
    "delete",
    "update",
    "read",
    "write",
    "open",
    "close",
    "path",
    "text",
    "word",
    "letters",
    "length",
    "compute",
    "answer",
    "question",
    "today",
    "tomorrow",
    "book",
    "note",
    "task",
    "schedule",
    "meeting",
    "event",
]


def _corpus(n: int, seed: int) -> list[str]:
    """Function-calling-flavoured text for training the BPE."""
    rng = random.Random(seed)

    def word() -> str:
        return rng.choice(_WORDS)

    def ident() -> str:
        return "_".join(word() for _ in range(rng.randint(1, 3)))

    def value() -> object:
        kind = rng.randrange(5)
        if kind == 0:
            return rng.randint(-50, 5000)
        if kind == 1:
            return round(rng.uniform(-100, 100), rng.randint(1, 3))
        if kind == 2:
            return rng.choice([True, False, None])
        if kind == 3:
            return [word() for _ in range(rng.randint(1, 3))]
        return " ".join(word() for _ in range(rng.randint(1, 4))).capitalize()

    texts = []
    for _ in range(n):
        name = ident()
        args = {ident(): value() for _ in range(rng.randint(0, 3))}
        schema = {
            "type": "function",
            "function": {
                "name": name,
                "description": " ".join(word() for _ in range(rng.randint(3, 9))).capitalize() + ".",
                "parameters": {
                    "type": "object",
                    "properties": {
                        k: {"type": rng.choice(["string", "integer", "number", "boolean", "array"])} for k in args
                    },
                    "required": list(args),
                },
            },
        }
        call = json.dumps({"name": name, "arguments": args})
        pythonic = f"[{name}(" + ", ".join(f"{k}={json.dumps(v)}" for k, v in args.items()) + ")]"
        request = " ".join(word() for _ in range(rng.randint(4, 14))).capitalize() + rng.choice("?.!")
        texts.append(
            f"{json.dumps(schema)}\n{request}\n<think>\n{request}\n</think>\n<tool_call>\n{call}\n</tool_call>\n"
            f"<tool_response>\n{json.dumps(value())}\n</tool_response>\n{pythonic}\n{rng.randint(0, 10**6)}\n"
        )
    return texts


def build_tokenizer(
    template: str = "chatml",
    vocab_size: int = 2048,
    seed: int = 0,
    texts: Iterable[str] | None = None,
    pretokenize: str = "gpt2",
):
    """A byte-level BPE ``PreTrainedTokenizerFast`` with one of our chat templates (see :data:`TEMPLATES`).

    ``texts`` are trained on besides the generated corpus: text from the tasks the model will see (tool
    schemas, requests, calls) makes their prompts shorter, which is most of a tiny model's compute.
    ``pretokenize`` picks where BPE pieces may not cross: ``"gpt2"`` (GPT-2's rule: a word carries its leading
    space) or ``"copy"`` (a space before a word is its own token and every digit is one), so a value has the
    same tokens in a request (``Visit Oslo``) and in a call (``{"city": "Oslo"}``): copying it is then a
    token-for-token copy, which a model with two layers learns far sooner than a respelling.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if template not in TEMPLATES:
        raise ValueError(f"unknown chat template {template!r}; choose one of {sorted(TEMPLATES)}")
    if pretokenize not in PRETOKENIZERS:
        raise ValueError(f"unknown pretokenize {pretokenize!r}; choose one of {sorted(PRETOKENIZERS)}")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZERS[pretokenize]), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=pretokenize == "gpt2"),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([*_corpus(4000, seed), *(texts or [])], trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=EOS_OF_TEMPLATE[template],
        pad_token="<|endoftext|>",
        additional_special_tokens=[t for t in SPECIAL_TOKENS if t not in (EOS_OF_TEMPLATE[template], "<|endoftext|>")],
    )
    fast.add_tokens(TAG_TOKENS)
    fast.chat_template = load_template(template)
    return fast


def build_model(
    vocab_size: int,
    *,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 2,
    seed: int = 0,
    eos_token_ids: list[int] | None = None,
    pad_token_id: int | None = None,
    copy_init: bool = False,
):
    """A randomly initialised Qwen2-architecture causal LM (float32).

    ``copy_init=True`` gives every head its own key/value head (no grouping) and starts each attention
    layer's value and output projections at the identity: a head then copies the token it attends to into
    the residual stream from the first step, and training only has to learn where to look, which a model
    this small otherwise takes thousands of steps to find (the value-copying a tool call needs).
    """
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=hidden * 3,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads if copy_init else max(1, heads // 2),
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        eos_token_id=eos_token_ids,
        pad_token_id=pad_token_id,
        bos_token_id=None,
        torch_dtype="float32",
    )
    model = Qwen2ForCausalLM(config).float()
    if copy_init:
        with torch.no_grad():
            for layer in model.model.layers:
                for proj in (layer.self_attn.v_proj, layer.self_attn.o_proj):
                    proj.weight.copy_(torch.eye(*proj.weight.shape))
    return model


def build_tiny(
    out: str | Path,
    *,
    template: str = "chatml",
    vocab_size: int = 2048,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 2,
    seed: int = 0,
    texts: Iterable[str] | None = None,
    pretokenize: str = "gpt2",
    copy_init: bool = False,
) -> Path:
    """Build and save a tiny tokenizer + model under ``out``; returns the directory.

    ``texts`` and ``pretokenize``: see :func:`build_tokenizer`; ``copy_init``: see :func:`build_model`.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(template, vocab_size=vocab_size, seed=seed, texts=texts, pretokenize=pretokenize)
    eos_ids = sorted({tokenizer.convert_tokens_to_ids(EOS_OF_TEMPLATE[template]), tokenizer.pad_token_id})
    model = build_model(
        len(tokenizer),
        hidden=hidden,
        layers=layers,
        heads=heads,
        seed=seed,
        eos_token_ids=eos_ids,
        pad_token_id=tokenizer.pad_token_id,
        copy_init=copy_init,
    )
    model.generation_config.eos_token_id = eos_ids
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    tokenizer.save_pretrained(out)
    model.save_pretrained(out)
    n_params = sum(p.numel() for p in model.parameters())
    log.info("saved tiny model (%d params, vocab %d, template %s) to %s", n_params, len(tokenizer), template, out)
    return out
