"""Token-exact collection with the real chat templates of seven model families (``../shared/chat_templates``).

Gold episodes of ``fc/multi`` domains (tool calls, tool results, new user turns, a ``miss_func`` reveal) are
played through the real collector with each family's template on the tiny tokenizer. For each trajectory:

1. ``prompt_ids + response_ids`` (+ the turn suffix) equal the template's rendering of the recorded conversation;
2. every prompt the policy was given equals ``apply_chat_template(conversation so far, add_generation_prompt)``;
3. ``loss_mask`` is 1 on exactly the generated tokens, end-of-turn token included;
4. ``encode_episode`` (SFT) gives the same ids and mask.

Qwen3 and Mistral re-render history by design; for them 1 and 2 hold after the one documented normalisation
(Qwen3's empty think blocks of earlier turns; Mistral's tool list position), and the tests assert that the
difference is exactly that.
"""

from __future__ import annotations

import re

import pytest
from real_templates import FAMILIES, REFUSED, Family, family_tokenizer

import resrl
from resrl.rollout import Collector, GoldPolicy, TemplateError, encode_episode
from resrl.rollout.policy import per_prompt

DOMAINS = [("fc/multi/banking", 1), ("fc/multi/calendar/miss_func", 1), ("fc/multi/travel", 1)]
EMPTY_THINK = "<think>\n\n</think>\n\n"
TOOLS_BLOCK = re.compile(r"\[AVAILABLE_TOOLS\].*?\[/AVAILABLE_TOOLS\]", re.DOTALL)


class RecordingGold(GoldPolicy):
    """The gold policy, keeping every prompt it was given and the turn it returned."""

    def __init__(self, tokenizer):
        super().__init__(tokenizer)
        self.calls: list[tuple[list[int], list[int]]] = []

    def generate(self, prompts, sampling):
        out = super().generate(prompts, sampling)
        self.calls += [(list(p), list(g.token_ids)) for p, g in zip(prompts, out, strict=True)]
        return out


def normalise(family: Family, text: str, messages: list[dict]) -> str:
    """The difference a template's re-rendering of history makes, taken out (identity for the others): Qwen3's
    empty think blocks; Mistral's tool list (put before the first user message) and system prompt (dropped)."""
    if family.file == "qwen3.jinja":
        return text.replace(EMPTY_THINK, "")
    if family.file == "mistral-official.jinja":
        if messages and messages[0]["role"] == "system":
            for sep in ("\\n\\n", "\n\n"):  # the template writes a literal backslash-n pair
                text = text.replace(messages[0]["content"] + sep, "")
        blocks = TOOLS_BLOCK.findall(text)
        if not blocks:
            return text
        bare = TOOLS_BLOCK.sub("", text)
        first = bare.find("[INST]")
        return bare[:first] + blocks[0] + bare[first:]
    return text


@pytest.fixture(scope="module", params=FAMILIES, ids=lambda f: f.name)
def collected(request, chat_templates, base_tokenizer):
    family: Family = request.param
    tok = family_tokenizer(base_tokenizer, family)
    policy = RecordingGold(tok)
    runs = []
    for env_id, n_tasks in DOMAINS:
        collector = Collector(
            policy, env_id, max_turns=16, max_tokens=8192, chat_template_kwargs=family.kwargs, progress=False
        )
        tasks = resrl.make(env_id).generate_tasks("test", n_tasks, 5)
        env = resrl.make(env_id)
        for task, traj in zip(tasks, collector.collect(tasks, 1), strict=True):
            tools = env.reset(options={"task": task})[1]["tools"]
            runs.append((traj, tools, collector))
    return family, tok, policy, runs


def _render(tok, family, messages, tools, generation_prompt):
    return tok.apply_chat_template(
        messages, tools=tools, tokenize=False, add_generation_prompt=generation_prompt, **family.kwargs
    )


def _text(tok, ids):
    return tok.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


def _turns_of(policy, traj):
    """The (prompt, generated) pairs of one trajectory's episode, in order."""
    seq = traj.prompt_ids + traj.response_ids
    return sorted(
        {(tuple(p), tuple(g)) for p, g in policy.calls if seq[: len(p) + len(g)] == p + g}, key=lambda x: len(x[0])
    )


def test_gold_episodes_succeed_in_the_native_format(collected):
    family, _, _, runs = collected
    for traj, _, collector in runs:
        assert collector.tool_format == family.native
        assert traj.infra_error is None and traj.finish_reason == "stop" and traj.reward == 1.0, traj.task_id
        calls = [m for m in traj.messages if m["role"] == "assistant" and ("tool_calls" in m or "(" in m["content"])]
        assert calls, "a gold episode calls tools"
    # a miss_func episode gets its reveal (a new user turn carrying the new tool definitions) and uses it
    reveals = [t for t, _, _ in runs if any("New tools are now available" in str(m["content"]) for m in t.messages)]
    assert reveals


def test_what_was_collected_is_the_template_rendering_of_the_conversation(collected):
    family, tok, _, runs = collected
    differs = False
    for traj, tools, collector in runs:
        suffix = collector.codec.turn_suffix(tools)
        ours = traj.prompt_ids + traj.response_ids + suffix
        theirs = _render(tok, family, traj.messages, tools, False)
        m = traj.messages
        if normalise(family, theirs, m) == theirs and normalise(family, _text(tok, ours), m) == _text(tok, ours):
            assert ours == tok.encode(theirs, add_special_tokens=False), traj.task_id
        else:
            assert normalise(family, _text(tok, ours), m) == normalise(family, theirs, m), traj.task_id
            differs = differs or _text(tok, ours) != theirs
    # Qwen3 and Mistral really re-render history (else the normalisation would hide nothing); the others don't
    assert differs == (family.file in ("qwen3.jinja", "mistral-official.jinja"))


def test_every_prompt_is_the_template_rendering_of_the_conversation_so_far(collected):
    family, tok, policy, runs = collected
    for traj, tools, _ in runs:
        turns = _turns_of(policy, traj)
        assistant_at = [i for i, m in enumerate(traj.messages) if m["role"] == "assistant"]
        assert len(turns) == len(assistant_at)
        for (prompt, _), at in zip(turns, assistant_at, strict=True):
            theirs = _render(tok, family, traj.messages[:at], tools, True)
            if family.file in ("qwen3.jinja", "mistral-official.jinja"):
                m = traj.messages
                assert normalise(family, _text(tok, list(prompt)), m) == normalise(family, theirs, m)
            else:
                assert list(prompt) == tok.encode(theirs, add_special_tokens=False)
        # before the first generated turn there is no history to re-render: exact for every template
        first = _render(tok, family, traj.messages[: assistant_at[0]], tools, True)
        assert list(turns[0][0]) == tok.encode(first, add_special_tokens=False) == traj.prompt_ids


def test_loss_mask_is_exactly_the_generated_tokens(collected):
    family, tok, policy, runs = collected
    eot = tok.convert_tokens_to_ids(family.eos)
    for traj, _, collector in runs:
        assert collector.codec.stop_ids[0] == eot
        expected = [0] * len(traj.response_ids)
        for prompt, generated in _turns_of(policy, traj):
            start = len(prompt) - len(traj.prompt_ids)
            assert traj.response_ids[start : start + len(generated)] == list(generated)
            assert generated[-1] == eot  # the end-of-turn token is generated, so it is trained
            expected[start : start + len(generated)] = [1] * len(generated)
        assert traj.loss_mask == expected
        texts = [_text(tok, list(g)).removeprefix(EMPTY_THINK) for _, g in _turns_of(policy, traj)]
        assert any(t.startswith(family.marker) for t in texts)  # the native call syntax


def test_sft_encoding_equals_the_collected_trajectory(collected):
    family, tok, _, runs = collected
    for traj, tools, _ in runs:
        encoded = encode_episode(tok, traj.messages, tools, template_kwargs=family.kwargs)
        assert encoded == (traj.prompt_ids, traj.response_ids, traj.loss_mask), traj.task_id


QWEN3 = [f for f in FAMILIES if f.file == "qwen3.jinja"]
MISTRAL_OFFICIAL = [f for f in FAMILIES if f.file == "mistral-official.jinja"]


@pytest.mark.parametrize("collected", QWEN3, ids=lambda f: f.name, indirect=True)
def test_qwen3_keeps_what_the_model_saw(collected):
    """Qwen3's template drops earlier turns' (empty) think blocks when it re-renders; the trajectory keeps them:
    generated (mask 1) with thinking on, part of the generation prompt (mask 0) with thinking off."""
    family, tok, policy, runs = collected
    think = tok.encode(EMPTY_THINK, add_special_tokens=False)
    for traj, tools, _ in runs:
        turns = _turns_of(policy, traj)
        ours = _text(tok, traj.prompt_ids + traj.response_ids)
        assert ours.count(EMPTY_THINK) == len(turns)
        theirs = _render(tok, family, traj.messages, tools, False)
        assert theirs.count(EMPTY_THINK) == 1  # only the final turn keeps its block
        for prompt, generated in turns:
            start = len(prompt) - len(traj.prompt_ids)
            if family.kwargs.get("enable_thinking") is False:
                assert list(prompt[-len(think) :]) == think and generated[: len(think)] != tuple(think)
                if start:  # after the opening prompt the block is observation text: never trained
                    assert traj.loss_mask[start - len(think) : start] == [0] * len(think)
            else:
                assert list(generated[: len(think)]) == think
                assert traj.loss_mask[start : start + len(think)] == [1] * len(think)


@pytest.mark.parametrize("collected", MISTRAL_OFFICIAL, ids=lambda f: f.name, indirect=True)
def test_mistral_keeps_the_tool_list_in_the_opening_prompt(collected):
    """Mistral writes the tool list before the newest user message; the trajectory keeps it where the opening
    prompt has it (once), and the call ids are the 9 alphanumerics the template requires, answered in kind."""
    family, tok, _, runs = collected
    for traj, tools, collector in runs:
        assert collector.codec.rerenders_history(tools)
        ours = _text(tok, traj.prompt_ids + traj.response_ids)
        assert len(TOOLS_BLOCK.findall(ours)) == 1 and ours.index("[AVAILABLE_TOOLS]") < ours.index("[INST]")
        theirs = _render(tok, family, traj.messages, tools, False)
        assert theirs.rindex("[INST]") > theirs.index("[/AVAILABLE_TOOLS]") > theirs.index("[INST]")
        ids = [c["id"] for m in traj.messages for c in m.get("tool_calls", [])]
        answers = [m["tool_call_id"] for m in traj.messages if m["role"] == "tool"]
        assert ids == answers and all(len(i) == 9 and i.isalnum() for i in ids)


def test_qwen3_reasoning_is_trained_as_generated(chat_templates, base_tokenizer):
    """With real reasoning, later prompts carry the earlier turns' reasoning (what the model saw); the template's
    re-rendering after a new user turn drops it, and SFT encoding still equals the trajectory."""
    family = next(f for f in FAMILIES if f.name == "qwen3-thinking")
    tok = family_tokenizer(base_tokenizer, family)
    think = tok.encode(EMPTY_THINK, add_special_tokens=False)

    class Reasoning(RecordingGold):
        """Each gold turn with a reasoning note in place of the empty think block."""

        def generate(self, prompts, sampling):
            out = []
            for p, params in zip(prompts, per_prompt(sampling, len(prompts)), strict=True):
                game = self._game(p)
                k = game.turn_of(p)  # which gold turn this is, told by what the earlier turns left
                (g,) = GoldPolicy.generate(self, [p], params)
                note = tok.encode(f"<think>\nStep {len(p)}.\n</think>\n\n", add_special_tokens=False)
                g.token_ids = note + g.token_ids[len(think) :]
                g.logprobs = [0.0] * len(g.token_ids)
                game.after[k] = tuple(p) + tuple(g.token_ids)
                self.calls.append((list(p), list(g.token_ids)))
                out.append(g)
            return out

    policy = Reasoning(tok)
    env_id = "fc/multi/banking"
    tasks = resrl.make(env_id).generate_tasks("test", 2, 5)
    trajs = Collector(policy, env_id, max_turns=16, max_tokens=8192, progress=False).collect(tasks, 1)
    env = resrl.make(env_id)
    for task, traj in zip(tasks, trajs, strict=True):
        assert traj.reward == 1.0
        tools = env.reset(options={"task": task})[1]["tools"]
        turns = _turns_of(policy, traj)
        notes = [f"Step {len(p)}." for p, _ in turns]
        trained = _text(tok, [t for t, m in zip(traj.response_ids, traj.loss_mask, strict=True) if m])
        assert all(n in trained for n in notes)
        assert all(n in _text(tok, list(turns[-1][0])) for n in notes[:-1])  # the last prompt shows them all
        theirs = _render(tok, family, traj.messages, tools, False)
        assert notes[-1] in theirs and not all(n in theirs for n in notes)  # earlier user turns' reasoning dropped
        encoded = encode_episode(tok, traj.messages, tools)
        assert encoded == (traj.prompt_ids, traj.response_ids, traj.loss_mask)


def test_mistral_v03_is_refused_before_the_first_episode(chat_templates, base_tokenizer):
    tok = family_tokenizer(base_tokenizer, REFUSED)
    with pytest.raises(TemplateError, match=r"chat template of .*sha1.*' </s>'.*Use a template"):
        Collector(GoldPolicy(tok), "fc/multi/banking", progress=False)
