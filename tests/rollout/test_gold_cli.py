"""``resrl rollout --policy gold:DIR`` and ``resrl envs check --tokenizer DIR`` for each real template's tokenizer."""

from __future__ import annotations

import json

import pytest
from real_templates import FAMILIES, REFUSED, family_tokenizer, save_family

from resrl.cli import main
from resrl.rollout import Trajectory

CALL_START = {  # how a native tool-call turn starts, per format the template should resolve to
    "hermes": "<tool_call>",
    "llama3_json": '{"name": ',
    "pythonic": "[",
    "mistral": "[TOOL_CALLS]",
}


def _acceptance_line(tok_dir, out, family) -> list[str]:
    argv = ["rollout", "--env", "fc/multi/banking", "--policy", f"gold:{tok_dir}", "--tasks", "3", "--split", "test"]
    argv += ["--seed", "11", "--n", "1", "--max-turns", "12", "--max-tokens", "4096", "--out", str(out)]
    if family.kwargs:
        argv += ["--chat-template-kwargs", json.dumps(family.kwargs)]
    return argv


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_gold_rollout_picks_the_native_format(family, chat_templates, base_tokenizer, tmp_path, capsys):
    tok = family_tokenizer(base_tokenizer, family)
    tok_dir = save_family(tok, family, tmp_path / family.name)
    out = tmp_path / "t.jsonl"
    assert main(_acceptance_line(tok_dir, out, family)) == 0
    trajs = [Trajectory.model_validate_json(line) for line in out.read_text().splitlines()]
    assert len(trajs) == 3 and all(t.reward == 1.0 and t.infra_error is None for t in trajs)
    assert {t.metadata["tool_format"] for t in trajs} == {family.native}
    call_turns = []
    for t in trajs:
        spans, cur = [], []
        for tok_id, m in zip(t.response_ids, t.loss_mask, strict=True):
            if m:
                cur.append(tok_id)
            elif cur:
                spans.append(cur)
                cur = []
        spans.append(cur)
        texts = [tok.decode(s, skip_special_tokens=False).removeprefix("<think>\n\n</think>\n\n") for s in spans]
        call_turns += [x for x in texts if x.startswith(CALL_START[family.native])]
    assert call_turns, "no generated turn is written in the native tool-call format"
    summary = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert summary["episodes"] == 3


def test_stop_tokens_come_from_template_and_generation_config(chat_templates, base_tokenizer, tmp_path):
    from resrl.rollout import Collector, GoldPolicy

    family = next(f for f in FAMILIES if f.name == "llama3.1-json")
    tok_dir = save_family(family_tokenizer(base_tokenizer, family), family, tmp_path / family.name)
    policy = GoldPolicy.from_pretrained(str(tok_dir))
    collector = Collector(policy, "fc/multi/banking", progress=False)
    ids = [policy.tokenizer.convert_tokens_to_ids(t) for t in ("<|eot_id|>", "<|eom_id|>")]
    assert collector.codec.stop_ids[: len(ids)] == ids  # the template's end of turn first, then the config's


def test_envs_check_plays_gold_with_a_tokenizer(chat_templates, base_tokenizer, tmp_path, capsys):
    family = next(f for f in FAMILIES if f.name == "mistral-official")
    tok_dir = save_family(family_tokenizer(base_tokenizer, family), family, tmp_path / family.name)
    argv = ["envs", "check", "fc/multi/smarthome/miss_func", "--tasks", "2", "--tokenizer", str(tok_dir)]
    assert main(argv) == 0
    out = " ".join(capsys.readouterr().out.split())  # the console wraps long lines
    assert "PASS fc/multi/smarthome/miss_func: gold episodes collected token-exactly with the chat template" in out
    assert "FAIL" not in out and "0 failed check(s)" in out


def test_rollout_refuses_a_template_that_is_not_append_only(chat_templates, base_tokenizer, tmp_path, capsys):
    tok_dir = save_family(family_tokenizer(base_tokenizer, REFUSED), REFUSED, tmp_path / REFUSED.name)
    out = tmp_path / "t.jsonl"
    assert main(_acceptance_line(tok_dir, out, REFUSED)) == 2
    err = capsys.readouterr().err
    assert str(tok_dir) in err and "' </s>'" in err and "Use a template" in err  # which, why, what to do
    assert not out.exists()  # refused before the first episode: nothing collected, nothing written
