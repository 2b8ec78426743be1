"""``resrl demo --quick``: the demo's whole pipeline, at smoke size, on the real fc environments; and the parts
the full demo's numbers rest on (held-out tasks, the tokenizer's copy pretokenization, the SFT options)."""

from __future__ import annotations

import json
import math

import pytest

from resrl.cli import main
from resrl.trainer.demo import DEMO_ENVS, heldout_tasks


def test_quick_demo_runs_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "held-out" in printed and "fc/simple" in printed and "Pass@2 all" in printed
    result = json.loads((out / "demo_result.json").read_text())
    sides = [result["before"], result["after"], result["test_split"]["before"], result["test_split"]["after"]]
    for side in sides:
        assert side["tasks"] == 8  # 2 tasks x (3 single-turn envs + 1 multi-turn domain)
        assert side["k"] == 2
        for key in ("avg_at_k", "pass_at_k", *(f"avg_at_k/{env}" for env in DEMO_ENVS)):
            assert math.isfinite(side[key]) and 0.0 <= side[key] <= 1.0, key
    assert result["cpu_s"] > 0 and result["wall_s"] >= result["sft_wall_s"] > 0
    assert (out / "warm" / "model" / "model.safetensors").is_file()
    for stage in ("stage1_single", "stage2_multi"):
        assert (out / stage / "reward.png").is_file()
        assert (out / stage / "metrics.jsonl").read_text().count('"kind": "train"') >= 1


def test_heldout_tasks_share_no_request_with_training_tasks():
    from resrl.trainer.loop import make_tasks

    seen = make_tasks(["fc/simple", "fc/multi/smarthome"], "train", 40, 0)
    held = heldout_tasks(["fc/simple", "fc/multi/smarthome"], 8, seen)
    assert len(held) == 16 and {t.split for t in held} == {"train"}
    requests = {json.dumps(t.metadata.get("user_turns") or t.messages[1]["content"]) for t in seen}
    assert not requests & {json.dumps(t.metadata.get("user_turns") or t.messages[1]["content"]) for t in held}
    with pytest.raises(ValueError, match="held-out"):  # every task of the training seed itself is seen
        heldout_tasks(["fc/simple"], 8, make_tasks(["fc/simple"], "train", 24, 0), seed=0)


def test_copy_pretokenization_spells_a_value_alike_in_request_and_call():
    from resrl.models import build_tokenizer

    tok = build_tokenizer(vocab_size=512, pretokenize="copy", texts=["Visit Oslo.", '{"city": "Oslo"}'] * 50)
    ids = lambda text: tok(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    oslo = ids("Oslo")
    request, call = ids("Please visit Oslo 2026."), ids('{"city": "Oslo", "year": 2026}')
    for seq in (request, call):
        assert any(seq[i : i + len(oslo)] == oslo for i in range(len(seq)))
        assert tok.decode(seq).count("2026") == 1
    assert len([t for t in call if tok.decode([t]).isdigit()]) == 4  # one token per digit
    text = 'Convert 12.5 "Oslo" kroner\n<tool_call>\n{"a": [1, 2]}\n</tool_call>'
    assert tok.decode(ids(text)) == text
    with pytest.raises(ValueError, match="pretokenize"):
        build_tokenizer(pretokenize="words")


def test_sft_options_lower_the_policy_loss(tiny_model):
    from resrl.trainer.config import ModelConfig
    from resrl.trainer.loop import make_tasks
    from resrl.trainer.modeling import load_model
    from resrl.trainer.sft import sft_warmup

    model, tokenizer = load_model(ModelConfig(path=str(tiny_model)))
    tasks = make_tasks(["test/parity"], "train", 8, 0)
    losses = sft_warmup(
        model, tokenizer, tasks, epochs=8, batch_size=4, lr=3e-3, schedule="cosine", by_length=True, context_weight=0.5
    )
    assert len(losses) == 16 and all(math.isfinite(x) for x in losses)
    assert sum(losses[-4:]) < 0.75 * sum(losses[:4])  # seeded: 23.2 -> 14.8 measured
    with pytest.raises(ValueError, match="schedule"):
        sft_warmup(model, tokenizer, tasks, schedule="linear")


def test_request_only_demos_keep_the_request_and_the_gold_call(tiny_model):
    from resrl.trainer.config import ModelConfig
    from resrl.trainer.loop import make_tasks
    from resrl.trainer.modeling import load_model
    from resrl.trainer.sft import gold_trajectories

    _, tokenizer = load_model(ModelConfig(path=str(tiny_model)))
    tasks = make_tasks(["fc/simple"], "train", 3, 0)
    full = gold_trajectories(tasks, tokenizer)
    short = gold_trajectories(tasks, tokenizer, view="request")
    for task, whole, brief in zip(tasks, full, short, strict=True):
        prompt = tokenizer.decode(brief.prompt_ids)
        assert task.messages[1]["content"] in prompt
        assert "<tools>" not in prompt and "helpful assistant" not in prompt
        assert 2 * len(brief.prompt_ids) < len(whole.prompt_ids)
        assert brief.response_ids == whole.response_ids and brief.loss_mask == whole.loss_mask


def test_tool_names_demos_keep_the_system_prompt_request_and_tool_names_only(tiny_model):
    from resrl.trainer.config import ModelConfig
    from resrl.trainer.loop import make_tasks
    from resrl.trainer.modeling import load_model
    from resrl.trainer.sft import gold_trajectories

    _, tokenizer = load_model(ModelConfig(path=str(tiny_model)))
    tasks = make_tasks(["fc/multiple", "fc/irrelevance"], "train", 2, 0)
    full = gold_trajectories(tasks, tokenizer)
    named = gold_trajectories(tasks, tokenizer, view="tool_names")
    for task, whole, brief in zip(tasks, full, named, strict=True):
        prompt = tokenizer.decode(brief.prompt_ids)
        assert task.messages[-1]["content"] in prompt and "helpful assistant" in prompt
        for tool in task.tools:
            assert tool["function"]["name"] in prompt and tool["function"]["description"] in prompt
        assert '"parameters"' not in prompt and '"parameters"' in tokenizer.decode(whole.prompt_ids)
        assert len(brief.prompt_ids) < len(whole.prompt_ids)
        assert brief.response_ids == whole.response_ids and brief.loss_mask == whole.loss_mask
    with pytest.raises(ValueError, match="view"):
        gold_trajectories(tasks, tokenizer, view="short")


def test_copy_init_attention_copies_what_it_attends_to():
    import torch

    from resrl.models import build_model

    plain = build_model(64, hidden=32, layers=2, heads=4, seed=0)
    copier = build_model(64, hidden=32, layers=2, heads=4, seed=0, copy_init=True)
    assert plain.config.num_key_value_heads == 2 and copier.config.num_key_value_heads == 4
    for layer in copier.model.layers:
        attn = layer.self_attn
        assert torch.equal(attn.o_proj.weight @ attn.v_proj.weight, torch.eye(32))
    for layer in plain.model.layers:
        assert not torch.allclose(layer.self_attn.o_proj.weight, torch.eye(32))


def test_named_tools_open_each_reply_to_a_user_turn_and_keep_the_reward():
    from resrl.trainer.loop import make_tasks
    from resrl.trainer.sft import gold_conversation

    tasks = make_tasks(["fc/simple", "fc/irrelevance", "fc/multi/smarthome"], "train", 12, 5)
    openings = set()
    for task in tasks:
        plain, reward = gold_conversation(task)
        named, named_reward = gold_conversation(task, name_tools=True)
        assert named_reward == reward == 1.0 and len(named) == len(plain)
        for before, (old, new) in zip(named, zip(plain[1:], named[1:], strict=True), strict=False):
            if new["role"] != "assistant" or before["role"] != "user":
                assert new == old  # tool results and replies after them are untouched
                continue
            opening, _, rest = new["content"].partition("\n")
            assert rest == old["content"] and opening.startswith("Tools: ") and opening.endswith(".")
            openings.add(opening)
        if task.env_id == "fc/irrelevance":
            wanted = task.metadata["requested_tools"]
            assert named[-1]["content"].startswith(f"Tools: {wanted[0] if wanted else 'none'}.\n")
            assert "<tool_call>" not in named[-1]["content"]
        elif task.env_id == "fc/simple":
            (call,) = task.metadata["expected_tools"]
            assert named[-1]["content"].startswith(f"Tools: {call}.\n<tool_call>")
    assert "Tools: none." in openings and any("," in o for o in openings)  # a chat request; a two-call turn
