"""Token-exact chat templating: prompt ids, observation ids as a delta, and SFT encoding of whole episodes.

Generated ids are never re-tokenized. What the collector appends after a policy turn comes from the chat
template alone:

* the *turn suffix*: the tokens a template writes after the assistant's stop token (ChatML's ``\\n`` after
  ``<|im_end|>``; nothing for Llama-3). Forgetting it is the verl#6921 drift;
* the *observation delta*: ``render(base + new_messages, generation_prompt) - render(base)`` for a fixed base
  conversation that ends with an assistant turn, so the new messages and the next generation prompt are
  rendered exactly as the template renders them in context.
"""

from __future__ import annotations

import json
from typing import Any

from resrl.core.messages import Message

PROMPT_CACHE_SIZE = 4096  # opening prompts kept by ChatCodec.prompt_ids

BASE_CONVERSATION: list[Message] = [
    {"role": "user", "content": "Hello."},
    {"role": "assistant", "content": "Hello."},
]


class TemplateError(ValueError):
    """The chat template cannot be used token-exactly (it is not prefix-stable at a turn boundary)."""


class ChatCodec:
    """Renders conversations to token ids with a tokenizer's chat template, token-exactly.

    ``stop_ids`` are the tokens that end an assistant turn (the tokenizer's eos, plus any given).
    """

    def __init__(self, tokenizer: Any, *, stop_ids: list[int] | None = None, chat_template: str | None = None):
        self.tokenizer = tokenizer
        self.chat_template = chat_template
        if getattr(tokenizer, "chat_template", None) is None and chat_template is None:
            raise TemplateError("the tokenizer has no chat template; pass chat_template= or use one that has")
        ids = set(stop_ids or [])
        if tokenizer.eos_token_id is not None:
            ids.add(int(tokenizer.eos_token_id))
        if not ids:
            raise TemplateError("no stop token: the tokenizer has no eos_token and no stop_ids were given")
        self.stop_ids = sorted(ids)
        self._cache: dict[str, tuple[list[int], list[int]]] = {}
        self._texts: dict[str, str] = {}
        self._prompts: dict[str, list[int]] = {}
        self._tool_keys: dict[int, tuple[list[dict] | None, str]] = {}

    # -- rendering ---------------------------------------------------------------------------------------
    def render_text(self, messages: list[Message], tools: list[dict] | None, generation_prompt: bool) -> str:
        """The template's text for ``messages`` (and the assistant generation prompt if asked)."""
        return self.tokenizer.apply_chat_template(
            messages,
            tools=tools or None,
            chat_template=self.chat_template,
            add_generation_prompt=generation_prompt,
            tokenize=False,
        )

    def encode_text(self, text: str) -> list[int]:
        """Ids of text that already carries its special tokens (the template wrote them)."""
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def render(self, messages: list[Message], tools: list[dict] | None = None, generation_prompt: bool = False):
        """Ids of the template's rendering of ``messages``."""
        return self.encode_text(self.render_text(messages, tools, generation_prompt))

    def prompt_ids(self, messages: list[Message], tools: list[dict] | None = None) -> list[int]:
        """The opening prompt: the task's messages and the assistant generation prompt."""
        # The n samples of a task open with the same prompt: render it once (templating long tool schemas
        # costs more than a step of a small model).
        key = json.dumps(messages, sort_keys=True, default=str) + self._tools_key(tools)
        if key not in self._prompts:
            if len(self._prompts) >= PROMPT_CACHE_SIZE:
                self._prompts.clear()
            self._prompts[key] = self.render(messages, tools, generation_prompt=True)
        return list(self._prompts[key])

    # -- deltas ------------------------------------------------------------------------------------------
    def _tools_key(self, tools: list[dict] | None) -> str:
        """A cache key for a tool set. Serializing a large tool set costs as much as templating the observation,
        so the key of a list already seen (the same object, held here so its id is not reused) is remembered:
        a tool list is read as it is when first passed, so change a copy rather than the list itself."""
        hit = self._tool_keys.get(id(tools))
        if hit is not None and hit[0] is tools:
            return hit[1]
        if len(self._tool_keys) >= PROMPT_CACHE_SIZE:
            self._tool_keys.clear()
        key = json.dumps(tools or [], sort_keys=True)
        self._tool_keys[id(tools)] = (tools, key)
        return key

    def _base(self, tools: list[dict] | None) -> tuple[list[int], list[int]]:
        key = self._tools_key(tools)
        if key not in self._cache:
            base = self.render(BASE_CONVERSATION, tools)
            stops = [i for i, t in enumerate(base) if t in self.stop_ids]
            if not stops:
                raise TemplateError("the template does not end an assistant turn with a stop token")
            self._cache[key] = (base, base[stops[-1] + 1 :])
        return self._cache[key]

    def turn_suffix(self, tools: list[dict] | None = None) -> list[int]:
        """Tokens the template writes after an assistant turn's stop token (not generated; mask 0)."""
        return list(self._base(tools)[1])

    def observation_ids(self, messages: list[Message], tools: list[dict] | None = None) -> list[int]:
        """Ids of ``messages`` (tool results, user turns) plus the next generation prompt, as rendered in context
        after an assistant turn and its suffix."""
        text = self.render_text(BASE_CONVERSATION + list(messages), tools, generation_prompt=True)
        base_text = self._base_text(tools)
        # Fast path: tokenize only the new text, where the boundary is known to tokenize the same alone.
        if text.startswith(base_text) and self._text_delta_safe(tools):
            return self.encode_text(text[len(base_text) :])
        return self._token_delta(text, tools)

    def _token_delta(self, text: str, tools: list[dict] | None) -> list[int]:
        base, _ = self._base(tools)
        full = self.encode_text(text)
        if full[: len(base)] != base:
            raise TemplateError(
                "the chat template is not prefix-stable: rendering more messages changed the tokens of the "
                "earlier ones, so observation tokens cannot be taken as a delta"
            )
        return full[len(base) :]

    def _base_text(self, tools: list[dict] | None) -> str:
        key = "text:" + self._tools_key(tools)
        if key not in self._texts:
            self._texts[key] = self.render_text(BASE_CONVERSATION, tools, generation_prompt=False)
        return self._texts[key]

    def _text_delta_safe(self, tools: list[dict] | None) -> bool:
        """Whether tokenizing the text after the base alone gives the same ids as the token-level delta, checked
        once per tool set on a tool result and a user turn (the boundary is the same for every observation)."""
        key = "safe:" + self._tools_key(tools)
        if key not in self._texts:
            base_text = self._base_text(tools)
            probes = [
                [{"role": "tool", "name": "probe", "content": '{"ok": 1}'}],
                [{"role": "user", "content": "Go on."}],
            ]
            safe = True
            for probe in probes:
                text = self.render_text(BASE_CONVERSATION + probe, tools, generation_prompt=True)
                safe = safe and text.startswith(base_text)
                safe = safe and self.encode_text(text[len(base_text) :]) == self._token_delta(text, tools)
            self._texts[key] = "yes" if safe else ""
        return bool(self._texts[key])

    def assistant_ids(self, message: Message, tools: list[dict] | None = None) -> list[int]:
        """The ids a model would generate for an assistant ``message``, stop token included (for SFT)."""
        user = [{"role": "user", "content": "Hello."}]
        head = self.render(user, tools, generation_prompt=True)
        full = self.render([*user, message], tools)
        suffix = self.turn_suffix(tools)
        body = full[len(head) : len(full) - len(suffix)] if suffix else full[len(head) :]
        if full[: len(head)] != head or not body or body[-1] not in self.stop_ids:
            raise TemplateError("cannot isolate an assistant turn in this chat template's rendering")
        return body

    def decode_turn(self, ids: list[int]) -> str:
        """The text of a generated turn, without its stop token (what the environment reads)."""
        if ids and ids[-1] in self.stop_ids:
            ids = ids[:-1]
        return self.tokenizer.decode(ids, skip_special_tokens=False)


def encode_episode(
    tokenizer: Any, messages: list[Message], tools: list[dict] | None = None, *, codec: ChatCodec | None = None
) -> tuple[list[int], list[int], list[int]]:
    """``(prompt_ids, response_ids, loss_mask)`` of a finished conversation, built exactly as the collector
    builds a trajectory: the messages before the first assistant turn are the prompt; each assistant turn is
    its generated ids (mask 1), followed by the turn suffix and the next observations (mask 0).

    Use it for SFT warm-up on gold demonstrations: the ids match what the policy would see while collecting.
    """
    codec = codec or ChatCodec(tokenizer)
    first = next((i for i, m in enumerate(messages) if m.get("role") == "assistant"), None)
    if first is None:
        raise ValueError("the conversation has no assistant turn to train on")
    prompt = codec.prompt_ids(messages[:first], tools)
    response: list[int] = []
    mask: list[int] = []
    pending: list[Message] = []
    for message in messages[first:]:
        if message.get("role") != "assistant":
            pending.append(message)
            continue
        if response:  # after a turn: its suffix, then the observations and the next generation prompt
            between = codec.turn_suffix(tools) + codec.observation_ids(pending, tools)
            response += between
            mask += [0] * len(between)
            pending = []
        ids = codec.assistant_ids(message, tools)
        response += ids
        mask += [1] * len(ids)
    return prompt, response, mask
