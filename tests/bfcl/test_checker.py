"""BFCL's scoring rules, one by one, on small hand-written entries (no BFCL data needed)."""

from __future__ import annotations

from resrl_envs.bfcl.checker import check_turn, standardize
from resrl_envs.bfcl.langs import java_value, js_value


def _fn(name: str, props: dict, required: list[str]) -> dict:
    return {"name": name, "description": "", "parameters": {"type": "dict", "properties": props, "required": required}}


AREA = _fn(
    "geo.area",
    {"base": {"type": "integer"}, "height": {"type": "float"}, "unit": {"type": "string"}},
    ["base", "height"],
)
AREA_ANSWER = [{"geo.area": {"base": [10], "height": [5.0], "unit": ["square meters", ""]}}]


def _valid(category: str, functions: list, calls: list, answer: list | None) -> bool:
    return check_turn(category, functions, calls, answer).valid


def test_optional_parameter_may_be_omitted_or_given() -> None:
    assert _valid("simple_python", [AREA], [("geo.area", {"base": 10, "height": 5.0})], AREA_ANSWER)
    assert _valid(
        "simple_python", [AREA], [("geo.area", {"base": 10, "height": 5.0, "unit": "Square-Meters"})], AREA_ANSWER
    )
    assert not _valid("simple_python", [AREA], [("geo.area", {"base": 10, "height": 5.0, "unit": "feet"})], AREA_ANSWER)


def test_required_unknown_and_wrong_name() -> None:
    verdict = check_turn("simple_python", [AREA], [("geo.area", {"base": 10})], AREA_ANSWER)
    assert verdict.error_type == "simple_function_checker:missing_required"
    verdict = check_turn("simple_python", [AREA], [("geo.area", {"base": 10, "height": 5.0, "x": 1})], AREA_ANSWER)
    assert verdict.error_type == "simple_function_checker:unexpected_param"
    verdict = check_turn("simple_python", [AREA], [("area", {"base": 10, "height": 5.0})], AREA_ANSWER)
    assert verdict.error_type == "simple_function_checker:wrong_func_name"


def test_int_passes_for_float_but_not_bool_for_int_or_float_for_int() -> None:
    assert _valid("simple_python", [AREA], [("geo.area", {"base": 10, "height": 5})], AREA_ANSWER)
    assert not _valid("simple_python", [AREA], [("geo.area", {"base": 10.0, "height": 5.0})], AREA_ANSWER)
    flag = _fn("f", {"n": {"type": "integer"}}, ["n"])
    assert not _valid("simple_python", [flag], [("f", {"n": True})], [{"f": {"n": [1]}}])


def test_string_standardisation() -> None:
    assert standardize("New York, NY") == standardize("new-york ny") == "newyorkny"
    assert standardize("it's") == 'it"s'
    city = _fn("w", {"city": {"type": "string"}}, ["city"])
    assert _valid("simple_python", [city], [("w", {"city": "SAN_FRANCISCO"})], [{"w": {"city": ["San Francisco"]}}])
    assert not _valid("simple_python", [city], [("w", {"city": "San Jose"})], [{"w": {"city": ["San Francisco"]}}])


def test_list_dict_and_variable_answers() -> None:
    fn = _fn("g", {"xs": {"type": "array", "items": {"type": "string"}}, "opts": {"type": "dict"}}, ["xs"])
    answer = [{"g": {"xs": [["Red Apple", "pear"]], "opts": [{"k": [1], "m": ["a", ""]}, ""]}}]
    assert _valid("simple_python", [fn], [("g", {"xs": ["red-apple", "PEAR"]})], answer)
    assert not _valid("simple_python", [fn], [("g", {"xs": ["pear", "red apple"]})], answer)  # lists keep order
    assert _valid("simple_python", [fn], [("g", {"xs": ["pear", "red apple"][::-1], "opts": {"k": 1}})], answer)
    assert not _valid("simple_python", [fn], [("g", {"xs": ["red apple", "pear"], "opts": {"k": 2}})], answer)
    # An integer parameter whose answer is a string names a variable: the string passes, compared exactly.
    var = _fn("h", {"n": {"type": "integer"}}, ["n"])
    assert _valid("simple_python", [var], [("h", {"n": "count"})], [{"h": {"n": ["count"]}}])
    assert not _valid("simple_python", [var], [("h", {"n": "Count"})], [{"h": {"n": ["count"]}}])


def test_parallel_calls_match_in_any_order_and_count_must_agree() -> None:
    answer = [{"geo.area": {"base": [10], "height": [5.0]}}, {"geo.area": {"base": [3], "height": [2.0]}}]
    one, two = ("geo.area", {"base": 10, "height": 5.0}), ("geo.area", {"base": 3, "height": 2.0})
    assert _valid("parallel", [AREA], [two, one], answer)
    assert not _valid("parallel", [AREA], [one], answer)
    assert not _valid("parallel", [AREA], [one, one], answer)
    assert not _valid("simple_python", [AREA], [one, one], AREA_ANSWER)


def test_relevance_and_irrelevance() -> None:
    call = [("geo.area", {"base": 1})]
    assert _valid("irrelevance", [AREA], [], None) and not _valid("irrelevance", [AREA], call, None)
    assert _valid("live_relevance", [AREA], call, None) and not _valid("live_relevance", [AREA], [], None)


def test_java_values_are_read_from_source_text() -> None:
    assert java_value("42L", "long") == 42 and java_value("42", "long") == "42"
    assert java_value("2.5f", "float") == 2.5 and java_value("true", "boolean") is True
    assert java_value('new ArrayList<>(Arrays.asList("a", "b"))', "ArrayList", "String") == ["a", "b"]
    assert java_value("new int[]{1, 2}", "Array", "integer") == [1, 2]
    assert java_value('new HashMap<String, Object>() {{ put("k", 5); put("s", "x"); }}', "HashMap") == {
        "k": 5,
        "s": "x",
    }
    fn = _fn("J.m", {"n": {"type": "long"}, "ok": {"type": "boolean"}}, ["n"])
    answer = [{"J.m": {"n": [42], "ok": [True, ""]}}]
    assert _valid("simple_java", [fn], [("J.m", {"n": "42L", "ok": "true"})], answer)
    assert not _valid("simple_java", [fn], [("J.m", {"n": 42})], answer)  # Java values must be strings
    assert not _valid("simple_java", [fn], [("J.m", {"n": "42"})], answer)  # a long needs its L


def test_javascript_values_are_read_from_source_text() -> None:
    assert js_value("'abc'", "String") == "abc" and js_value("12", "integer") == 12
    assert js_value("['a', 'b']", "array", "String") == ["a", "b"]
    assert js_value("{limit: 5, name: 'x'}", "dict") == {"limit": 5, "name": "x"}
    fn = _fn("list", {"items": {"type": "array", "items": {"type": "String"}}}, ["items"])
    answer = [{"list": {"items": [["done", "failed"]]}}]
    assert _valid("simple_javascript", [fn], [("list", {"items": "['done', 'failed']"})], answer)
    assert not _valid("simple_javascript", [fn], [("list", {"items": "['failed', 'done']"})], answer)
