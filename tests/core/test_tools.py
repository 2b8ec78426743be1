"""Tools: schemas from signatures and docstrings, hidden injected arguments, strict typed validation."""

from __future__ import annotations

from typing import Annotated, Literal

import pytest

from resrl import Injected, ToolCall, ToolError, ToolSet, tool


@tool
def convert(amount: float, source: str, target: Literal["EUR", "USD"] = "EUR", round_to: int | None = None) -> dict:
    """Convert money between currencies.

    Args:
        amount: how much money, in the source currency.
        source (str): ISO code of the source currency.
        target: ISO code to convert to.
        round_to: digits to round to; omitted means no rounding.
    """
    value = amount * (1.1 if target == "USD" else 0.9)
    return {"value": round(value, round_to) if round_to is not None else value, "source": source}


class Wallet:
    def __init__(self) -> None:
        self.balance = 10

    @tool
    def withdraw(self, amount: int, session: Annotated[str, Injected]) -> int:
        """Take money out of the wallet.

        Args:
            amount: how much to take.
        """
        if amount > self.balance:
            raise ToolError(f"insufficient funds in {session}: balance is {self.balance}")
        self.balance -= amount
        return self.balance

    @tool(name="peek")
    def balance_now(self) -> int:
        """The current balance."""
        return self.balance


def test_schema_comes_from_signature_and_docstring() -> None:
    fn = convert.schema()["function"]
    assert fn["name"] == "convert"
    assert fn["description"] == "Convert money between currencies."
    params = fn["parameters"]
    assert params["required"] == ["amount", "source"]
    assert params["properties"]["amount"] == {
        "type": "number",
        "description": "how much money, in the source currency.",
    }
    assert params["properties"]["source"]["description"] == "ISO code of the source currency."
    assert params["properties"]["target"]["enum"] == ["EUR", "USD"]
    assert params["properties"]["target"]["default"] == "EUR"


def test_injected_arguments_are_hidden_and_supplied() -> None:
    wallet = Wallet()
    tools = ToolSet.from_object(wallet)
    schemas = {s["function"]["name"]: s["function"] for s in tools.schemas()}
    assert set(schemas) == {"withdraw", "peek"}
    assert list(schemas["withdraw"]["parameters"]["properties"]) == ["amount"]
    result = tools.call(ToolCall(name="withdraw", arguments={"amount": 3}), session="s-1")
    assert result.ok and result.value == 7 and wallet.balance == 7
    # state lives with the object across calls
    assert tools.call(ToolCall(name="peek")).value == 7
    # a model cannot pass the injected argument itself
    smuggled = tools.call(ToolCall(name="withdraw", arguments={"amount": 1, "session": "x"}), session="s-1")
    assert (
        not smuggled.ok
        and smuggled.error == "invalid_arguments"
        and "unexpected argument 'session'" in smuggled.content
    )


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ({"amount": "5", "source": "GBP"}, "argument 'amount'"),
        ({"amount": True, "source": "GBP"}, "argument 'amount'"),
        ({"source": "GBP"}, "missing required argument 'amount'"),
        ({"amount": 1, "source": "GBP", "target": "JPY"}, "argument 'target'"),
        ({"amount": 1, "source": "GBP", "colour": "red"}, "unexpected argument 'colour'"),
        ({"amount": 1, "source": 7}, "argument 'source'"),
    ],
)
def test_invalid_arguments_become_readable_errors(args: dict, fragment: str) -> None:
    result = ToolSet([convert]).call(ToolCall(name="convert", arguments=args))
    assert not result.ok and result.error == "invalid_arguments"
    assert fragment in result.content and result.content.startswith("Error: invalid arguments for 'convert'")


def test_int_is_accepted_for_float_and_optional_args_may_be_omitted() -> None:
    result = ToolSet([convert]).call(ToolCall(name="convert", arguments={"amount": 10, "source": "GBP"}))
    assert result.ok and result.value["value"] == pytest.approx(9.0)
    assert '"source": "GBP"' in result.content


def test_unknown_tool_and_tool_errors() -> None:
    tools = ToolSet.from_object(Wallet())
    unknown = tools.call(ToolCall(name="rob_bank"))
    assert unknown.error == "unknown_tool" and "Available tools: peek, withdraw" in unknown.content
    broke = tools.call(ToolCall(name="withdraw", arguments={"amount": 99}), session="s-9")
    assert broke.error == "tool_error" and "insufficient funds in s-9" in broke.content


def test_duplicate_names_rejected() -> None:
    with pytest.raises(ValueError, match="duplicate tool name 'convert'"):
        ToolSet([convert, convert])
