"""Banking and trading domain: accounts, transfers, payees, bills and a small fixed-price stock book."""

from __future__ import annotations

import random

from pydantic import BaseModel, Field

from resrl.core.task import Split
from resrl.core.tools import ToolError, tool
from resrl_envs.fc.multi.engine import Builder, DomainState, MultiTurnFCEnv, TurnSpec, call, split_pool

ACCOUNTS = ("checking", "savings", "travel", "emergency", "household", "holiday", "business", "college")
PAYEES = (
    "Acme Power",
    "City Water",
    "Northwind Telecom",
    "Globex Insurance",
    "Initech Gym",
    "Umbrella Rent",
    "Stark Internet",
    "Wayne Heating",
    "Hooli Cloud",
    "Soylent Foods",
)
PRICES = {"ACME": 12, "GLBX": 30, "INIT": 7, "STRK": 55, "WAYN": 41, "HOOL": 23, "UMBR": 9, "SOYL": 16}


class Transaction(BaseModel):
    """One movement of money (amounts in whole dollars)."""

    account: str
    amount: int
    memo: str


class Bank(DomainState):
    """Balances in whole dollars, the transaction log, saved payees and stock holdings."""

    balances: dict[str, int] = Field(default_factory=dict)
    transactions: list[Transaction] = Field(default_factory=list)
    payees: list[str] = Field(default_factory=list)
    holdings: dict[str, int] = Field(default_factory=dict)
    brokerage_cash: int = 0

    def _account(self, name: str) -> None:
        if name not in self.balances:
            raise ToolError(f"no such account: {name}. Accounts: {', '.join(sorted(self.balances))}")

    def _move(self, account: str, amount: int, memo: str) -> None:
        if self.balances[account] + amount < 0:
            raise ToolError(f"insufficient funds in {account} (balance {self.balances[account]})")
        self.balances[account] += amount
        self.transactions.append(Transaction(account=account, amount=amount, memo=memo))

    @staticmethod
    def _positive(amount: int) -> None:
        if amount <= 0:
            raise ToolError("amount must be a positive whole number of dollars")

    @tool
    def list_accounts(self) -> dict[str, int]:
        """All accounts with their balances in dollars."""
        return dict(sorted(self.balances.items()))

    @tool
    def get_balance(self, account: str) -> int:
        """The balance of one account, in dollars.

        Args:
            account: the account name, like ``checking``.
        """
        self._account(account)
        return self.balances[account]

    @tool
    def deposit(self, account: str, amount: int) -> int:
        """Deposit money into an account; returns the new balance.

        Args:
            account: the account name.
            amount: whole dollars to deposit.
        """
        self._account(account)
        self._positive(amount)
        self._move(account, amount, "deposit")
        return self.balances[account]

    @tool
    def transfer(self, from_account: str, to_account: str, amount: int) -> dict[str, int]:
        """Move money between two of the user's accounts; returns both new balances.

        Args:
            from_account: the account to take money from.
            to_account: the account to put it in.
            amount: whole dollars to move.
        """
        self._account(from_account)
        self._account(to_account)
        self._positive(amount)
        if from_account == to_account:
            raise ToolError("the two accounts must differ")
        self._move(from_account, -amount, f"transfer to {to_account}")
        self._move(to_account, amount, f"transfer from {from_account}")
        return {from_account: self.balances[from_account], to_account: self.balances[to_account]}

    @tool
    def recent_transactions(self, account: str, limit: int = 3) -> list[dict[str, object]]:
        """The most recent transactions of an account, newest first.

        Args:
            account: the account name.
            limit: how many to return.
        """
        self._account(account)
        mine = [t.model_dump() for t in self.transactions if t.account == account]
        return mine[::-1][: max(limit, 0)]

    @tool
    def add_payee(self, name: str) -> str:
        """Save a company as a bill payee.

        Args:
            name: the payee's name.
        """
        if name in self.payees:
            raise ToolError(f"{name} is already a payee")
        self.payees.append(name)
        return f"added payee {name}"

    @tool
    def pay_bill(self, payee: str, amount: int, from_account: str) -> int:
        """Pay a saved payee from an account; returns the account's new balance.

        Args:
            payee: a saved payee's name.
            amount: whole dollars to pay.
            from_account: the account to pay from.
        """
        if payee not in self.payees:
            raise ToolError(f"{payee} is not a saved payee; add it first")
        self._account(from_account)
        self._positive(amount)
        self._move(from_account, -amount, f"bill {payee}")
        return self.balances[from_account]

    @tool
    def stock_price(self, symbol: str) -> int:
        """The current price of one share, in dollars.

        Args:
            symbol: the ticker symbol, like ``ACME``.
        """
        if symbol not in PRICES:
            raise ToolError(f"unknown symbol {symbol}")
        return PRICES[symbol]

    @tool
    def buy_stock(self, symbol: str, shares: int) -> dict[str, int]:
        """Buy shares with brokerage cash; returns the holding and the cash left.

        Args:
            symbol: the ticker symbol.
            shares: how many shares to buy.
        """
        cost = self.stock_price(symbol) * shares
        if shares <= 0:
            raise ToolError("shares must be positive")
        if cost > self.brokerage_cash:
            raise ToolError(f"not enough brokerage cash ({self.brokerage_cash}) for {cost}")
        self.brokerage_cash -= cost
        self.holdings[symbol] = self.holdings.get(symbol, 0) + shares
        return {"shares": self.holdings[symbol], "cash": self.brokerage_cash}

    @tool
    def sell_stock(self, symbol: str, shares: int) -> dict[str, int]:
        """Sell shares for brokerage cash; returns the holding and the cash after the sale.

        Args:
            symbol: the ticker symbol.
            shares: how many shares to sell.
        """
        held = self.holdings.get(symbol, 0)
        if shares <= 0 or shares > held:
            raise ToolError(f"can sell between 1 and {held} shares of {symbol}")
        self.brokerage_cash += self.stock_price(symbol) * shares
        self.holdings[symbol] = held - shares
        if not self.holdings[symbol]:
            del self.holdings[symbol]
        return {"shares": self.holdings.get(symbol, 0), "cash": self.brokerage_cash}


T = {
    "balance": (
        ["What's the balance of my {a} account?", "How much is in {a}?"],
        ["Check how much money sits in {a}.", "Tell me my {a} balance."],
    ),
    "deposit": (
        ["Deposit ${n} into {a}.", "Put ${n} in my {a} account."],
        ["Add ${n} to {a}, it's a cash deposit.", "I'm depositing ${n} to {a}."],
    ),
    "transfer": (
        ["Transfer ${n} from {a} to {b}.", "Move ${n} from my {a} account into {b}."],
        ["Shift ${n} over from {a} to {b}.", "Send ${n} out of {a} and into {b}."],
    ),
    "transfer_missing": (
        ["Transfer some money from {a} to {b}.", "Move funds from {a} into {b}."],
        ["Shift money over from {a} to {b}.", "Send part of {a} into {b}."],
    ),
    "transfer_supply": (["Make it ${n}.", "The amount is ${n}."], ["${n}, please.", "Use ${n}."]),
    "history": (
        ["Show the last {k} transactions on {a}.", "List my {k} most recent {a} transactions."],
        ["What were the latest {k} movements in {a}?", "Pull up {k} recent entries for {a}."],
    ),
    "bill": (
        ["Pay {p} ${n} from {a}.", "Settle the {p} bill of ${n} using {a}."],
        ["Use {a} to send {p} ${n}.", "I owe {p} ${n}; pay it out of {a}."],
    ),
    "bill_missing": (["Pay {p} ${n}.", "Settle the {p} bill of ${n}."], ["Send {p} ${n}.", "I owe {p} ${n}; pay it."]),
    "bill_supply": (["Take it from {a}.", "Use the {a} account."], ["Out of {a}.", "Charge {a}."]),
    "buy": (
        ["Buy {k} shares of {s}.", "Purchase {k} {s} shares."],
        ["Get me {k} shares in {s}.", "Add {k} shares of {s} to my portfolio."],
    ),
    "sell": (
        ["Sell {k} of my {s} shares.", "Sell {k} shares of {s}."],
        ["Offload {k} {s} shares.", "Dump {k} shares of {s}."],
    ),
    "price": (["What does one {s} share cost?", "Quote me {s}."], ["Price of {s}?", "How much is {s} trading at?"]),
}


def _two(b: Builder) -> list[str]:
    return b.rng.sample(sorted(b.state.balances), 2)


def op_balance(b: Builder) -> TurnSpec:
    a = b.rng.choice(sorted(b.state.balances))
    return TurnSpec(user=b.say("balance", a=a), calls=[call("get_balance", account=a)], closing="That's the balance.")


def op_deposit(b: Builder) -> TurnSpec:
    a, n = b.rng.choice(sorted(b.state.balances)), b.rng.randint(2, 60) * 5
    return TurnSpec(user=b.say("deposit", a=a, n=n), calls=[call("deposit", account=a, amount=n)])


def op_transfer(b: Builder) -> TurnSpec | None:
    a, c = _two(b)
    if b.state.balances[a] < 10:
        return None
    n = b.rng.randint(1, b.state.balances[a] // 10) * 5
    return TurnSpec(
        user=b.say("transfer", a=a, b=c, n=n),
        calls=[call("transfer", from_account=a, to_account=c, amount=n)],
        closing=f"Moved ${n}.",
        missing_user=b.say("transfer_missing", a=a, b=c),
        supply=b.say("transfer_supply", n=n),
    )


def op_history(b: Builder) -> TurnSpec:
    a, k = b.rng.choice(sorted(b.state.balances)), b.rng.randint(2, 5)
    return TurnSpec(
        user=b.say("history", a=a, k=k),
        calls=[call("recent_transactions", account=a, limit=k)],
        closing="Those are the latest transactions.",
    )


def op_bill(b: Builder) -> TurnSpec | None:
    a = b.rng.choice(sorted(b.state.balances))
    p, n = b.pick(PAYEES), b.rng.randint(3, 30) * 3
    if b.state.balances[a] < n:
        return None
    calls = [] if p in b.state.payees else [call("add_payee", name=p)]
    calls.append(call("pay_bill", payee=p, amount=n, from_account=a))
    return TurnSpec(
        user=b.say("bill", p=p, n=n, a=a),
        calls=calls,
        closing=f"Paid {p}.",
        missing_user=b.say("bill_missing", p=p, n=n),
        supply=b.say("bill_supply", a=a),
    )


def op_buy(b: Builder) -> TurnSpec | None:
    s = b.pick(sorted(PRICES))
    k = b.rng.randint(1, 6)
    if PRICES[s] * k > b.state.brokerage_cash:
        return None
    return TurnSpec(user=b.say("buy", k=k, s=s), calls=[call("buy_stock", symbol=s, shares=k)], closing="Bought.")


def op_sell(b: Builder) -> TurnSpec | None:
    if not b.state.holdings:
        return None
    s = b.rng.choice(sorted(b.state.holdings))
    k = b.rng.randint(1, b.state.holdings[s])
    return TurnSpec(user=b.say("sell", k=k, s=s), calls=[call("sell_stock", symbol=s, shares=k)], closing="Sold.")


def op_price(b: Builder) -> TurnSpec:
    s = b.pick(sorted(PRICES))
    return TurnSpec(user=b.say("price", s=s), calls=[call("stock_price", symbol=s)], closing="That's the price.")


class BankingEnv(MultiTurnFCEnv):
    """Multi-turn banking and trading over deterministic accounts and a fixed price book."""

    description = "Multi-turn stateful function calling: bank accounts, transfers, bills and stock trades."
    tags = ("function-calling", "multi-turn", "banking")
    domain = "banking"
    state_cls = Bank
    system_prompt = (
        "You are a banking assistant with tools for the user's accounts and brokerage. Amounts are "
        "whole dollars. Ask when a required detail is missing; say so when no tool can help."
    )
    templates = T
    ops = (op_balance, op_deposit, op_transfer, op_history, op_bill, op_buy, op_sell, op_price)

    @classmethod
    def initial_state(cls, rng: random.Random, split: Split) -> Bank:
        names = rng.sample(split_pool(ACCOUNTS, split), 3)
        symbols = split_pool(sorted(PRICES), split)
        return Bank(
            balances={n: rng.randint(20, 400) * 5 for n in names},
            payees=rng.sample(split_pool(PAYEES, split), 1),
            holdings={rng.choice(symbols): rng.randint(2, 9)},
            brokerage_cash=rng.randint(50, 300),
        )
