"""Tool-call formats: render→parse is the identity; malformed text gives a typed error, never an exception."""

from __future__ import annotations

import contextlib
import keyword

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resrl.core.formats import FORMATS, ToolCallParseError, get_format, parse_action
from resrl.core.messages import ToolCall

# names a Python parser accepts: the pythonic format cannot write keywords (tested below)
names = st.from_regex(r"[a-z_][a-z0-9_]{0,12}(\.[a-z_][a-z0-9_]{0,8})?", fullmatch=True).filter(
    lambda n: not any(keyword.iskeyword(part) for part in n.split("."))
)
keys = st.from_regex(r"[a-z_][a-z0-9_]{0,10}", fullmatch=True).filter(lambda k: not keyword.iskeyword(k))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(max_size=30),
)
values = st.recursive(
    scalars, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(keys, kids, max_size=3), max_leaves=8
)
calls = st.builds(lambda n, a: ToolCall(name=n, arguments=a), names, st.dictionaries(keys, values, max_size=4))
contents = (
    st.text(max_size=60)
    .map(str.strip)
    .filter(lambda s: "<tool_call>" not in s and "</tool_call>" not in s and "[" not in s)
)


@pytest.mark.parametrize("fmt_name", sorted(FORMATS))
@settings(max_examples=150, deadline=None)
@given(content=contents, tool_calls=st.lists(calls, max_size=4))
def test_render_then_parse_is_identity(fmt_name: str, content: str, tool_calls: list[ToolCall]) -> None:
    fmt = get_format(fmt_name)
    parsed = fmt.parse(fmt.render(content, tool_calls))
    assert parsed.content == content
    assert [(c.name, c.arguments) for c in parsed.tool_calls] == [(c.name, c.arguments) for c in tool_calls]


@pytest.mark.parametrize(
    ("fmt_name", "text", "kind"),
    [
        ("hermes", "<tool_call>{not json}</tool_call>", "bad_json"),
        ("hermes", '<tool_call>{"name": "f", "arguments": {}}', "unclosed_tag"),
        ("hermes", '<tool_call>{"arguments": {}}</tool_call>', "missing_name"),
        ("hermes", '<tool_call>{"name": "f", "arguments": [1]}</tool_call>', "bad_arguments"),
        ("hermes", "<tool_call>[1, 2]</tool_call>", "bad_call"),
        ("pythonic", "[f(a=1), g(b=", "bad_syntax"),
        ("pythonic", "[f(1)]", "positional_args"),
        ("pythonic", "[f(a=open('x'))]", "non_literal"),
        ("pythonic", "[__import__('os').system('true')]", "bad_call"),
        ("pythonic", "[f(**kw)]", "bad_call"),
        ("pythonic", "[1, 2]", "bad_call"),
    ],
)
def test_malformed_text_gives_typed_error(fmt_name: str, text: str, kind: str) -> None:
    with pytest.raises(ToolCallParseError) as info:
        get_format(fmt_name).parse(text)
    assert info.value.kind == kind
    assert str(info.value)


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=200))
def test_arbitrary_text_parses_or_raises_typed_error(text: str) -> None:
    for fmt in FORMATS.values():
        with contextlib.suppress(ToolCallParseError):
            fmt.parse(text)


def test_pythonic_never_evaluates() -> None:
    # a call list whose evaluation would have a side effect is rejected, not run
    with pytest.raises(ToolCallParseError):
        get_format("pythonic").parse("[f(a=print('side effect') or 1)]")


def test_openai_message_and_text_fallback() -> None:
    msg = {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"x": 2}'}}],
    }
    parsed = parse_action(msg, get_format("hermes"))
    assert parsed.tool_calls[0].name == "f" and parsed.tool_calls[0].arguments == {"x": 2}
    assert parsed.tool_calls[0].id == "c1"
    with pytest.raises(ToolCallParseError) as info:
        parse_action(
            {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{"}}]}, get_format("hermes")
        )
    assert info.value.kind == "bad_json"


def test_content_beside_calls_is_kept() -> None:
    text = 'Let me check.\n<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>'
    parsed = get_format("hermes").parse(text)
    assert parsed.content == "Let me check." and parsed.tool_calls[0].arguments == {"a": 1}
    parsed = get_format("pythonic").parse('I will call it.\n[f(a=1, b="x")]')
    assert parsed.content == "I will call it." and parsed.tool_calls[0].arguments == {"a": 1, "b": "x"}
    assert get_format("pythonic").parse("[see above]").tool_calls == []


def test_pythonic_refuses_names_it_cannot_write() -> None:
    with pytest.raises(ValueError, match="'as' is not a Python name"):
        get_format("pythonic").render("", [ToolCall(name="as", arguments={})])
    with pytest.raises(ValueError, match="'class' is not a Python name"):
        get_format("pythonic").render("", [ToolCall(name="f", arguments={"class": 1})])


def test_unknown_format_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown tool-call format 'xml'"):
        get_format("xml")
