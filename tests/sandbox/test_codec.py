"""The value codec between the test process and the program process: every plain value crosses both ways with
its exact type and value, anything else stays a handle, and what the program writes is read back by the json
module (the test process's only reader of program data)."""

from __future__ import annotations

import json
import math

import pytest

from resrl.sandbox import AssertTest, CallTest, Job, harness

VALUES = [
    None, True, False, 0, -7, 2**200, -(2**70), 0.0, -0.0, 1.5, 1e300, -2.5e-308, math.inf, -math.inf, math.nan,
    "", "plain", 'quote " backslash \\ slash /', "tab\tnew\nline\r\x00\x1f\x7f", "héllo ☃ 𝄞", "\ud800 lone",
    b"", bytes(range(256)), 3 + 4j, -0.5j,
    [], (), set(), frozenset(), {}, [1, [2, (3, {4})]], (1,), {1, "a", (2, 3)}, frozenset({frozenset({1})}),
    {"a": 1, 2: [3], (4, 5): {"b": None}, None: True, 1.5: b"x"}, [True, 1, 1.0, "1", b"1"],
]  # fmt: skip


def same(a, b) -> bool:
    """Equal with the same types all the way down (NaN equals NaN, -0.0 is not 0.0)."""
    if type(a) is not type(b):
        return False
    if type(a) is float:
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if type(a) is complex:
        return same(a.real, b.real) and same(a.imag, b.imag)
    if type(a) in (list, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is dict:
        return list(map(repr, a)) == list(map(repr, b)) and all(same(a[k], b[k]) for k in a)
    return a == b


@pytest.mark.parametrize("value", [*VALUES, complex(math.nan, -math.inf)], ids=repr)
def test_a_plain_value_comes_back_as_it_was(value):
    text = harness.dump(value, None)
    assert text.isascii() and "\n" not in text  # one line of the reply stream
    assert same(harness.decode(json.loads(text), None, None), value)
    assert harness._plain(value) and harness._plain([value, (value,)])


def test_anything_else_becomes_a_handle():
    class Box:
        pass

    box, handles = Box(), {}
    tree = json.loads(harness.dump([box, {"k": box}], handles))
    assert handles == {id(box): box}
    assert harness.decode(tree, handles, None) == [box, {"k": box}]  # the program side gets its object back
    proxy = harness.decode(tree, None, None)[0]  # the test side gets a handle
    assert isinstance(proxy, harness.Handle) and repr(proxy) == "<program Box object>"
    assert not harness._plain([1, proxy]) and not harness._plain(bytearray(b"x"))
    assert json.loads(harness.dump(proxy, None)) == ["h", id(box), "Box"]  # a handle goes back as itself
    with pytest.raises(TypeError, match="plain values and its own objects only, not Box"):
        harness.dump(Box(), None)


def test_values_cross_both_ways_exactly(local_sandbox):
    code = (
        "import math\nclass Box:\n    def __init__(self, v):\n        self.v = v\n"
        "def echo(x):\n    return x\ndef kind(x):\n    return type(x).__name__\n"
        "def make(v):\n    return Box(v)\ndef unbox(b, scale=1):\n    return b.v * scale\n"
        "def fails(name):\n    raise getattr(__builtins__, name, ValueError)('from the program')\n"
    )
    check = (
        f"import math\ninf, nan = math.inf, math.nan\nvalues = {VALUES!r}\n"
        "def same(a, b):\n"
        "    if type(a) is not type(b):\n        return False\n"
        "    if type(a) is float:\n"
        "        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))\n"
        "    if type(a) is complex:\n        return same(a.real, b.real) and same(a.imag, b.imag)\n"
        "    if type(a) in (list, tuple):\n        return len(a) == len(b) and all(map(same, a, b))\n"
        "    if type(a) is dict:\n"
        "        return list(map(repr, a)) == list(map(repr, b)) and all(same(a[k], b[k]) for k in a)\n"
        "    return a == b\n"
        "for v in values:\n"
        "    assert same(echo(v), v), v\n"
        "    assert kind(v) == type(v).__name__, v\n"
        "    assert same(echo(x=[v, {'k': (v,)}]), [v, {'k': (v,)}]), v\n"
    )
    handles = (
        "box = make(21)\nassert box.v == 21 and unbox(box) == 21 and unbox(box, scale=2) == 42\n"
        "assert unbox(b=make([1, 2]), scale=2) == [1, 2, 1, 2]\nassert unbox(echo([box])[0]) == 21\n"
        "for name, cls in [('KeyError', KeyError), ('ZeroDivisionError', ZeroDivisionError)]:\n"
        "    try:\n        fails(name)\n    except cls as exc:\n        assert 'from the program' in str(exc)\n"
        "    else:\n        raise AssertionError(name)\n"
    )
    tests = [AssertTest(code=check), AssertTest(code=handles), CallTest(fn="echo", args=[[1, "a"]], expected=[1, "a"])]
    result = local_sandbox.run(Job(code=code, tests=tests))
    assert result.status == "passed", result.tests


@pytest.mark.parametrize(
    "line", [b"", b"\n", b"null\n", b"[1]\n", b'{"value": 1} junk\n', b"\xff\xfe\n", b'{"value":\n', b"[" * 100_000]
)
def test_what_is_no_reply_is_refused(line):
    with pytest.raises(ValueError):
        harness._read_json(line)


def test_a_reply_is_read_as_json_reads_it():
    line = ('{"value":' + harness.dump([1.5, "é", None, math.nan], None) + "}\n").encode()
    reply = harness._read_json(line)
    assert reply.keys() == json.loads(line).keys() == {"value"}
    assert same(harness.decode(reply["value"], None, None), [1.5, "é", None, math.nan])
