"""Tool-call formats: parse an assistant turn into calls and render calls back into text.

Five families: Hermes/Qwen ``<tool_call>{json}</tool_call>``, OpenAI structured ``tool_calls``, pythonic call
lists ``[f(a=1), g(b="x")]`` (Llama 3.2/4), Llama 3.1's bare ``{"name": ..., "parameters": {...}}`` (optionally
after ``<|python_tag|>``) and Mistral's ``[TOOL_CALLS] [...]`` with 9-character alphanumeric call ids. Pythonic
lists are parsed with :mod:`ast` and literal evaluation only: model output is never executed.

``tool_format="auto"`` is resolved against a tokenizer's chat template by
:func:`resrl.rollout.chat.resolve_tool_format` (it renders a probe call and asks each format to read it back).
"""

from __future__ import annotations

import ast
import hashlib
import json
import keyword
import re
import string
from typing import Any, Protocol

from resrl.core.messages import Message, ParsedAction, ToolCall, assistant_message


class ToolCallParseError(ValueError):
    """The model's turn claims to call tools but cannot be read; ``kind`` names what went wrong."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class ToolCallFormat(Protocol):
    """How one policy/template family writes tool calls."""

    name: str

    def parse(self, action: str | Message) -> ParsedAction:
        """Split an assistant turn into content and calls; raise :class:`ToolCallParseError` if malformed."""
        ...

    def render(self, content: str, calls: list[ToolCall]) -> str | Message:
        """Write content and calls the way this family's model would."""
        ...

    def render_response(self, content: str) -> str:
        """Wrap one tool result the way this family shows it to the model."""
        ...


def _call_from_obj(obj: Any) -> ToolCall:
    if not isinstance(obj, dict):
        raise ToolCallParseError("bad_call", f"a tool call must be a JSON object, got {type(obj).__name__}")
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        raise ToolCallParseError("missing_name", "a tool call needs a non-empty string 'name'")
    args = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(args, str):  # some models double-encode the arguments
        try:
            args = json.loads(args)
        except json.JSONDecodeError as exc:
            raise ToolCallParseError("bad_json", f"arguments of '{name}' are not valid JSON: {exc}") from exc
    if not isinstance(args, dict):
        raise ToolCallParseError("bad_arguments", f"arguments of '{name}' must be a JSON object")
    return ToolCall(name=name, arguments=args)


class HermesFormat:
    """``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` blocks (Hermes, Qwen 2.5/3)."""

    name = "hermes"
    _block = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)

    def parse(self, action: str | Message) -> ParsedAction:
        text = _text_of(action)
        calls = []
        for match in self._block.finditer(text):
            body = match.group(1).strip()
            try:
                obj = json.loads(body)
            except json.JSONDecodeError as exc:
                raise ToolCallParseError("bad_json", f"tool call is not valid JSON: {exc.msg} ({body[:80]!r})") from exc
            calls.append(_call_from_obj(obj))
        rest = self._block.sub("", text)
        if "<tool_call>" in rest or "</tool_call>" in rest:
            raise ToolCallParseError("unclosed_tag", "a <tool_call> tag is not closed (or closed without opening)")
        return ParsedAction(content=rest.strip(), tool_calls=calls)

    def render(self, content: str, calls: list[ToolCall]) -> str:
        # "<\/" keeps a closing tag inside a string argument from ending the block early; JSON reads it as "</"
        blocks = [
            "<tool_call>\n"
            + json.dumps({"name": c.name, "arguments": c.arguments}).replace("</", "<\\/")
            + "\n</tool_call>"
            for c in calls
        ]
        return "\n".join(([content] if content else []) + blocks)

    def render_response(self, content: str) -> str:
        return f"<tool_response>\n{content}\n</tool_response>"


class OpenAIFormat:
    """Structured ``tool_calls`` on the assistant message, as the OpenAI API returns them."""

    name = "openai"

    def parse(self, action: str | Message) -> ParsedAction:
        if isinstance(action, str):
            return ParsedAction(content=action.strip())
        calls = []
        for i, raw in enumerate(action.get("tool_calls") or []):
            if not isinstance(raw, dict) or not isinstance(raw.get("function"), dict):
                raise ToolCallParseError("bad_call", f"tool_calls[{i}] must be an object with a 'function' object")
            call = _call_from_obj(raw["function"])
            call.id = raw.get("id") or f"call_{i}"
            calls.append(call)
        return ParsedAction(content=(action.get("content") or "").strip(), tool_calls=calls)

    def render(self, content: str, calls: list[ToolCall]) -> Message:
        return assistant_message(content, calls)

    def render_response(self, content: str) -> str:
        return content


class PythonicFormat:
    """A Python list of keyword calls, ``[get_weather(city="Oslo"), add(a=1, b=2)]`` (Llama 3.2 style)."""

    name = "pythonic"

    def parse(self, action: str | Message) -> ParsedAction:
        text = _text_of(action).strip()
        start = 0 if text.startswith("[") else text.rfind("\n[") + 1
        if start == 0 and not text.startswith("["):
            return ParsedAction(content=text)
        content, code = text[:start].strip(), text[start:].strip()
        try:
            tree = ast.parse(code, mode="eval").body
        except SyntaxError as exc:
            if "(" not in code:  # a bracketed remark, not an attempted call
                return ParsedAction(content=text)
            raise ToolCallParseError("bad_syntax", f"tool call list is not valid Python syntax: {exc.msg}") from exc
        if not isinstance(tree, ast.List):
            raise ToolCallParseError("bad_call", "tool calls must be a list: [f(a=1), g(b='x')]")
        if not tree.elts and "(" not in code:
            return ParsedAction(content=text)
        return ParsedAction(content=content, tool_calls=[self._call(node) for node in tree.elts])

    @staticmethod
    def _call(node: ast.expr) -> ToolCall:
        if not isinstance(node, ast.Call):
            raise ToolCallParseError("bad_call", f"list element is not a call: {ast.unparse(node)[:60]}")
        name = _dotted_name(node.func)
        if node.args:
            raise ToolCallParseError("positional_args", f"'{name}' uses positional arguments; use name=value")
        args = {}
        for kw in node.keywords:
            if kw.arg is None:
                raise ToolCallParseError("bad_call", f"'{name}' uses ** unpacking, which is not allowed")
            try:
                args[kw.arg] = ast.literal_eval(kw.value)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as exc:
                raise ToolCallParseError(
                    "non_literal", f"argument '{kw.arg}' of '{name}' is not a literal value"
                ) from exc
        return ToolCall(name=name, arguments=args)

    def render(self, content: str, calls: list[ToolCall]) -> str:
        for c in calls:
            bad = [n for n in (*c.name.split("."), *c.arguments) if not n.isidentifier() or keyword.iskeyword(n)]
            if bad:
                raise ValueError(f"the pythonic format cannot write {c.name!r}: {bad[0]!r} is not a Python name")
        body = ", ".join(f"{c.name}(" + ", ".join(f"{k}={v!r}" for k, v in c.arguments.items()) + ")" for c in calls)
        listing = f"[{body}]" if calls else ""
        return "\n".join(part for part in (content, listing) if part)

    def render_response(self, content: str) -> str:
        return content


def _template_json(obj: Any) -> str:
    """JSON as the chat templates' ``tojson`` writes it (Hugging Face's filter keeps non-ASCII characters)."""
    return json.dumps(obj, ensure_ascii=False)


def _json_objects(text: str, where: str) -> list[Any]:
    """The JSON values in ``text``, one after another, separated by whitespace or ``;``."""
    decoder = json.JSONDecoder()
    values, i = [], 0
    while True:
        while i < len(text) and (text[i].isspace() or text[i] == ";"):
            i += 1
        if i >= len(text):
            return values
        try:
            value, i = decoder.raw_decode(text, i)
        except json.JSONDecodeError as exc:
            snippet = text[i : i + 80]
            raise ToolCallParseError("bad_json", f"{where} is not valid JSON: {exc.msg} ({snippet!r})") from exc
        values.append(value)


class Llama3JsonFormat:
    """A bare ``{"name": ..., "parameters": {...}}`` turn (Llama 3.1/3.3), optionally after ``<|python_tag|>``;
    several calls are separated by ``;``. Tool results go back as role ``ipython`` (the template's own choice)."""

    name = "llama3_json"
    python_tag = "<|python_tag|>"
    _call_start = re.compile(r'^\s*\{\s*"name"\s*:')

    def parse(self, action: str | Message) -> ParsedAction:
        text = _text_of(action)
        tagged = self.python_tag in text
        if tagged:
            content, _, body = text.partition(self.python_tag)
        elif self._call_start.match(text):
            content, body = "", text
        else:
            return ParsedAction(content=text.strip())
        calls = []
        for obj in _json_objects(body.strip(), "the tool call"):
            items = obj if isinstance(obj, list) else [obj]
            calls.extend(_call_from_obj(item) for item in items)
        if not calls:
            raise ToolCallParseError("bad_call", f"{self.python_tag} is not followed by a call")
        return ParsedAction(content=content.strip(), tool_calls=calls)

    def render(self, content: str, calls: list[ToolCall]) -> str:
        # the template's own rendering of a call: name first, then "parameters"; after text, the python tag
        # marks where the calls begin (a bare object is a call only at the start of the turn)
        body = "; ".join(_template_json({"name": c.name, "parameters": c.arguments}) for c in calls)
        if content and body:
            return content + self.python_tag + body
        return content or body

    def render_response(self, content: str) -> str:
        return _template_json({"output": content})


MISTRAL_ID_LENGTH = 9
_ID_ALPHABET = string.ascii_letters + string.digits


def mistral_call_id(*parts: object) -> str:
    """A 9-character alphanumeric tool-call id (what Mistral templates require), derived from ``parts``."""
    digest = int.from_bytes(hashlib.sha256(repr(parts).encode()).digest(), "big")
    out = []
    for _ in range(MISTRAL_ID_LENGTH):
        digest, k = divmod(digest, len(_ID_ALPHABET))
        out.append(_ID_ALPHABET[k])
    return "".join(out)


def valid_mistral_id(value: object) -> bool:
    """Whether ``value`` is a 9-character alphanumeric string."""
    return isinstance(value, str) and len(value) == MISTRAL_ID_LENGTH and value.isascii() and value.isalnum()


class MistralFormat:
    """``[TOOL_CALLS] [{"name": ..., "arguments": {...}, "id": "a1B2c3D4e"}]`` (Mistral). A call whose id is
    missing or not 9 alphanumerics gets one derived from its position and content, so its result can be shown
    with the id the template requires."""

    name = "mistral"
    tag = "[TOOL_CALLS]"

    def parse(self, action: str | Message) -> ParsedAction:
        text = _text_of(action)
        if self.tag not in text:
            return ParsedAction(content=text.strip())
        content, _, body = text.partition(self.tag)
        values = _json_objects(body.strip(), "the [TOOL_CALLS] list")
        items = [item for v in values for item in (v if isinstance(v, list) else [v])]
        if not items:
            raise ToolCallParseError("bad_call", "[TOOL_CALLS] is not followed by a call")
        calls = []
        for i, item in enumerate(items):
            call = _call_from_obj(item)
            given = item.get("id")
            call.id = given if valid_mistral_id(given) else mistral_call_id(i, call.name, call.arguments)
            calls.append(call)
        return ParsedAction(content=content.strip(), tool_calls=calls)

    def render(self, content: str, calls: list[ToolCall]) -> str:
        items = []
        for i, c in enumerate(calls):
            cid = c.id if valid_mistral_id(c.id) else mistral_call_id(i, c.name, c.arguments)
            items.append(_template_json({"name": c.name, "arguments": c.arguments})[:-1] + f', "id": "{cid}"}}')
        body = f"{self.tag} [" + ", ".join(items) + "]" if calls else ""
        return "".join(part for part in (content, body) if part)

    def render_response(self, content: str) -> str:
        return content


def _dotted_name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted_name(node.value)}.{node.attr}"
    raise ToolCallParseError("bad_call", "a call must name its function directly (f(...) or module.f(...))")


def _text_of(action: str | Message) -> str:
    if isinstance(action, str):
        return action
    content = action.get("content")
    return content if isinstance(content, str) else ""


FORMATS: dict[str, ToolCallFormat] = {
    f.name: f for f in (HermesFormat(), OpenAIFormat(), PythonicFormat(), Llama3JsonFormat(), MistralFormat())
}
AUTO = "auto"


def get_format(name: str) -> ToolCallFormat:
    """The format called ``name`` (``hermes``, ``openai``, ``pythonic``, ``llama3_json`` or ``mistral``)."""
    if name == AUTO:
        raise ValueError(
            "tool_format='auto' must be resolved against the policy's tokenizer first "
            "(resrl.rollout.chat.resolve_tool_format); an env needs a concrete format"
        )
    try:
        return FORMATS[name]
    except KeyError:
        raise ValueError(f"unknown tool-call format {name!r}; choose one of {sorted(FORMATS)} or 'auto'") from None


def parse_action(action: str | Message, fmt: ToolCallFormat) -> ParsedAction:
    """Read an action: a message carrying structured ``tool_calls`` is read as such, anything else by ``fmt``."""
    if isinstance(action, dict) and action.get("tool_calls"):
        return FORMATS["openai"].parse(action)
    if not isinstance(action, str | dict):
        raise ToolCallParseError("bad_action", f"an action is text or a message dict, got {type(action).__name__}")
    return fmt.parse(action)
