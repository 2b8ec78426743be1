"""The real chat templates of ``../shared/chat_templates/`` on the project's tiny tokenizer.

Each family gets the tiny BPE tokenizer with the template's text as ``chat_template`` and the template's markers
added as special tokens, as the family's own tokenizer has them. The templates are read from the repository's
sibling ``shared/`` folder (never copied into the project); without it the tests skip, or fail under ``CI=true``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TEMPLATE_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "chat_templates"

CHATML = ["<|im_start|>", "<|im_end|>", "<|endoftext|>"]
LLAMA = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|eom_id|>", "<|python_tag|>"]
MISTRAL = ["<s>", "</s>", "[INST]", "[/INST]", "[TOOL_CALLS]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]"]
MISTRAL += ["[TOOL_RESULTS]", "[/TOOL_RESULTS]"]


@dataclass(frozen=True)
class Family:
    """One real template: its file, the tokenizer's special tokens, and what a collection should find."""

    name: str
    file: str
    special: list[str]
    bos: str | None
    eos: str
    native: str  # the tool format tool_format="auto" must pick
    marker: str  # text a native tool-call turn starts with (after Qwen3's think block)
    kwargs: dict[str, Any] = field(default_factory=dict)
    extra_eos: tuple[str, ...] = ()  # generation_config eos tokens beyond the tokenizer's


FAMILIES = [
    Family(
        "qwen3-thinking", "qwen3.jinja", CHATML, None, "<|im_end|>", "hermes", "<tool_call>", {}, ("<|endoftext|>",)
    ),
    Family(
        "qwen3-no-thinking",
        "qwen3.jinja",
        CHATML,
        None,
        "<|im_end|>",
        "hermes",
        "<tool_call>",
        {"enable_thinking": False},
        ("<|endoftext|>",),
    ),
    Family("qwen2.5", "qwen2.5-instruct.jinja", CHATML, None, "<|im_end|>", "hermes", "<tool_call>"),
    Family(
        "hermes-2-pro",
        "hermes-2-pro.jinja",
        [*CHATML, "<|begin_of_text|>"],
        "<|begin_of_text|>",
        "<|im_end|>",
        "hermes",
        "<tool_call>",
    ),
    Family(
        "llama3.1-json",
        "llama3.1-json.jinja",
        LLAMA,
        "<|begin_of_text|>",
        "<|eot_id|>",
        "llama3_json",
        '{"name": ',
        {},
        ("<|eom_id|>",),
    ),
    Family("llama3.2-pythonic", "llama3.2-pythonic.jinja", LLAMA, "<|begin_of_text|>", "<|eot_id|>", "pythonic", "["),
    Family("mistral-official", "mistral-official.jinja", MISTRAL, "<s>", "</s>", "mistral", "[TOOL_CALLS]"),
]
REFUSED = Family("mistral-v0.3", "mistral-v0.3.jinja", MISTRAL, "<s>", "</s>", "mistral", "[TOOL_CALLS]")


def template_problem() -> str | None:
    """Why the real templates cannot be read here, or None."""
    if not TEMPLATE_DIR.is_dir():
        return f"no real chat templates at {TEMPLATE_DIR.resolve()} (the repository's sibling shared/chat_templates)"
    missing = [f.file for f in [*FAMILIES, REFUSED] if not (TEMPLATE_DIR / f.file).is_file()]
    return f"missing templates in {TEMPLATE_DIR.resolve()}: {missing}" if missing else None


def family_tokenizer(base: Any, family: Family) -> Any:
    """A copy of the tiny tokenizer ``base`` carrying ``family``'s template and special tokens."""
    import copy

    tok = copy.deepcopy(base)
    tok.add_tokens(family.special, special_tokens=True)
    tok.eos_token = family.eos
    tok.bos_token = family.bos
    tok.chat_template = (TEMPLATE_DIR / family.file).read_text()
    return tok


def save_family(tok: Any, family: Family, out: Path) -> Path:
    """Save the tokenizer like a checkpoint folder, with a ``generation_config.json`` that lists several eos."""
    tok.save_pretrained(out)
    eos = [tok.convert_tokens_to_ids(t) for t in (family.eos, *family.extra_eos)]
    (out / "generation_config.json").write_text(json.dumps({"eos_token_id": eos}))
    return out
