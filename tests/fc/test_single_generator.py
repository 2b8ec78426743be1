"""Single-turn task generators: determinism, disjoint splits, capacity, schemas from typed tools."""

from __future__ import annotations

from typing import get_args, get_origin

import pytest

from resrl import Task, read_jsonl, write_jsonl
from resrl_envs.fc.single import tools as T
from resrl_envs.fc.single.checker import OMIT, parse_answer
from resrl_envs.fc.single.env import SINGLE_TURN_ENVS
from resrl_envs.fc.single.generator import CATEGORIES, generate
from resrl_envs.fc.single.pools import POOLS
from resrl_envs.fc.single.recipes import RECIPES


def _prompt(task: Task) -> str:
    return task.messages[-1]["content"]


@pytest.mark.parametrize("env_cls", SINGLE_TURN_ENVS, ids=lambda c: c.env_id)
def test_same_seed_same_jsonl(env_cls, tmp_path) -> None:
    a, b, c = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    write_jsonl(env_cls.generate_tasks("train", 60, seed=7), a)
    write_jsonl(env_cls.generate_tasks("train", 60, seed=7), b)
    write_jsonl(env_cls.generate_tasks("train", 60, seed=8), c)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    assert [t.id for t in read_jsonl(a)] == [t.id for t in env_cls.generate_tasks("train", 60, seed=7)]


@pytest.mark.parametrize("category", CATEGORIES)
def test_train_and_test_prompts_are_disjoint(category: str) -> None:
    train = generate(category, f"fc/{category}", "train", 400, seed=0)
    test = generate(category, f"fc/{category}", "test", 150, seed=0)
    train_prompts, test_prompts = {_prompt(t) for t in train}, {_prompt(t) for t in test}
    assert len(train_prompts) == 400 and len(test_prompts) == 150  # distinct within a split
    assert not train_prompts & test_prompts
    assert all("-train-" in t.id and t.split == "train" for t in train)
    assert all("-test-" in t.id and t.split == "test" for t in test)
    assert len({t.id for t in train} | {t.id for t in test}) == 550
    # no train prompt even contains a test-only city (the pools themselves are disjoint)
    test_cities = POOLS["city"][1]
    assert not any(city in _prompt(t) for t in train for city in test_cities)


def test_entity_pools_are_disjoint() -> None:
    for name, (train, test) in POOLS.items():
        assert not set(map(str, train)) & set(map(str, test)), name


def test_capacity_meets_the_target() -> None:
    per_category = {c: (generate(c, "x", "train", 300, 1), generate(c, "x", "test", 80, 1)) for c in CATEGORIES}
    # A task is its prompt and its offered tools (simple and multiple may share a request, not a task).
    train = {_prompt(t) + repr(t.tools) for tr, _ in per_category.values() for t in tr}
    test = {_prompt(t) + repr(t.tools) for _, te in per_category.values() for t in te}
    assert len(train) >= 1500 and len(test) >= 400


@pytest.mark.parametrize("category", CATEGORIES)
def test_answers_match_the_offered_tools(category: str) -> None:
    for task in generate(category, f"fc/{category}", "test", 120, seed=4):
        offered = {t["function"]["name"]: t["function"]["parameters"] for t in task.tools}
        expected = parse_answer(task.answer)
        assert all(e.name in offered for e in expected)
        for e in expected:  # every parameter of the tool is covered, required ones without the omit marker
            params = offered[e.name]
            assert set(e.arguments) == set(params["properties"])
            assert set(params["required"]) <= set(e.required())
        n = len(expected)
        if category == "simple":
            assert n == 1 and len(offered) == 1
        elif category == "multiple":
            assert n == 1 and 2 <= len(offered) <= 4
        elif category == "parallel":
            assert 2 <= n <= 4 and len(offered) == 1
        elif category == "parallel_multiple":
            assert 2 <= n <= 4 and len({x.name for x in expected}) >= 2
        else:
            assert n == 0 and offered
            asked = set(task.metadata["requested_domains"])
            assert not asked & {RECIPES[name].domain for name in offered}
            wanted = task.metadata["requested_tools"]  # the tool the request needs, missing from the offer
            assert len(wanted) <= 1 and not set(wanted) & set(offered)
            assert asked == {RECIPES[name].domain for name in wanted}
        if n:
            assert task.metadata["requested_tools"] == list(dict.fromkeys(e.name for e in expected))


def test_irrelevance_never_offers_a_tool_of_the_requested_domain() -> None:
    for seed in range(3):
        for task in generate("irrelevance", "fc/irrelevance", "train", 100, seed):
            prompt = _prompt(task).lower()
            offered_domains = {RECIPES[t["function"]["name"]].domain for t in task.tools}
            if "weather" in prompt:
                assert "weather" not in offered_domains
            if "flight" in prompt or " fly " in prompt:
                assert "flights" not in offered_domains


def test_catalogue_has_typed_families() -> None:
    families = {r.family for r in RECIPES.values()}
    assert len(families) >= 15
    kinds = set()
    for recipe in RECIPES.values():
        for name, info in recipe.tool.model.model_fields.items():
            ann = info.annotation
            kinds.add(getattr(get_origin(ann), "__name__", None) or getattr(ann, "__name__", str(ann)))
            if not info.is_required():
                kinds.add("optional")
            if any(get_origin(a) is not None and "Literal" in str(get_origin(a)) for a in [ann, *get_args(ann)]):
                kinds.add("Literal")
            assert recipe.tool.schema()["function"]["parameters"]["properties"][name].get("description"), name
    assert {"str", "int", "float", "bool", "list", "Literal", "optional"} <= kinds


def test_schemas_come_from_the_typed_functions() -> None:
    task = generate("simple", "fc/simple", "train", 1, seed=0)[0]
    name = task.tools[0]["function"]["name"]
    assert task.tools[0] == RECIPES[name].tool.schema()
    assert T.get_current_weather.schema()["function"]["parameters"]["properties"]["unit"]["enum"] == [
        "celsius",
        "fahrenheit",
    ]


def test_optional_arguments_the_request_leaves_out_may_be_omitted() -> None:
    tasks = generate("simple", "fc/simple", "train", 300, seed=2)
    omittable = [v for t in tasks for e in parse_answer(t.answer) for v in e.arguments.values() if OMIT in v]
    assert omittable and all(len(v) >= 2 for v in omittable)


def test_bad_generator_input_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown single-turn category"):
        generate("chaotic", "x", "train", 1, 0)
    with pytest.raises(ValueError, match="unknown split"):
        generate("simple", "x", "validation", 1, 0)  # type: ignore[arg-type]
    assert generate("simple", "x", "train", 0, 0) == []
