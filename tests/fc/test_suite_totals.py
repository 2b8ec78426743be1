"""The fc/ suite as a whole: enough tasks, deterministic generation, disjoint splits, samples that match."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import resrl
from resrl.core.task import read_jsonl

SAMPLES = Path(__file__).resolve().parents[2] / "tasks" / "fc"
TRAIN_PER_ENV, TEST_PER_ENV = 100, 25


def _fc_classes() -> dict[str, type]:
    return {s.id: s.load() for s in resrl.list_envs("fc/*")}


def _user_texts(task: resrl.Task) -> set[str]:
    return {m["content"] for m in task.messages if m["role"] == "user"} | set(task.metadata.get("user_turns", []))


def test_suite_reaches_2000_train_and_500_test_disjoint_tasks() -> None:
    train, test = {}, {}
    for env_id, cls in _fc_classes().items():
        for split, n, into in (("train", TRAIN_PER_ENV, train), ("test", TEST_PER_ENV, test)):
            tasks = cls.generate_tasks(split, n, 0)
            assert len(tasks) == n, f"{env_id} made {len(tasks)} {split} tasks, asked for {n}"
            for task in tasks:
                assert task.split == split and task.env_id == env_id
                into[(env_id, task.id)] = task
    assert len(train) >= 2000 and len(test) >= 500
    distinct_train = {
        json.dumps(t.messages, sort_keys=True) + json.dumps(t.answer, sort_keys=True) for t in train.values()
    }
    distinct_test = {
        json.dumps(t.messages, sort_keys=True) + json.dumps(t.answer, sort_keys=True) for t in test.values()
    }
    assert len(distinct_train) >= 2000 and len(distinct_test) >= 500
    train_prompts = set().union(*(_user_texts(t) for t in train.values()))
    leaked = [t.id for t in test.values() if _user_texts(t) & train_prompts]
    assert not leaked, f"test prompts also in train: {leaked[:5]}"


@pytest.mark.parametrize("split", ["train", "test"])
def test_generation_is_deterministic(split: str) -> None:
    for env_id, cls in _fc_classes().items():
        first = [t.model_dump() for t in cls.generate_tasks(split, 20, 7)]
        again = [t.model_dump() for t in cls.generate_tasks(split, 20, 7)]
        other = [t.model_dump() for t in cls.generate_tasks(split, 20, 8)]
        assert first == again, f"{env_id} is not deterministic for a seed"
        assert first != other, f"{env_id} ignores its seed"


def test_checked_in_samples_match_the_generators() -> None:
    classes = _fc_classes()
    files = sorted(SAMPLES.glob("*.jsonl"))
    assert files, f"no samples under {SAMPLES}"
    for path in files:
        tasks = read_jsonl(path)
        env_id, split = tasks[0].env_id, tasks[0].split
        regenerated = classes[env_id].generate_tasks(split, len(tasks), 0)
        assert [t.model_dump() for t in tasks] == [t.model_dump() for t in regenerated], path.name
