"""Golden tests of token-in-token-out for our template families (our own Jinja templates, local tokenizers).

The scripted policy writes known turns, so the collected ids can be compared with independent renderings.
"""

from __future__ import annotations

import pytest
from lookup_env import ENV_ID, LookupEnv

from resrl import Task, ToolCall, get_format
from resrl.models import build_tokenizer
from resrl.rollout import ChatCodec, Collector, ScriptedPolicy, TemplateError, encode_episode

TASK = Task(
    id="golden-otter",
    env_id=ENV_ID,
    answer=7,
    metadata={"key": "otter"},
    messages=[{"role": "user", "content": "What value is stored under 'otter'? Use the tool."}],
    tools=LookupEnv.tools.schemas(),
)
CALL = [ToolCall(name="lookup", arguments={"key": "otter"})]


@pytest.fixture(scope="module")
def tokenizers():
    return {name: build_tokenizer(name) for name in ("chatml", "compact", "llama3", "think")}


def _collect(tokenizer, respond, tool_format):
    policy = ScriptedPolicy(tokenizer, respond)
    collector = Collector(policy, ENV_ID, tool_format=tool_format, max_turns=4, progress=False)
    return collector.collect([TASK], 1)[0], policy


def _full_ids(tokenizer, traj):
    text = tokenizer.apply_chat_template(traj.messages, tools=TASK.tools, tokenize=False)
    return tokenizer.encode(text, add_special_tokens=False)


def test_chatml_hermes_is_append_only_and_golden(tokenizers):
    tok = tokenizers["chatml"]
    hermes = get_format("hermes")

    def respond(prompt: str) -> str:
        return hermes.render("", CALL) if "<tool_response>" not in prompt else "7"

    traj, _ = _collect(tok, respond, "hermes")
    assert traj.reward == 1.0 and traj.turns == 2 and traj.finish_reason == "stop"
    assert tok.decode(traj.response_ids) == (
        '<tool_call>\n{"name": "lookup", "arguments": {"key": "otter"}}\n</tool_call><|im_end|>\n'
        "<|im_start|>user\n<tool_response>\n7\n</tool_response><|im_end|>\n"
        "<|im_start|>assistant\n7<|im_end|>"
    )
    # Append-only: what was collected is the template's rendering of the whole conversation, up to the
    # template's "\n" after the final <|im_end|> (never generated, so not part of the trajectory).
    suffix = ChatCodec(tok).turn_suffix(TASK.tools)
    assert tok.decode(suffix) == "\n"
    assert traj.prompt_ids + traj.response_ids + suffix == _full_ids(tok, traj)
    # The separator after an assistant turn is present (the verl#6921 drift would drop it) and not trained.
    end = tok.convert_tokens_to_ids("<|im_end|>")
    first_end = traj.response_ids.index(end)
    assert traj.response_ids[first_end + 1 : first_end + 2] == suffix
    assert traj.loss_mask[first_end] == 1 and traj.loss_mask[first_end + 1] == 0
    # SFT encoding of the same conversation is the same sequence and mask.
    assert encode_episode(tok, traj.messages, TASK.tools) == (traj.prompt_ids, traj.response_ids, traj.loss_mask)


def test_compact_template_lists_one_line_per_tool_and_is_append_only(tokenizers):
    tok = tokenizers["compact"]
    hermes = get_format("hermes")
    tools = [
        *TASK.tools,
        {
            "type": "function",
            "function": {
                "name": "convert",
                "description": "Convert an amount.",
                "parameters": {
                    "type": "object",
                    "properties": {"amount": {"type": "number"}, "unit": {"type": "string", "enum": ["kg", "lb"]}},
                    "required": ["amount"],
                },
            },
        },
    ]
    text = tok.apply_chat_template(TASK.messages, tools=tools, tokenize=False, add_generation_prompt=True)
    assert "<tools>\n- lookup(key: string): " in text
    assert "\n- convert(amount: number, unit?: kg|lb): Convert an amount.\n</tools>" in text
    assert '"parameters"' not in text  # no JSON schema: the point of the template is the shorter prompt

    def respond(prompt: str) -> str:
        return hermes.render("", CALL) if "<tool_response>" not in prompt else "7"

    traj, _ = _collect(tok, respond, "hermes")
    assert traj.reward == 1.0 and traj.turns == 2
    suffix = ChatCodec(tok).turn_suffix(TASK.tools)
    assert traj.prompt_ids + traj.response_ids + suffix == _full_ids(tok, traj)
    assert encode_episode(tok, traj.messages, TASK.tools) == (traj.prompt_ids, traj.response_ids, traj.loss_mask)


def test_llama3_headers_is_append_only_and_golden(tokenizers):
    tok = tokenizers["llama3"]
    pythonic = get_format("pythonic")

    def respond(prompt: str) -> str:
        return pythonic.render("", CALL) if "ipython" not in prompt else "7"

    traj, _ = _collect(tok, respond, "pythonic")
    assert traj.reward == 1.0 and traj.turns == 2
    assert tok.decode(traj.response_ids) == (
        "[lookup(key='otter')]<|eot_id|><|start_header_id|>ipython<|end_header_id|>\n7<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n7<|eot_id|>"
    )
    assert ChatCodec(tok).turn_suffix(TASK.tools) == []
    assert traj.prompt_ids + traj.response_ids == _full_ids(tok, traj)
    assert tok.decode(traj.prompt_ids).startswith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>")
    assert encode_episode(tok, traj.messages, TASK.tools) == (traj.prompt_ids, traj.response_ids, traj.loss_mask)


def test_think_template_trains_what_the_model_saw(tokenizers):
    tok = tokenizers["think"]
    hermes = get_format("hermes")

    def respond(prompt: str) -> str:
        if "<tool_response>" not in prompt:
            return "<think>\nI should look it up.\n</think>\n" + hermes.render("", CALL)
        return "<think>\nThe tool said 7.\n</think>\n7"

    traj, policy = _collect(tok, respond, "hermes")
    assert traj.turns == 2 and traj.finish_reason == "stop"
    sequence = traj.prompt_ids + traj.response_ids
    # The default system prompt is there although the task has none.
    assert tok.decode(traj.prompt_ids).startswith("<|im_start|>system\nYou are a careful assistant.")
    # Not append-only: re-rendering the finished conversation drops the earlier <think> blocks ...
    full = _full_ids(tok, traj)
    assert full[: len(traj.prompt_ids)] == traj.prompt_ids
    assert "I should look it up" not in tok.decode(full) and "The tool said" not in tok.decode(full)
    assert full != sequence[: len(full)]
    # ... but what is trained is what the model saw: every prompt it was given is a prefix of the trajectory,
    # followed by exactly the tokens it generated, <think> included.
    assert len(policy.prompts_seen) == 2
    for prompt in policy.prompts_seen:
        assert sequence[: len(prompt)] == prompt
    second = policy.prompts_seen[1]
    assert "<think>\nI should look it up.\n</think>" in tok.decode(second)
    trained = [t for t, m in zip(traj.response_ids, traj.loss_mask, strict=True) if m]
    assert tok.decode(trained).count("<think>") == 2
    assert traj.loss_mask[len(second) - len(traj.prompt_ids)] == 1  # the 2nd turn starts right after its prompt


def test_prefix_instability_is_reported(tokenizers):
    tok = tokenizers["chatml"]
    bad = "{% for m in messages %}{{ m.content }}{% endfor %}{{ eos_token }}"
    # refused when the codec is built (before any episode), not when the first observation comes
    with pytest.raises(TemplateError, match=r"prefix-stable"):
        ChatCodec(tok, chat_template=bad)


def test_tool_sets_are_cached_apart(tokenizers):
    """The codec remembers each tool list's key; lists with other content never get another list's rendering."""
    import copy

    codec = ChatCodec(tokenizers["chatml"])
    messages = TASK.messages
    first = codec.prompt_ids(messages, list(TASK.tools))
    for k in range(3):  # fresh lists, often at a recycled address
        other = copy.deepcopy(TASK.tools)
        other[0]["function"]["name"] = f"other_{k}"
        assert codec.prompt_ids(messages, other) == codec.render(messages, other, generation_prompt=True) != first
        del other
    assert codec.prompt_ids(messages, list(TASK.tools)) == first
    assert codec.prompt_ids(messages, []) == codec.render(messages, None, generation_prompt=True)
