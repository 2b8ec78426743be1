"""Calendar domain: events on dates with hour slots, attendees, and free-slot search."""

from __future__ import annotations

import random

from pydantic import BaseModel, Field

from resrl.core.task import Split
from resrl.core.tools import ToolError, tool
from resrl_envs.fc.multi.engine import Builder, DomainState, MultiTurnFCEnv, TurnSpec, call, split_pool

TITLES = (
    "Budget review",
    "Team standup",
    "Dentist",
    "Yoga class",
    "1:1 with manager",
    "Design critique",
    "Client call",
    "Lunch with Sam",
    "Sprint planning",
    "Parent meeting",
    "Code review",
    "Gym session",
    "Board sync",
    "Coffee chat",
    "Hiring panel",
    "Book club",
)
PEOPLE = ("ana", "ben", "carla", "dev", "eli", "fay", "gus", "hiro", "isla", "jake", "kim", "liam")
DATES = tuple(f"2026-03-{d:02d}" for d in range(2, 28))
DAY_START, DAY_END = 8, 18


class Event(BaseModel):
    """One event: a whole-hour slot on a date."""

    id: int
    title: str
    date: str
    start_hour: int
    hours: int
    attendees: list[str] = Field(default_factory=list)


class Calendar(DomainState):
    """The user's events (working hours 8–18) and the next event id."""

    events: list[Event] = Field(default_factory=list)
    next_id: int = 1

    def _event(self, event_id: int) -> Event:
        for e in self.events:
            if e.id == event_id:
                return e
        raise ToolError(f"no event with id {event_id}")

    def _busy(self, date: str, start: int, hours: int, ignore: int | None = None) -> bool:
        return any(
            e.date == date and e.id != ignore and e.start_hour < start + hours and start < e.start_hour + e.hours
            for e in self.events
        )

    def _check_slot(self, date: str, start: int, hours: int, ignore: int | None = None) -> None:
        if hours < 1 or start < DAY_START or start + hours > DAY_END:
            raise ToolError(f"events must lie within {DAY_START}:00-{DAY_END}:00 and last at least an hour")
        if self._busy(date, start, hours, ignore):
            raise ToolError(f"{date} {start}:00 clashes with another event")

    @tool
    def list_events(self, date: str) -> list[dict[str, object]]:
        """Events on a date (id, title, start_hour, hours, attendees), by start time.

        Args:
            date: the day, as YYYY-MM-DD.
        """
        return [
            e.model_dump(exclude={"date"}) for e in sorted(self.events, key=lambda e: e.start_hour) if e.date == date
        ]

    @tool
    def get_event(self, event_id: int) -> dict[str, object]:
        """Every detail of one event.

        Args:
            event_id: the event id.
        """
        return self._event(event_id).model_dump()

    @tool
    def create_event(self, title: str, date: str, start_hour: int, hours: int = 1) -> int:
        """Create an event in a free slot; returns its id.

        Args:
            title: what the event is.
            date: the day, as YYYY-MM-DD.
            start_hour: the starting hour, 8 to 17.
            hours: how many hours it lasts.
        """
        self._check_slot(date, start_hour, hours)
        self.events.append(Event(id=self.next_id, title=title, date=date, start_hour=start_hour, hours=hours))
        self.next_id += 1
        return self.next_id - 1

    @tool
    def cancel_event(self, event_id: int) -> str:
        """Cancel (delete) an event.

        Args:
            event_id: the event id.
        """
        self.events.remove(self._event(event_id))
        return f"cancelled event {event_id}"

    @tool
    def move_event(self, event_id: int, date: str, start_hour: int) -> str:
        """Move an event to another date and/or start hour, keeping its length.

        Args:
            event_id: the event id.
            date: the new day, as YYYY-MM-DD.
            start_hour: the new starting hour.
        """
        event = self._event(event_id)
        self._check_slot(date, start_hour, event.hours, ignore=event_id)
        event.date, event.start_hour = date, start_hour
        return f"moved event {event_id} to {date} {start_hour}:00"

    @tool
    def rename_event(self, event_id: int, title: str) -> str:
        """Change an event's title.

        Args:
            event_id: the event id.
            title: the new title.
        """
        self._event(event_id).title = title
        return f"renamed event {event_id}"

    @tool
    def add_attendee(self, event_id: int, person: str) -> list[str]:
        """Invite someone to an event; returns the attendee list.

        Args:
            event_id: the event id.
            person: who to invite.
        """
        event = self._event(event_id)
        if person in event.attendees:
            raise ToolError(f"{person} is already invited")
        event.attendees.append(person)
        return list(event.attendees)

    @tool
    def remove_attendee(self, event_id: int, person: str) -> list[str]:
        """Uninvite someone from an event; returns the attendee list.

        Args:
            event_id: the event id.
            person: who to remove.
        """
        event = self._event(event_id)
        if person not in event.attendees:
            raise ToolError(f"{person} is not invited to event {event_id}")
        event.attendees.remove(person)
        return list(event.attendees)

    @tool
    def find_free_slot(self, date: str, hours: int = 1) -> int:
        """The earliest start hour on a date with enough free time.

        Args:
            date: the day, as YYYY-MM-DD.
            hours: how long the slot must be.
        """
        for start in range(DAY_START, DAY_END - hours + 1):
            if not self._busy(date, start, hours):
                return start
        raise ToolError(f"no free {hours}-hour slot on {date}")


T = {
    "create": (
        ["Schedule '{title}' on {date} at {h}:00 for {n} hour(s).", "Book '{title}' for {date}, {h}:00, {n}h."],
        [
            "Put '{title}' in my calendar: {date} starting {h}:00, lasting {n} hour(s).",
            "Add an event '{title}' on {date} from {h}:00 ({n}h).",
        ],
    ),
    "create_missing": (
        ["Schedule '{title}' on {date} for {n} hour(s).", "Book '{title}' for {date}, {n}h."],
        ["Put '{title}' in my calendar on {date}, lasting {n} hour(s).", "Add an event '{title}' on {date} ({n}h)."],
    ),
    "create_supply": (["Start it at {h}:00.", "At {h}:00 please."], ["{h}:00 works.", "Make it start at {h}."]),
    "first_free": (
        [
            "Find the first free {n}-hour slot on {date} and book '{title}' there.",
            "Put '{title}' ({n}h) in the earliest free spot on {date}.",
        ],
        [
            "When am I first free for {n} hour(s) on {date}? Schedule '{title}' then.",
            "Slot '{title}' into my first open {n} hour(s) on {date}.",
        ],
    ),
    "cancel": (
        ["Cancel '{title}' on {date}.", "Remove the '{title}' event from {date}."],
        ["Drop '{title}' on {date} from my calendar.", "'{title}' on {date} is off; delete it."],
    ),
    "move": (
        ["Move '{title}' on {date} to {new} at {h}:00.", "Reschedule '{title}' ({date}) to {new}, {h}:00."],
        ["Shift '{title}' from {date} to {new} starting {h}:00.", "Push '{title}' on {date} over to {new} at {h}."],
    ),
    "invite": (
        ["Invite {who} to '{title}' on {date}.", "Add {who} to the '{title}' event on {date}."],
        ["{who} should join '{title}' on {date}.", "Put {who} on the guest list of '{title}' ({date})."],
    ),
    "uninvite": (
        ["Remove {who} from '{title}' on {date}.", "Uninvite {who} from '{title}' on {date}."],
        ["{who} won't attend '{title}' on {date}; take them off.", "Drop {who} from '{title}' ({date})."],
    ),
    "rename": (
        ["Rename '{title}' on {date} to '{new}'.", "Call the '{title}' event on {date} '{new}' instead."],
        ["Retitle '{title}' ({date}) as '{new}'.", "'{title}' on {date} should be named '{new}'."],
    ),
    "agenda": (
        ["What's on my calendar on {date}?", "List my events for {date}."],
        ["Show me {date}'s schedule.", "What do I have going on {date}?"],
    ),
}


def _event(b: Builder) -> Event | None:
    events = [e for e in b.state.events if sum(x.title == e.title and x.date == e.date for x in b.state.events) == 1]
    return b.rng.choice(events) if events else None


def _free_hour(b: Builder, date: str, hours: int, ignore: int | None = None) -> int | None:
    free = [h for h in range(DAY_START, DAY_END - hours + 1) if not b.state._busy(date, h, hours, ignore)]
    return b.rng.choice(free) if free else None


def op_create(b: Builder) -> TurnSpec | None:
    title, date, n = b.pick(TITLES), b.pick(DATES), b.rng.randint(1, 2)
    h = _free_hour(b, date, n)
    if h is None:
        return None
    return TurnSpec(
        user=b.say("create", title=title, date=date, h=h, n=n),
        calls=[call("create_event", title=title, date=date, start_hour=h, hours=n)],
        closing=f"'{title}' is on your calendar.",
        missing_user=b.say("create_missing", title=title, date=date, n=n),
        supply=b.say("create_supply", h=h),
    )


def op_first_free(b: Builder) -> TurnSpec | None:
    title, n = b.pick(TITLES), b.rng.randint(1, 3)
    dates = sorted({e.date for e in b.state.events}) or [b.pick(DATES)]
    date = b.rng.choice(dates)
    free = [h for h in range(DAY_START, DAY_END - n + 1) if not b.state._busy(date, h, n)]
    if not free:
        return None
    return TurnSpec(
        user=b.say("first_free", title=title, date=date, n=n),
        calls=[
            call("find_free_slot", date=date, hours=n),
            call("create_event", title=title, date=date, start_hour=free[0], hours=n),
        ],
    )


def _lookup(b: Builder, key: str, **fields: object) -> tuple[Event, str, list] | None:
    event = _event(b)
    if event is None:
        return None
    text = b.say(key, title=event.title, date=event.date, **fields)
    return event, text, [call("list_events", date=event.date)]


def op_cancel(b: Builder) -> TurnSpec | None:
    found = _lookup(b, "cancel")
    if found is None:
        return None
    event, text, calls = found
    return TurnSpec(user=text, calls=[*calls, call("cancel_event", event_id=event.id)], closing="Cancelled.")


def op_move(b: Builder) -> TurnSpec | None:
    event = _event(b)
    if event is None:
        return None
    new = b.pick(DATES)
    h = _free_hour(b, new, event.hours, ignore=event.id)
    if h is None or (new, h) == (event.date, event.start_hour):
        return None
    return TurnSpec(
        user=b.say("move", title=event.title, date=event.date, new=new, h=h),
        calls=[call("list_events", date=event.date), call("move_event", event_id=event.id, date=new, start_hour=h)],
        closing="Moved.",
    )


def op_invite(b: Builder) -> TurnSpec | None:
    who = b.pick(PEOPLE)
    found = _lookup(b, "invite", who=who)
    if found is None or who in found[0].attendees:
        return None
    event, text, calls = found
    return TurnSpec(
        user=text, calls=[*calls, call("add_attendee", event_id=event.id, person=who)], closing=f"{who} is invited."
    )


def op_uninvite(b: Builder) -> TurnSpec | None:
    event = _event(b)
    if event is None or not event.attendees:
        return None
    who = b.rng.choice(event.attendees)
    return TurnSpec(
        user=b.say("uninvite", who=who, title=event.title, date=event.date),
        calls=[call("list_events", date=event.date), call("remove_attendee", event_id=event.id, person=who)],
    )


def op_rename(b: Builder) -> TurnSpec | None:
    new = b.pick(TITLES)
    found = _lookup(b, "rename", new=new)
    if found is None or found[0].title == new:
        return None
    event, text, calls = found
    return TurnSpec(user=text, calls=[*calls, call("rename_event", event_id=event.id, title=new)])


def op_agenda(b: Builder) -> TurnSpec:
    dates = sorted({e.date for e in b.state.events}) or [b.pick(DATES)]
    date = b.rng.choice(dates)
    return TurnSpec(
        user=b.say("agenda", date=date),
        calls=[call("list_events", date=date)],
        closing=f"That's your schedule for {date}.",
    )


class CalendarEnv(MultiTurnFCEnv):
    """Multi-turn calendar management over a deterministic event store."""

    description = "Multi-turn stateful function calling: schedule, move, cancel events and manage attendees."
    tags = ("function-calling", "multi-turn", "calendar")
    domain = "calendar"
    state_cls = Calendar
    system_prompt = (
        "You manage the user's calendar with the tools (dates YYYY-MM-DD, whole hours 8-18). Ask "
        "when a required detail is missing; say so when no tool can do it."
    )
    templates = T
    ops = (op_create, op_first_free, op_cancel, op_move, op_invite, op_uninvite, op_rename, op_agenda)

    @classmethod
    def initial_state(cls, rng: random.Random, split: Split) -> Calendar:
        cal = Calendar()
        dates = rng.sample(split_pool(DATES, split), 2)
        for title in rng.sample(split_pool(TITLES, split), 4):
            date, hours = rng.choice(dates), rng.randint(1, 2)
            free = [h for h in range(DAY_START, DAY_END - hours + 1) if not cal._busy(date, h, hours)]
            attendees = rng.sample(split_pool(PEOPLE, split), rng.randint(0, 2))
            cal.events.append(
                Event(
                    id=cal.next_id,
                    title=title,
                    date=date,
                    start_hour=rng.choice(free),
                    hours=hours,
                    attendees=attendees,
                )
            )
            cal.next_id += 1
        return cal
