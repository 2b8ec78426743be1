"""The ticket-desk example: its env file loads, `resrl envs check` passes, tasks are seeded and disjoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from resrl.cli import main

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mcp_tickets"
ENV_FILE = EXAMPLE / "env.yaml"


@pytest.mark.slow
def test_envs_check_passes_for_the_example(capsys):
    assert main(["envs", "check", "mcp/tickets", "--env-file", str(ENV_FILE), "--tasks", "1"]) == 0
    out = capsys.readouterr().out
    assert out.count("PASS") == 4 and "0 failed" in out


def test_example_tasks_are_seeded_and_train_test_disjoint():
    from resrl_envs.mcp import load_env_file

    (spec,) = load_env_file(ENV_FILE)
    cls = spec.load()
    train = cls.mcp_spec.task_specs("train", 30, 0)
    test = cls.mcp_spec.task_specs("test", 30, 0)
    assert [t.model_dump() for t in train] == [t.model_dump() for t in cls.mcp_spec.task_specs("train", 30, 0)]
    assert {t.prompt for t in train}.isdisjoint({t.prompt for t in test})
    titles = {t["title"] for s in train for t in s.arguments["tickets"]}
    assert titles.isdisjoint({t["title"] for s in test for t in s.arguments["tickets"]})


def test_env_file_reaches_list_and_the_training_config(capsys):
    assert main(["envs", "list", "mcp/*", "--json", "--env-file", str(ENV_FILE)]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["id"] == "mcp/tickets" and listed["multi_turn"] and "mcp" in listed["tags"]
    config = str(EXAMPLE / "train.yaml")
    assert main(["train", config, "train.steps=2", "--print-config", "--env-file", str(ENV_FILE)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["data"]["envs"] == ["mcp/tickets"] and printed["train"]["steps"] == 2 and printed["sft"]["enabled"]
