"""The native tool-call formats of Llama 3.1 (``llama3_json``) and Mistral (``mistral``), and ``tool_format=auto``."""

from __future__ import annotations

import pytest
from real_templates import FAMILIES, family_tokenizer

from resrl import ToolCall, ToolCallParseError, get_format
from resrl.core.formats import mistral_call_id, valid_mistral_id
from resrl.rollout import ChatCodec, TemplateError, resolve_tool_format

CALLS = [ToolCall(name="get_balance", arguments={"account": "college"}), ToolCall(name="ping", arguments={})]


def test_llama3_json_reads_bare_json_the_python_tag_and_several_calls():
    fmt = get_format("llama3_json")
    bare = fmt.parse('{"name": "get_balance", "parameters": {"account": "college"}}')
    assert [c.name for c in bare.tool_calls] == ["get_balance"] and bare.tool_calls[0].arguments == {
        "account": "college"
    }
    tagged = fmt.parse(
        'Let me see.<|python_tag|>{"name": "get_balance", "arguments": {"account": "x"}}; '
        '{"name": "ping", "parameters": {}}'
    )
    assert tagged.content == "Let me see." and [c.name for c in tagged.tool_calls] == ["get_balance", "ping"]
    assert fmt.parse("Your balance is 12.").tool_calls == []
    assert fmt.parse('{"total": 3} is the JSON you asked for').tool_calls == []  # JSON, but not a call
    round_trip = fmt.parse(fmt.render("", CALLS)).tool_calls
    assert all(a.same_call(b) for a, b in zip(round_trip, CALLS, strict=True)) and len(round_trip) == 2


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ('{"name": "get_balance", "parameters": {"account": ', "bad_json"),
        ("<|python_tag|>", "bad_call"),
        ('<|python_tag|>{"parameters": {}}', "missing_name"),
        ('{"name": "f", "parameters": [1]}', "bad_arguments"),
    ],
)
def test_llama3_json_errors_are_typed(text, kind):
    with pytest.raises(ToolCallParseError) as err:
        get_format("llama3_json").parse(text)
    assert err.value.kind == kind


def test_mistral_ids_are_nine_alphanumerics():
    fmt = get_format("mistral")
    text = fmt.render("", CALLS)
    assert text.startswith('[TOOL_CALLS] [{"name": "get_balance", "arguments": {"account": "college"}, "id": "')
    parsed = fmt.parse(text).tool_calls
    assert all(valid_mistral_id(c.id) for c in parsed) and len({c.id for c in parsed}) == 2
    given = fmt.parse('[TOOL_CALLS] [{"name": "ping", "arguments": {}, "id": "abcDEF123"}]').tool_calls
    assert given[0].id == "abcDEF123"
    # a missing or malformed id is replaced by a valid one, so the result can be shown with it
    bad = fmt.parse('[TOOL_CALLS] [{"name": "ping", "arguments": {}, "id": "call_1"}]').tool_calls
    assert valid_mistral_id(bad[0].id) and bad[0].id == mistral_call_id(0, "ping", {})
    assert fmt.parse("No tool needed.").tool_calls == []
    with pytest.raises(ToolCallParseError) as err:
        fmt.parse('[TOOL_CALLS] [{"name": "ping", "arguments": {')
    assert err.value.kind == "bad_json"


def test_auto_cannot_be_used_without_a_tokenizer():
    with pytest.raises(ValueError, match="resolve_tool_format"):
        get_format("auto")
    with pytest.raises(ValueError, match="unknown tool-call format"):
        get_format("xml")


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_auto_picks_the_format_the_template_renders(family, chat_templates, base_tokenizer):
    codec = ChatCodec(family_tokenizer(base_tokenizer, family), template_kwargs=family.kwargs)
    assert resolve_tool_format(codec) == family.native
    assert resolve_tool_format(codec, "pythonic") == "pythonic"  # an explicit choice is kept


def test_auto_explains_a_template_without_tool_calls(base_tokenizer):
    plain = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    plain += "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    codec = ChatCodec(base_tokenizer, chat_template=plain)
    with pytest.raises(TemplateError, match=r"cannot tell which tool-call format.*Pass tool_format="):
        resolve_tool_format(codec)
