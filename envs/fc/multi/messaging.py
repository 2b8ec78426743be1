"""Messaging domain: contacts, an inbox and an outbox, blocking, and folders for old messages."""

from __future__ import annotations

import random

from pydantic import BaseModel, Field

from resrl.core.task import Split
from resrl.core.tools import ToolError, tool
from resrl_envs.fc.multi.engine import Builder, DomainState, MultiTurnFCEnv, TurnSpec, call, split_pool

PEOPLE = (
    "alice",
    "bruno",
    "chen",
    "dara",
    "emeka",
    "farah",
    "goran",
    "hana",
    "ivan",
    "jun",
    "kofi",
    "lena",
    "mateo",
    "nora",
    "omar",
    "priya",
    "quinn",
    "rosa",
    "sven",
    "tara",
)
TEXTS = (
    "running late",
    "lunch at noon?",
    "see the attached plan",
    "call me back",
    "meeting moved to 3",
    "happy birthday!",
    "thanks for the help",
    "where are the keys",
    "game tonight?",
    "the report is ready",
    "can you review my PR",
    "flight landed",
    "dinner friday?",
    "send the invoice",
    "good luck today",
    "parking is full",
)


class Msg(BaseModel):
    """One message."""

    id: int
    sender: str
    to: str
    text: str
    read: bool = False
    archived: bool = False


class Messenger(DomainState):
    """The user's account: contacts, every message in and out, and the block list."""

    me: str = "me"
    contacts: list[str] = Field(default_factory=list)
    messages: list[Msg] = Field(default_factory=list)
    blocked: list[str] = Field(default_factory=list)
    next_id: int = 1

    def _msg(self, message_id: int) -> Msg:
        for m in self.messages:
            if m.id == message_id:
                return m
        raise ToolError(f"no message with id {message_id}")

    @tool
    def list_contacts(self) -> list[str]:
        """The user's contacts, sorted."""
        return sorted(self.contacts)

    @tool
    def add_contact(self, username: str) -> str:
        """Add a user to the contacts.

        Args:
            username: the user to add.
        """
        if username in self.contacts:
            raise ToolError(f"{username} is already a contact")
        self.contacts.append(username)
        return f"added {username}"

    @tool
    def send_message(self, to: str, text: str) -> int:
        """Send a message to a contact; returns the new message's id.

        Args:
            to: a contact's username.
            text: the message text.
        """
        if to not in self.contacts:
            raise ToolError(f"{to} is not a contact; add them first")
        if to in self.blocked:
            raise ToolError(f"{to} is blocked")
        self.messages.append(Msg(id=self.next_id, sender=self.me, to=to, text=text, read=True))
        self.next_id += 1
        return self.next_id - 1

    @tool
    def inbox(self, sender: str = "", unread_only: bool = False) -> list[dict[str, object]]:
        """Received messages that are not archived (id, sender, text, read), oldest first.

        Args:
            sender: only messages from this user; empty for everyone.
            unread_only: only messages not yet read.
        """
        return [
            {"id": m.id, "sender": m.sender, "text": m.text, "read": m.read}
            for m in self.messages
            if m.to == self.me
            and not m.archived
            and (not sender or m.sender == sender)
            and not (unread_only and m.read)
        ]

    @tool
    def read_message(self, message_id: int) -> str:
        """Open a message (marking it read) and return its text.

        Args:
            message_id: the message id.
        """
        m = self._msg(message_id)
        m.read = True
        return f"from {m.sender}: {m.text}"

    @tool
    def delete_message(self, message_id: int) -> str:
        """Delete a message for good.

        Args:
            message_id: the message id.
        """
        self.messages.remove(self._msg(message_id))
        return f"deleted message {message_id}"

    @tool
    def archive_message(self, message_id: int) -> str:
        """Move a message out of the inbox into the archive.

        Args:
            message_id: the message id.
        """
        self._msg(message_id).archived = True
        return f"archived message {message_id}"

    @tool
    def search_messages(self, keyword: str) -> list[int]:
        """Ids of every message (sent, received or archived) whose text contains the keyword.

        Args:
            keyword: the text to look for, case-insensitive.
        """
        return [m.id for m in self.messages if keyword.lower() in m.text.lower()]

    @tool
    def block_user(self, username: str) -> str:
        """Block a user: no messages can be sent to them.

        Args:
            username: the user to block.
        """
        if username in self.blocked:
            raise ToolError(f"{username} is already blocked")
        self.blocked.append(username)
        return f"blocked {username}"

    @tool
    def unblock_user(self, username: str) -> str:
        """Lift a block.

        Args:
            username: the user to unblock.
        """
        if username not in self.blocked:
            raise ToolError(f"{username} is not blocked")
        self.blocked.remove(username)
        return f"unblocked {username}"


T = {
    "send": (
        ["Send {who} a message saying '{text}'.", "Text {who}: '{text}'."],
        ["Message {who} with '{text}'.", "Let {who} know: '{text}'."],
    ),
    "send_missing": (
        ["Send {who} a message.", "Text {who} for me."],
        ["I want to message {who}.", "Drop {who} a note."],
    ),
    "send_supply": (["Say '{text}'.", "The message is '{text}'."], ["Write '{text}'.", "Tell them '{text}'."]),
    "new_contact": (
        ["Add {who} to my contacts and send them '{text}'.", "Save {who} as a contact, then text them '{text}'."],
        [
            "{who} isn't in my contacts yet: add them and message '{text}'.",
            "Put {who} in contacts and tell them '{text}'.",
        ],
    ),
    "read_from": (
        ["Open the latest message from {who}.", "What did {who} last write to me?"],
        ["Read me {who}'s newest message.", "Show the most recent note from {who}."],
    ),
    "archive_from": (
        ["Archive every message from {who}.", "Clear {who}'s messages out of my inbox into the archive."],
        ["Move all of {who}'s messages to the archive.", "File away everything {who} sent me."],
    ),
    "delete_keyword": (
        ["Delete the message that says '{text}'.", "Remove the '{text}' message."],
        ["Erase the message with the text '{text}'.", "Get rid of the '{text}' message."],
    ),
    "block": (
        ["Block {who}.", "I don't want to hear from {who}; block them."],
        ["Put {who} on my block list.", "Stop {who} from reaching me."],
    ),
    "unblock": (
        ["Unblock {who}.", "Take {who} off the block list."],
        ["Lift the block on {who}.", "I'm fine with {who} again; unblock them."],
    ),
    "unread": (
        ["Do I have unread messages?", "List my unread messages."],
        ["Anything new I haven't read?", "Show unread messages only."],
    ),
}


def _inbox_senders(b: Builder) -> list[str]:
    return sorted({m.sender for m in b.state.messages if m.to == b.state.me and not m.archived})


def op_send(b: Builder) -> TurnSpec | None:
    choices = [c for c in b.state.contacts if c not in b.state.blocked]
    if not choices:
        return None
    who, text = b.rng.choice(sorted(choices)), b.pick(TEXTS)
    return TurnSpec(
        user=b.say("send", who=who, text=text),
        calls=[call("send_message", to=who, text=text)],
        closing=f"Sent to {who}.",
        missing_user=b.say("send_missing", who=who),
        supply=b.say("send_supply", text=text),
    )


def op_new_contact(b: Builder) -> TurnSpec | None:
    fresh = [p for p in split_pool(PEOPLE, b.split) if p not in b.state.contacts and p not in b.state.blocked]
    if not fresh:
        return None
    who, text = b.rng.choice(fresh), b.pick(TEXTS)
    return TurnSpec(
        user=b.say("new_contact", who=who, text=text),
        calls=[call("add_contact", username=who), call("send_message", to=who, text=text)],
    )


def op_read_from(b: Builder) -> TurnSpec | None:
    senders = _inbox_senders(b)
    if not senders:
        return None
    who = b.rng.choice(senders)
    last = [m for m in b.state.messages if m.sender == who and m.to == b.state.me and not m.archived][-1]
    return TurnSpec(
        user=b.say("read_from", who=who),
        calls=[call("inbox", sender=who), call("read_message", message_id=last.id)],
        closing=f"That was {who}'s latest message.",
    )


def op_archive_from(b: Builder) -> TurnSpec | None:
    senders = _inbox_senders(b)
    if not senders:
        return None
    who = b.rng.choice(senders)
    ids = [m.id for m in b.state.messages if m.sender == who and m.to == b.state.me and not m.archived]
    return TurnSpec(
        user=b.say("archive_from", who=who),
        calls=[call("inbox", sender=who)] + [call("archive_message", message_id=i) for i in ids],
    )


def op_delete_keyword(b: Builder) -> TurnSpec | None:
    texts = [m.text for m in b.state.messages]
    unique = sorted(t for t in set(texts) if texts.count(t) == 1)
    if not unique:
        return None
    text = b.rng.choice(unique)
    target = next(m.id for m in b.state.messages if m.text == text)
    return TurnSpec(
        user=b.say("delete_keyword", text=text),
        calls=[call("search_messages", keyword=text), call("delete_message", message_id=target)],
    )


def op_block(b: Builder) -> TurnSpec | None:
    options = sorted(set(_inbox_senders(b)) - set(b.state.blocked))
    if not options:
        return None
    who = b.rng.choice(options)
    return TurnSpec(
        user=b.say("block", who=who), calls=[call("block_user", username=who)], closing=f"{who} is blocked."
    )


def op_unblock(b: Builder) -> TurnSpec | None:
    if not b.state.blocked:
        return None
    who = b.rng.choice(sorted(b.state.blocked))
    return TurnSpec(user=b.say("unblock", who=who), calls=[call("unblock_user", username=who)])


def op_unread(b: Builder) -> TurnSpec:
    return TurnSpec(
        user=b.say("unread"), calls=[call("inbox", unread_only=True)], closing="Those are your unread messages."
    )


class MessagingEnv(MultiTurnFCEnv):
    """Multi-turn messaging over a deterministic inbox."""

    description = "Multi-turn stateful function calling: contacts, inbox, sending, archiving and blocking."
    tags = ("function-calling", "multi-turn", "messaging")
    domain = "messaging"
    state_cls = Messenger
    system_prompt = (
        "You are a messaging assistant acting for the user (username 'me'). Use the tools; ask "
        "when a required detail is missing; say so when no tool can do what is asked."
    )
    templates = T
    ops = (op_send, op_new_contact, op_read_from, op_archive_from, op_delete_keyword, op_block, op_unblock, op_unread)

    @classmethod
    def initial_state(cls, rng: random.Random, split: Split) -> Messenger:
        people = split_pool(PEOPLE, split)
        contacts = rng.sample(people, 4)
        texts = split_pool(TEXTS, split)
        messages = [
            Msg(id=i + 1, sender=rng.choice(contacts), to="me", text=t, read=rng.random() < 0.4)
            for i, t in enumerate(rng.sample(texts, 4))
        ]
        blocked = [rng.choice([p for p in people if p not in contacts])] if rng.random() < 0.5 else []
        return Messenger(contacts=sorted(contacts), messages=messages, blocked=blocked, next_id=len(messages) + 1)
