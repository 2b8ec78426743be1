"""The single-turn verifier: BFCL possible-answer semantics, hand-written cases per rule, optimal matching."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resrl import ToolCall
from resrl_envs.fc.single import tools as T
from resrl_envs.fc.single.checker import (
    OMIT,
    normalize_string,
    parse_answer,
    score_turn,
    type_problem,
    values_equal,
)

WEATHER = [T.get_current_weather.schema()]
ALL = [t.schema() for t in (T.get_current_weather, T.circle_area, T.factorial, T.find_recipes, T.book_hotel)]


def call(name: str, **arguments: object) -> ToolCall:
    return ToolCall(name=name, arguments=arguments)


def weather(*cities: str, unit: list[object] | None = None) -> dict:
    return {"get_current_weather": {"city": list(cities), "unit": unit or ["celsius", OMIT]}}


def test_right_call_is_correct() -> None:
    verdict = score_turn([call("get_current_weather", city="Oslo")], [weather("Oslo")], WEATHER)
    assert verdict.correct and verdict.reward_binary == 1.0 and verdict.errors == []
    assert verdict.components == {"name": 1.0, "keys": 1.0, "values": 1.0, "count": 1.0}


def test_wrong_value_is_rejected() -> None:
    verdict = score_turn([call("get_current_weather", city="Bergen")], [weather("Oslo")], WEATHER)
    assert not verdict.correct and verdict.reward_binary == 0.0
    assert any("'city' has a wrong value 'Bergen'" in e for e in verdict.errors)


def test_wrong_type_is_rejected() -> None:
    verdict = score_turn([call("get_current_weather", city=7)], [weather("7")], WEATHER)
    assert not verdict.correct
    assert any("'city' must be string, got int" in e for e in verdict.errors)


def test_enum_outside_the_schema_is_rejected() -> None:
    verdict = score_turn(
        [call("get_current_weather", city="Oslo", unit="kelvin")], [weather("Oslo", unit=["kelvin"])], WEATHER
    )
    assert not verdict.correct and any("must be one of" in e for e in verdict.errors)


def test_int_is_accepted_for_float() -> None:
    answer = [{"circle_area": {"radius": [3.0]}}]
    assert score_turn([call("circle_area", radius=3)], answer, ALL).correct
    assert score_turn([call("circle_area", radius=3.0)], answer, ALL).correct


def test_bool_for_int_and_str_for_number_are_rejected() -> None:
    assert not score_turn([call("factorial", n=True)], [{"factorial": {"n": [1]}}], ALL).correct
    verdict = score_turn([call("circle_area", radius="3")], [{"circle_area": {"radius": [3.0]}}], ALL)
    assert not verdict.correct and any("must be number, got str" in e for e in verdict.errors)
    # and the other way round: a number never passes for a bool
    answer = [
        {
            "book_hotel": {
                "city": ["Oslo"],
                "check_in": ["2026-01-02"],
                "nights": [2],
                "rooms": [1, OMIT],
                "breakfast": [True],
            }
        }
    ]
    bad = call("book_hotel", city="Oslo", check_in="2026-01-02", nights=2, breakfast=1)
    assert not score_turn([bad], answer, ALL).correct


def test_missing_required_argument_is_rejected() -> None:
    answer = [{"circle_area": {"radius": [3.0]}}]
    verdict = score_turn([call("circle_area")], answer, ALL)
    assert not verdict.correct and any("missing required argument 'radius'" in e for e in verdict.errors)


def test_optional_argument_may_be_omitted_or_given_an_allowed_value() -> None:
    assert score_turn([call("get_current_weather", city="Oslo")], [weather("Oslo")], WEATHER).correct
    given = call("get_current_weather", city="Oslo", unit="celsius")
    assert score_turn([given], [weather("Oslo")], WEATHER).correct
    wrong = call("get_current_weather", city="Oslo", unit="fahrenheit")
    assert not score_turn([wrong], [weather("Oslo")], WEATHER).correct


def test_unknown_extra_argument_is_rejected() -> None:
    extra = call("get_current_weather", city="Oslo", country="Norway")
    verdict = score_turn([extra], [weather("Oslo")], WEATHER)
    assert not verdict.correct and any("unexpected argument 'country'" in e for e in verdict.errors)


def test_required_argument_cannot_be_omitted_even_with_several_values() -> None:
    assert parse_answer([weather("Oslo", "Oslo, Norway")])[0].required() == ["city"]


@pytest.mark.parametrize("given", ["Oslo", "oslo", "  OSLO ", "Oslo.", "oslo, norway", "Oslo Norway", "OSLO-NORWAY"])
def test_strings_are_normalised(given: str) -> None:
    assert score_turn([call("get_current_weather", city=given)], [weather("Oslo", "Oslo, Norway")], WEATHER).correct


def test_normalisation_keeps_distinct_words_distinct() -> None:
    assert normalize_string("New-York ") == normalize_string("new york")
    assert normalize_string("Oslo") != normalize_string("Osl")
    assert not values_equal("Lima", "Lim a!")


def test_lists_compare_element_wise_in_order() -> None:
    answer = [
        {"find_recipes": {"ingredients": [["kale", "duck"]], "max_minutes": [60, OMIT], "vegetarian": [False, OMIT]}}
    ]
    assert score_turn([call("find_recipes", ingredients=[" Kale", "DUCK"])], answer, ALL).correct
    assert not score_turn([call("find_recipes", ingredients=["duck", "kale"])], answer, ALL).correct
    assert not score_turn([call("find_recipes", ingredients=["kale"])], answer, ALL).correct
    typed = score_turn([call("find_recipes", ingredients=["kale", 3])], answer, ALL)
    assert not typed.correct and any("item 1 must be string" in e for e in typed.errors)


def test_reordered_parallel_calls_are_accepted() -> None:
    answer = [weather("Oslo"), weather("Lima"), weather("Cairo")]
    calls = [call("get_current_weather", city=c) for c in ("Cairo", "Oslo", "Lima")]
    verdict = score_turn(calls, answer, WEATHER)
    assert verdict.correct
    assert sorted(verdict.pairs) == [(0, 1), (1, 2), (2, 0)]


def _greedy_first_fit(calls: list[ToolCall], answer: list) -> bool:
    """BFCL's no-order checker pairs each expected call with the first unused call that passes it."""
    used: set[int] = set()
    for expected in answer:
        match = next(
            (j for j, c in enumerate(calls) if j not in used and score_turn([c], [expected], WEATHER).correct), None
        )
        if match is None:
            return False
        used.add(match)
    return len(used) == len(calls)


def test_optimal_assignment_succeeds_where_greedy_fails() -> None:
    # The first expected call accepts either city, the second only Oslo: first-fit gives Oslo to the first
    # and strands the second; the optimal assignment pairs first<->Lima, second<->Oslo.
    answer = [weather("Oslo", "Lima"), weather("Oslo")]
    calls = [call("get_current_weather", city="Oslo"), call("get_current_weather", city="Lima")]
    assert not _greedy_first_fit(calls, answer)
    verdict = score_turn(calls, answer, WEATHER)
    assert verdict.correct and sorted(verdict.pairs) == [(0, 1), (1, 0)]


def test_extra_and_missing_calls_are_rejected() -> None:
    answer = [weather("Oslo"), weather("Lima")]
    extra = [call("get_current_weather", city=c) for c in ("Oslo", "Lima", "Oslo")]
    verdict = score_turn(extra, answer, WEATHER)
    assert not verdict.correct and any("was not asked for" in e for e in verdict.errors)
    assert verdict.components["count"] == pytest.approx(2 / 3)
    missing = score_turn([call("get_current_weather", city="Lima")], answer, WEATHER)
    assert not missing.correct and any("missing a call to 'get_current_weather'" in e for e in missing.errors)


def test_unknown_tool_is_named_in_the_errors() -> None:
    verdict = score_turn([call("get_weather", city="Oslo")], [weather("Oslo")], WEATHER)
    assert not verdict.correct
    assert any("unknown tool 'get_weather'" in e and "get_current_weather" in e for e in verdict.errors)


def test_irrelevance_no_call_is_accepted_and_a_call_rejected() -> None:
    assert score_turn([], [], WEATHER).correct
    verdict = score_turn([call("get_current_weather", city="Oslo")], [], WEATHER)
    assert not verdict.correct and verdict.reward_shaped == 0.0
    assert any("no offered tool fits" in e for e in verdict.errors)


def test_shaped_reward_orders_partial_credit() -> None:
    answer = [
        {
            "book_hotel": {
                "city": ["Oslo"],
                "check_in": ["2026-01-02"],
                "nights": [2],
                "rooms": [1, OMIT],
                "breakfast": [False, OMIT],
            }
        }
    ]
    right = call("book_hotel", city="Oslo", check_in="2026-01-02", nights=2)
    one_wrong = call("book_hotel", city="Oslo", check_in="2026-01-02", nights=3)
    all_wrong = call("book_hotel", city="Lima", check_in="2026-05-05", nights=3)
    wrong_keys = call("book_hotel", city="Oslo", check_in="2026-01-02", nights=2, pool=True)
    wrong_name = call("circle_area", radius=2.0)
    scores = [score_turn([c], answer, ALL).reward_shaped for c in (right, one_wrong, all_wrong, wrong_name)]
    assert scores[0] == 1.0 > scores[1] > scores[2] > scores[3] == 0.0
    assert 0.0 < score_turn([wrong_keys], answer, ALL).reward_shaped < 1.0
    assert score_turn([], answer, ALL).reward_shaped == 0.0
    # an extra call costs credit, and more extra calls cost more
    two = score_turn([right, right], answer, ALL).reward_shaped
    three = score_turn([right, right, right], answer, ALL).reward_shaped
    assert 1.0 > two > three > 0.0


def test_malformed_answer_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="list of"):
        parse_answer({"f": {}})
    with pytest.raises(ValueError, match="one-key dict"):
        parse_answer([{"f": {}, "g": {}}])


cities = st.lists(st.sampled_from(["Oslo", "Lima", "Cairo", "Perth", "Quito"]), min_size=1, max_size=5, unique=True)


@settings(max_examples=60, deadline=None)
@given(cities, st.randoms(use_true_random=False))
def test_order_of_parallel_calls_never_matters(names: list[str], rnd) -> None:
    answer = [weather(c) for c in names]
    calls = [call("get_current_weather", city=c) for c in names]
    rnd.shuffle(calls)
    assert score_turn(calls, answer, WEATHER).correct


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=False, width=16) | st.text(max_size=8),
    lambda kids: st.lists(kids, max_size=3),
    max_leaves=6,
)


@settings(max_examples=120, deadline=None)
@given(
    st.lists(
        st.builds(
            lambda name, args: ToolCall(name=name, arguments=args),
            st.sampled_from(["get_current_weather", "circle_area", "factorial", "nope"]),
            st.dictionaries(st.sampled_from(["city", "unit", "radius", "n", "x"]), json_values, max_size=3),
        ),
        max_size=4,
    )
)
def test_any_calls_score_within_bounds_without_raising(calls: list[ToolCall]) -> None:
    answer = [weather("Oslo"), {"circle_area": {"radius": [2.0]}}]
    verdict = score_turn(calls, answer, ALL)
    assert 0.0 <= verdict.reward_shaped <= 1.0
    assert verdict.reward_binary in (0.0, 1.0)
    assert all(0.0 <= v <= 1.0 for v in verdict.components.values())
    assert verdict.correct == (verdict.reward_binary == 1.0) == (not verdict.errors)


def test_schema_type_rules() -> None:
    level = {"enum": [1, 2, 3], "type": "integer"}
    assert type_problem(2, level) is None
    assert type_problem(True, level) is not None and type_problem(2.0, level) is not None
    optional_list = {"anyOf": [{"type": "array", "items": {"type": "number"}}, {"type": "null"}]}
    assert type_problem(None, optional_list) is None and type_problem([1, 2.5], optional_list) is None
    assert "item 1" in (type_problem([1, "2"], optional_list) or "")
    assert type_problem((1, 2), optional_list) is not None  # a tuple is not a JSON array


def test_dicts_compare_key_wise_whatever_the_key_types() -> None:
    assert values_equal({"a": "X ", "b": [1]}, {"b": [1.0], "a": "x"})
    assert not values_equal({1: "a", "b": 2}, {"a": 1, "b": 2})
    assert not values_equal({"a": 1}, {"a": 1, "b": 2})
