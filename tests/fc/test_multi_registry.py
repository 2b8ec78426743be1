"""Registration, `resrl envs check`, seeded generation and split disjointness of the multi-turn fc envs."""

from __future__ import annotations

import pytest

import resrl
from resrl.core.check import check_env
from resrl_envs.fc.multi import domain_classes, register_multi_turn
from resrl_envs.fc.multi.engine import variants

REGISTERED = register_multi_turn()
ALL = [cls for d in domain_classes() for cls in variants(d)]


def test_at_least_six_domains_and_eighteen_envs() -> None:
    assert len(domain_classes()) >= 6
    assert len(REGISTERED) >= 18
    for env_id in REGISTERED:
        spec = resrl.spec(env_id)
        assert spec.multi_turn is True and spec.description
        domain = env_id.split("/")[2]
        assert {"function-calling", "multi-turn", domain} <= set(spec.tags)
    for cls in domain_classes():
        base = f"fc/multi/{cls.domain}"
        assert {base, f"{base}/miss_param", f"{base}/miss_func"} <= set(REGISTERED)


@pytest.mark.parametrize("cls", domain_classes(), ids=lambda c: c.domain)
def test_every_domain_has_eight_typed_tools(cls) -> None:
    schemas = cls.state_cls.tool_schemas()
    assert len(schemas) >= 8
    for schema in schemas.values():
        fn = schema["function"]
        assert fn["description"]
        for name, prop in fn["parameters"]["properties"].items():
            assert "type" in prop or "anyOf" in prop, (fn["name"], name)
            assert prop.get("description"), (fn["name"], name)


@pytest.mark.parametrize("env_id", REGISTERED)
def test_check_env_passes(env_id: str) -> None:
    results = check_env(env_id)
    failed = [f"{r.name}: {r.detail}" for r in results if not r.passed]
    assert not failed, failed


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.env_name())
def test_generator_is_seeded_and_splits_are_disjoint(cls) -> None:
    a = cls.generate_tasks("train", 20, seed=7)
    assert [t.model_dump() for t in a] == [t.model_dump() for t in cls.generate_tasks("train", 20, seed=7)]
    assert [t.metadata["user_turns"] for t in a] != [
        t.metadata["user_turns"] for t in cls.generate_tasks("train", 20, seed=8)
    ]
    test = cls.generate_tasks("test", 20, seed=7)
    assert all("-train-" in t.id and t.split == "train" for t in a)
    assert all("-test-" in t.id and t.split == "test" for t in test)
    train_msgs = {u for t in a for u in t.metadata["user_turns"]}
    test_msgs = {u for t in test for u in t.metadata["user_turns"]}
    assert not train_msgs & test_msgs
    # entity pools are disjoint too: no initial state is shared between the splits
    assert not {repr(t.metadata["initial_state"]) for t in a} & {repr(t.metadata["initial_state"]) for t in test}
    for t in a + test:
        assert 2 <= len(t.metadata["user_turns"]) <= 6
        assert len(t.answer["turns"]) == len(t.metadata["user_turns"])
        assert t.messages[-1] == {"role": "user", "content": t.metadata["user_turns"][0]}


def test_task_volume_for_the_fc_suite() -> None:
    """The multi-turn domains alone give >=1,000 distinct train and >=250 distinct test tasks."""
    train, test = [], []
    for cls in ALL:
        train += cls.generate_tasks("train", 60, seed=0)
        test += cls.generate_tasks("test", 15, seed=0)
    assert len({t.id for t in train}) == len(train) >= 1000
    assert len({t.id for t in test}) == len(test) >= 250
    assert len({(t.env_id, *t.metadata["user_turns"]) for t in train}) == len(train)
    assert len({(t.env_id, *t.metadata["user_turns"]) for t in test}) == len(test)


def test_reset_from_seed_matches_generated_task() -> None:
    env = resrl.make("fc/multi/banking")
    obs, info = env.reset(seed=21, options={"split": "test"})
    task = type(env).generate_tasks("test", 1, 21)[0]
    assert obs == task.messages and info["tools"] == task.tools and info["task_id"] == task.id
