"""Token-exact chat templating: prompt ids, observation ids as a delta, and SFT encoding of whole episodes.

Generated ids are never re-tokenized. What the collector appends after a policy turn comes from the chat
template alone:

* the *end-of-turn token* and the *turn suffix*: what the template writes right after an assistant turn's
  content (``<|im_end|>`` then ``\\n`` for ChatML; ``<|eot_id|>`` and nothing for Llama 3; ``</s>`` for Mistral).
  The end-of-turn token is a stop token and is generated (mask 1); the suffix is not (forgetting it is the
  verl#6921 drift);
* the *observation delta*: the new messages and the next generation prompt, as the template renders them right
  after an assistant turn. It is cut from ``render(BASE + new_messages, generation_prompt)`` at the end of the
  base conversation's assistant turn *in that rendering* (found by its content and end-of-turn text), so a
  template that renders a final assistant turn differently (Qwen3's empty ``<think>`` block) is handled.

Templates that re-render earlier turns depending on what follows cannot be append-only; the trajectory keeps
what the model saw and generated. Qwen3 drops the reasoning of earlier turns: the trajectory keeps it. Mistral
writes the tool list before the newest user message: the tool list stays where the opening prompt has it, and
later user turns are rendered as the template renders a user turn without tools
(:meth:`ChatCodec.rerenders_history`). See ``docs/chat_templates.md``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from resrl.core.formats import AUTO, FORMATS, get_format
from resrl.core.messages import Message, ToolCall, chat_template_message

log = logging.getLogger("resrl.rollout")

PROMPT_CACHE_SIZE = 4096  # opening prompts kept by ChatCodec.prompt_ids

SENTINEL = "Hello."  # the base assistant turn's content: found again in longer renderings
PROBE_CALL_ID = "a1B2c3D4e"  # 9 alphanumerics: the strictest id rule of the templates we know (Mistral)
BASE_CONVERSATION: list[Message] = [
    {"role": "user", "content": "Hi."},
    {"role": "assistant", "content": SENTINEL},
]
PROBE_TOOLS: list[dict] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]
PROBE_CALL = ToolCall(name="get_weather", arguments={"city": "Oslo"}, id=PROBE_CALL_ID)
# Numbers survive every template's rendering of arguments (Llama 3.2's writes strings unquoted).
NUMBER_CALL = ToolCall(name="get_weather", arguments={"days": 3}, id=PROBE_CALL_ID)
# Formats tried by tool_format="auto", most distinctive marker first.
AUTO_ORDER = ("mistral", "hermes", "llama3_json", "pythonic")


class TemplateError(ValueError):
    """The chat template cannot be used token-exactly (or raised while rendering); the message says why."""


@dataclass
class _Layout:
    """How a template closes an assistant turn and continues after it, for one tool set."""

    eot_id: int
    suffix_text: str
    suffix_ids: list[int]
    marker: str  # the base assistant turn's content, end-of-turn text and suffix
    heads: dict[str, str]  # rendering up to the end of the base assistant turn, per kind of follow-up
    delta_safe: bool  # tokenizing the text after the head alone gives the same ids as in context


class ChatCodec:
    """Renders conversations to token ids with a tokenizer's chat template, token-exactly.

    ``template_kwargs`` go to every rendering (for example ``{"enable_thinking": False}`` for Qwen3).
    ``stop_ids`` are the tokens that end an assistant turn: the template's end-of-turn token first, then the
    given ones (a ``generation_config``'s ``eos_token_id`` list), then the tokenizer's eos. A template that cannot
    be used raises :class:`TemplateError` here, before any episode, naming the template and the cause.
    """

    def __init__(
        self,
        tokenizer: Any,
        *,
        stop_ids: list[int] | None = None,
        chat_template: str | None = None,
        template_kwargs: dict[str, Any] | None = None,
    ):
        self.tokenizer = tokenizer
        self.chat_template = chat_template
        self.template_kwargs = dict(template_kwargs or {})
        if getattr(tokenizer, "chat_template", None) is None and chat_template is None:
            raise TemplateError("the tokenizer has no chat template; pass chat_template= or use one that has")
        self._layouts: dict[str, _Layout] = {}
        self._prompts: dict[str, list[int]] = {}
        self._tool_keys: dict[int, tuple[list[dict] | None, str]] = {}
        self._content_prefix: str | None = None
        self._special = set(getattr(tokenizer, "all_special_ids", []) or [])
        self._special |= {i for i, t in getattr(tokenizer, "added_tokens_decoder", {}).items() if t.special}
        eot = self._layout(None).eot_id
        ids = [eot] + [int(i) for i in stop_ids or []]
        if tokenizer.eos_token_id is not None:
            ids.append(int(tokenizer.eos_token_id))
        self.stop_ids = list(dict.fromkeys(ids))
        self.rerenders_history(PROBE_TOOLS)  # a template with tools must work too; fail now, not mid-collection

    @property
    def name(self) -> str:
        """Which template this is, for error messages: the tokenizer's path and a hash of the template text."""
        text = self.chat_template or self.tokenizer.chat_template
        if isinstance(text, dict):  # several named templates: the default one is used
            text = text.get("default", next(iter(text.values())))
        digest = hashlib.sha1(str(text).encode()).hexdigest()[:8]
        where = getattr(self.tokenizer, "name_or_path", "") or "a tokenizer object"
        return f"the chat template of {where} (sha1 {digest})"

    # -- rendering ---------------------------------------------------------------------------------------
    def render_text(self, messages: list[Message], tools: list[dict] | None, generation_prompt: bool) -> str:
        """The template's text for ``messages`` (and the assistant generation prompt if asked)."""
        try:
            return self.tokenizer.apply_chat_template(
                messages,
                tools=tools or None,
                chat_template=self.chat_template,
                add_generation_prompt=generation_prompt,
                tokenize=False,
                **self.template_kwargs,
            )
        except Exception as exc:  # jinja errors and the template's own raise_exception()
            raise TemplateError(f"{self.name} raised {type(exc).__name__}: {exc}") from exc

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

    # -- layout ------------------------------------------------------------------------------------------
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

    def _layout(self, tools: list[dict] | None) -> _Layout:
        key = self._tools_key(tools)
        if key not in self._layouts:
            if len(self._layouts) >= PROMPT_CACHE_SIZE:
                self._layouts.clear()
            self._layouts[key] = self._measure(tools)
        return self._layouts[key]

    def _measure(self, tools: list[dict] | None) -> _Layout:
        final = self.render_text(BASE_CONVERSATION, tools, generation_prompt=False)
        at = final.rfind(SENTINEL)
        if at < 0:
            raise TemplateError(f"{self.name} does not render an assistant message's content verbatim")
        tail = final[at + len(SENTINEL) :]
        tail_ids = self.encode_text(tail)
        if not tail_ids or tail_ids[0] not in self._special:
            raise TemplateError(
                f"{self.name} does not close an assistant turn with a special token right after its content "
                f"(it writes {tail[:40]!r}), so a turn's end cannot be a stop token. Use a template whose "
                "assistant turns end with an end-of-turn token (as the official Mistral, Llama and ChatML ones do)"
            )
        eot_text = self.tokenizer.decode(tail_ids[:1], skip_special_tokens=False)
        suffix_text = tail[len(eot_text) :] if tail.startswith(eot_text) else ""
        if self.encode_text(suffix_text) != tail_ids[1:]:
            raise TemplateError(f"{self.name}: the text after the end-of-turn token does not tokenize on its own")
        marker = SENTINEL + tail
        probes = {
            "tool": [{"role": "tool", "name": "get_weather", "content": '{"ok": 1}', "tool_call_id": PROBE_CALL_ID}],
            "user": [{"role": "user", "content": "Go on."}],
        }
        heads, safe = {}, True
        for kind, probe in probes.items():
            text = self.render_text(BASE_CONVERSATION + probe, tools, generation_prompt=True)
            heads[kind] = self._head(text, marker)
            safe = safe and self.encode_text(text) == self.encode_text(heads[kind]) + self.encode_text(
                text[len(heads[kind]) :]
            )
        return _Layout(tail_ids[0], suffix_text, tail_ids[1:], marker, heads, safe)

    def _head(self, text: str, marker: str) -> str:
        at = text.find(marker)
        if at < 0:
            raise TemplateError(
                f"{self.name} is not prefix-stable: an assistant turn followed by more messages does not end "
                f"as it does when it is the last one (no {marker!r} in the longer rendering), so observation "
                "tokens cannot be taken as a delta after a generated turn"
            )
        return text[: at + len(marker)]

    def rerenders_history(self, tools: list[dict] | None = None) -> bool:
        """Whether the template renders the turns before a new user message differently depending on the tool
        list (Mistral moves it next to the newest user message). Observations are then rendered without the tool
        list, which stays in the opening prompt; a template that re-renders history even without tools is
        refused."""
        heads = self._layout(tools).heads
        if heads["tool"] == heads["user"]:
            return False
        bare = self._layout(None).heads
        if bare["tool"] != bare["user"]:
            raise TemplateError(
                f"{self.name} is not append-only: the turns before a new user message render differently from "
                "the same turns before a tool result, so a trajectory cannot keep one rendering of its history"
            )
        return True

    def turn_suffix(self, tools: list[dict] | None = None) -> list[int]:
        """Tokens the template writes after an assistant turn's end-of-turn token (not generated; mask 0)."""
        return list(self._layout(tools).suffix_ids)

    @property
    def end_of_turn_id(self) -> int:
        """The token the template closes an assistant turn with (the first of :attr:`stop_ids`)."""
        return self.stop_ids[0]

    # -- deltas ------------------------------------------------------------------------------------------
    def observation_ids(self, messages: list[Message], tools: list[dict] | None = None) -> list[int]:
        """Ids of ``messages`` (tool results, user turns) plus the next generation prompt, as rendered in context
        after an assistant turn and its suffix."""
        if self.rerenders_history(tools):
            # the tool list moves next to the newest user message: it stays in the opening prompt instead, and
            # the new messages are rendered as the template renders them with no tool list to move
            tools = None
        layout = self._layout(tools)
        text = self.render_text(BASE_CONVERSATION + _with_call_ids(messages), tools, generation_prompt=True)
        head = self._head(text, layout.marker)
        # Fast path: tokenize only the new text, where the boundary is known to tokenize the same alone.
        if layout.delta_safe and head in layout.heads.values():
            return self.encode_text(text[len(head) :])
        full, base = self.encode_text(text), self.encode_text(head)
        if full[: len(base)] != base:
            raise TemplateError(
                f"{self.name} is not prefix-stable at the token level: the tokens of an assistant turn's end "
                "change with the messages after it"
            )
        return full[len(base) :]

    def assistant_ids(self, message: Message, tools: list[dict] | None = None) -> list[int]:
        """The ids a model would generate for an assistant ``message``, end-of-turn token included: the template's
        rendering of it as the final turn, after the generation prompt (for SFT and gold play)."""
        user = BASE_CONVERSATION[:1]
        head = self.render(user, tools, generation_prompt=True)
        full = self.render([*user, message], tools)
        suffix = self.turn_suffix(tools)
        if suffix and full[len(full) - len(suffix) :] != suffix:
            raise TemplateError(f"{self.name}: an assistant turn does not end with the turn suffix")
        body = full[len(head) : len(full) - len(suffix)]
        if full[: len(head)] != head or not body or body[-1] not in self.stop_ids:
            raise TemplateError(f"cannot isolate an assistant turn in the rendering of {self.name}")
        return body

    def message_content(self, text: str) -> str:
        """The ``content`` that the template renders back as the generated ``text`` of a plain turn: without the
        whitespace the template itself writes before an assistant's content (Mistral's ``" "``), which the
        model generated after the prompt and a re-rendering would otherwise write twice."""
        if self._content_prefix is None:
            body = self.tokenizer.decode(
                self.assistant_ids({"role": "assistant", "content": SENTINEL}), skip_special_tokens=False
            )
            lead = body[: max(body.find(SENTINEL), 0)]
            self._content_prefix = lead if lead.isspace() else ""
        prefix = self._content_prefix
        return text[len(prefix) :] if prefix and text.startswith(prefix) else text

    def decode_turn(self, ids: list[int]) -> str:
        """The text of a generated turn, without its stop token (what the environment reads)."""
        if ids and ids[-1] in self.stop_ids:
            ids = ids[:-1]
        return self.tokenizer.decode(ids, skip_special_tokens=False)


def _with_call_ids(messages: list[Message]) -> list[Message]:
    """Tool results that answer no call (an error about an unreadable turn) get a placeholder id, so templates
    that require one (Mistral) can still show them."""
    return [
        {**m, "tool_call_id": PROBE_CALL_ID} if m.get("role") == "tool" and not m.get("tool_call_id") else m
        for m in messages
    ]


def _rendered_call(codec: ChatCodec, call: ToolCall) -> str:
    return codec.decode_turn(codec.assistant_ids(chat_template_message("", [call]), PROBE_TOOLS))


def _reads_back(fmt: str, text: str, call: ToolCall) -> bool:
    try:
        calls = FORMATS[fmt].parse(text).tool_calls
    except ValueError:
        return False
    return len(calls) == 1 and calls[0].same_call(call)


def resolve_tool_format(codec: ChatCodec, name: str = AUTO) -> str:
    """The tool-call format to use: ``name`` itself, or for ``"auto"`` the one the chat template renders.

    Auto renders a probe assistant turn with one structured tool call and takes the first format (of
    :data:`AUTO_ORDER`) that reads that call back from the template's text.
    """
    if name != AUTO:
        get_format(name)  # a clear error for an unknown name
        return name
    try:
        text = _rendered_call(codec, NUMBER_CALL)
    except TemplateError as exc:
        raise TemplateError(f"tool_format='auto': {exc}; pass tool_format= explicitly") from exc
    for candidate in AUTO_ORDER:
        if _reads_back(candidate, text, NUMBER_CALL):
            log.info("tool_format=auto: %s renders %s calls", codec.name, candidate)
            return candidate
    raise TemplateError(
        f"tool_format='auto' cannot tell which tool-call format {codec.name} uses: it renders a call to "
        f"get_weather(days=3) as {text!r}, which no known format reads back. Pass tool_format= one of "
        f"{sorted(FORMATS)}"
    )


def renders_calls_faithfully(codec: ChatCodec, fmt: str) -> bool:
    """Whether the template's rendering of a structured call with a string argument reads back as the same call
    in ``fmt``. If not (Llama 3.2's template writes strings unquoted), assistant turns are kept as the text the
    model wrote, which the template renders verbatim, instead of as structured ``tool_calls``."""
    try:
        return _reads_back(fmt, _rendered_call(codec, PROBE_CALL), PROBE_CALL)
    except (TemplateError, KeyError):
        return False


def generation_stop_ids(source: Any) -> list[int]:
    """The ``eos_token_id`` list of a model's ``generation_config`` (a model object, or a checkpoint folder with
    a ``generation_config.json``); empty when there is none."""
    config = getattr(source, "generation_config", None)
    if config is None and isinstance(source, str):
        from pathlib import Path

        path = Path(source) / "generation_config.json"
        config = json.loads(path.read_text()) if path.is_file() else {}
    eos = config.get("eos_token_id") if isinstance(config, dict) else getattr(config, "eos_token_id", None)
    if eos is None:
        return []
    return [int(i) for i in (eos if isinstance(eos, list) else [eos])]


def encode_episode(
    tokenizer: Any,
    messages: list[Message],
    tools: list[dict] | None = None,
    *,
    codec: ChatCodec | None = None,
    template_kwargs: dict[str, Any] | None = None,
) -> tuple[list[int], list[int], list[int]]:
    """``(prompt_ids, response_ids, loss_mask)`` of a finished conversation, built exactly as the collector
    builds a trajectory: the messages before the first assistant turn are the prompt; each assistant turn is
    what the model generates for it (:meth:`ChatCodec.assistant_ids`, mask 1), followed by the turn suffix and
    the next observations (mask 0).

    Pass a trajectory's ``messages`` (assistant turns with structured ``tool_calls``, as the collector records
    them) and the same ``template_kwargs``: the result is that trajectory's ids and mask. Use it for SFT warm-up
    on gold demonstrations.
    """
    codec = codec or ChatCodec(tokenizer, template_kwargs=template_kwargs)
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
