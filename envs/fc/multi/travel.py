"""Travel domain: a fixed flight and hotel catalogue, bookings, seats, baggage and a travel wallet."""

from __future__ import annotations

import random

from pydantic import BaseModel, Field

from resrl.core.task import Split
from resrl.core.tools import ToolError, tool
from resrl_envs.fc.multi.engine import Builder, DomainState, MultiTurnFCEnv, TurnSpec, call, split_pool

CITIES = (
    "Lisbon",
    "Oslo",
    "Madrid",
    "Vienna",
    "Prague",
    "Dublin",
    "Athens",
    "Warsaw",
    "Zurich",
    "Helsinki",
    "Porto",
    "Milan",
    "Seville",
    "Krakow",
    "Bergen",
    "Lyon",
)
TRAVELERS = (
    "Ada Byron",
    "Alan Turing",
    "Grace Hopper",
    "Edsger Dijkstra",
    "Barbara Liskov",
    "Ken Thompson",
    "Frances Allen",
    "Donald Knuth",
    "Radia Perlman",
    "John Backus",
)
DATES = tuple(f"2026-05-{d:02d}" for d in range(1, 29))
SEATS = ("1A", "2C", "3F", "7D", "10B", "12A", "14E", "21C", "22F", "30A")
BAG_FEE = 25


class Flight(BaseModel):
    """A scheduled flight."""

    id: str
    origin: str
    destination: str
    date: str
    price: int


class Hotel(BaseModel):
    """A hotel and its nightly rate."""

    id: str
    city: str
    name: str
    nightly: int


class Booking(BaseModel):
    """A reservation: a flight (with seat and bags) or a hotel stay."""

    id: str
    kind: str
    item: str
    traveler: str
    cost: int
    seat: str = ""
    bags: int = 0
    nights: int = 0


class Travel(DomainState):
    """The catalogue, the user's bookings and the travel wallet balance (dollars)."""

    flights: list[Flight] = Field(default_factory=list)
    hotels: list[Hotel] = Field(default_factory=list)
    bookings: list[Booking] = Field(default_factory=list)
    wallet: int = 0
    next_booking: int = 1

    def _find(self, booking_id: str) -> Booking:
        for bk in self.bookings:
            if bk.id == booking_id:
                return bk
        raise ToolError(f"no booking {booking_id}")

    def _charge(self, amount: int) -> None:
        if amount > self.wallet:
            raise ToolError(f"wallet balance {self.wallet} is too low for {amount}")
        self.wallet -= amount

    def _book(self, kind: str, item: str, traveler: str, cost: int, **extra: object) -> str:
        self._charge(cost)
        booking_id = f"BK{self.next_booking:03d}"
        self.next_booking += 1
        self.bookings.append(Booking(id=booking_id, kind=kind, item=item, traveler=traveler, cost=cost, **extra))
        return booking_id

    @tool
    def search_flights(self, origin: str, destination: str, date: str) -> list[dict[str, object]]:
        """Flights between two cities on a date (id and price), cheapest first.

        Args:
            origin: departure city.
            destination: arrival city.
            date: the day, as YYYY-MM-DD.
        """
        found = [f for f in self.flights if (f.origin, f.destination, f.date) == (origin, destination, date)]
        return [{"id": f.id, "price": f.price} for f in sorted(found, key=lambda f: (f.price, f.id))]

    @tool
    def book_flight(self, flight_id: str, traveler: str) -> str:
        """Book a seat on a flight, paid from the wallet; returns the booking id.

        Args:
            flight_id: the flight id from search_flights.
            traveler: the passenger's full name.
        """
        flight = next((f for f in self.flights if f.id == flight_id), None)
        if flight is None:
            raise ToolError(f"no flight {flight_id}")
        return self._book("flight", flight_id, traveler, flight.price)

    @tool
    def search_hotels(self, city: str) -> list[dict[str, object]]:
        """Hotels in a city (id, name, nightly rate), cheapest first.

        Args:
            city: the city.
        """
        found = sorted((h for h in self.hotels if h.city == city), key=lambda h: (h.nightly, h.id))
        return [{"id": h.id, "name": h.name, "nightly": h.nightly} for h in found]

    @tool
    def book_hotel(self, hotel_id: str, traveler: str, nights: int) -> str:
        """Book a hotel stay paid from the wallet; returns the booking id.

        Args:
            hotel_id: the hotel id from search_hotels.
            traveler: the guest's full name.
            nights: number of nights.
        """
        hotel = next((h for h in self.hotels if h.id == hotel_id), None)
        if hotel is None:
            raise ToolError(f"no hotel {hotel_id}")
        if nights < 1:
            raise ToolError("nights must be at least 1")
        return self._book("hotel", hotel_id, traveler, hotel.nightly * nights, nights=nights)

    @tool
    def list_bookings(self) -> list[dict[str, object]]:
        """Every booking of the user."""
        return [bk.model_dump() for bk in self.bookings]

    @tool
    def cancel_booking(self, booking_id: str) -> int:
        """Cancel a booking and refund it to the wallet; returns the new wallet balance.

        Args:
            booking_id: the booking id, like ``BK001``.
        """
        bk = self._find(booking_id)
        self.bookings.remove(bk)
        self.wallet += bk.cost + bk.bags * BAG_FEE
        return self.wallet

    @tool
    def choose_seat(self, booking_id: str, seat: str) -> str:
        """Pick the seat of a flight booking.

        Args:
            booking_id: the flight booking id.
            seat: a seat like ``12A``.
        """
        bk = self._find(booking_id)
        if bk.kind != "flight":
            raise ToolError(f"{booking_id} is not a flight booking")
        bk.seat = seat
        return f"seat {seat} on {booking_id}"

    @tool
    def add_bags(self, booking_id: str, bags: int) -> int:
        """Add checked bags to a flight booking (a fee each, from the wallet); returns the bag count.

        Args:
            booking_id: the flight booking id.
            bags: how many bags to add.
        """
        bk = self._find(booking_id)
        if bk.kind != "flight" or bags < 1:
            raise ToolError("bags can be added (at least one) to flight bookings only")
        self._charge(bags * BAG_FEE)
        bk.bags += bags
        return bk.bags

    @tool
    def wallet_balance(self) -> int:
        """The travel wallet balance in dollars."""
        return self.wallet


T = {
    "flight": (
        [
            "Book the cheapest flight from {o} to {d} on {date} for {who}.",
            "Find flights {o} to {d} on {date} and book the cheapest one for {who}.",
        ],
        [
            "{who} needs to get from {o} to {d} on {date}; reserve the lowest fare.",
            "Get {who} on the least expensive {o}-{d} flight, {date}.",
        ],
    ),
    "flight_missing": (
        [
            "Book the cheapest flight from {o} to {d} for {who}.",
            "Find flights {o} to {d} and book the cheapest one for {who}.",
        ],
        [
            "{who} needs to get from {o} to {d}; reserve the lowest fare.",
            "Get {who} on the least expensive {o}-{d} flight.",
        ],
    ),
    "flight_supply": (["Travel date is {date}.", "On {date}."], ["The day is {date}.", "Make it {date}."]),
    "hotel": (
        [
            "Book the cheapest hotel in {c} for {who}, {n} nights.",
            "Reserve {n} nights at the lowest-priced hotel in {c} for {who}.",
        ],
        [
            "{who} needs a bed in {c} for {n} nights; take the cheapest hotel.",
            "Cheapest place in {c}, {n} nights, guest {who}.",
        ],
    ),
    "hotel_missing": (
        ["Book the cheapest hotel in {c} for {who}.", "Reserve the lowest-priced hotel in {c} for {who}."],
        ["{who} needs a bed in {c}; take the cheapest hotel.", "Cheapest place in {c}, guest {who}."],
    ),
    "hotel_supply": (["{n} nights.", "For {n} nights."], ["Stay is {n} nights.", "{n} nights, please."]),
    "seat": (
        ["Put {who} in seat {seat} on booking {bk}.", "Choose seat {seat} for booking {bk}."],
        ["Seat {seat} please, booking {bk}.", "I'd like {seat} on {bk}."],
    ),
    "bags": (
        ["Add {n} checked bag(s) to {bk}.", "Booking {bk} needs {n} bag(s)."],
        ["Include {n} suitcase(s) on {bk}.", "Check in {n} bag(s) for booking {bk}."],
    ),
    "cancel": (
        ["Cancel booking {bk}.", "Please cancel {bk} and refund me."],
        ["Call off reservation {bk}.", "I no longer need {bk}; cancel it."],
    ),
    "wallet": (
        ["How much is left in my travel wallet?", "What's my wallet balance?"],
        ["Check my travel funds.", "How much travel money do I have?"],
    ),
    "trips": (
        ["List all my bookings.", "What have I booked so far?"],
        ["Show my reservations.", "Which trips do I have?"],
    ),
}


def _flight_bookings(b: Builder) -> list[Booking]:
    return [bk for bk in b.state.bookings if bk.kind == "flight"]


def op_flight(b: Builder) -> TurnSpec | None:
    f = b.rng.choice(b.state.flights)
    options = sorted(
        (x for x in b.state.flights if (x.origin, x.destination, x.date) == (f.origin, f.destination, f.date)),
        key=lambda x: (x.price, x.id),
    )
    if options[0].price > b.state.wallet:
        return None
    who = b.pick(TRAVELERS)
    fields = {"o": f.origin, "d": f.destination, "who": who}
    return TurnSpec(
        user=b.say("flight", date=f.date, **fields),
        calls=[
            call("search_flights", origin=f.origin, destination=f.destination, date=f.date),
            call("book_flight", flight_id=options[0].id, traveler=who),
        ],
        closing="Your flight is booked.",
        missing_user=b.say("flight_missing", **fields),
        supply=b.say("flight_supply", date=f.date),
    )


def op_hotel(b: Builder) -> TurnSpec | None:
    city = b.rng.choice(sorted({h.city for h in b.state.hotels}))
    cheapest = min((h for h in b.state.hotels if h.city == city), key=lambda h: (h.nightly, h.id))
    n, who = b.rng.randint(1, 4), b.pick(TRAVELERS)
    if cheapest.nightly * n > b.state.wallet:
        return None
    return TurnSpec(
        user=b.say("hotel", c=city, who=who, n=n),
        calls=[call("search_hotels", city=city), call("book_hotel", hotel_id=cheapest.id, traveler=who, nights=n)],
        closing="The hotel is booked.",
        missing_user=b.say("hotel_missing", c=city, who=who),
        supply=b.say("hotel_supply", n=n),
    )


def op_seat(b: Builder) -> TurnSpec | None:
    flights = _flight_bookings(b)
    if not flights:
        return None
    bk, seat = b.rng.choice(flights), b.pick(SEATS)
    return TurnSpec(
        user=b.say("seat", who=bk.traveler, seat=seat, bk=bk.id),
        calls=[call("choose_seat", booking_id=bk.id, seat=seat)],
    )


def op_bags(b: Builder) -> TurnSpec | None:
    flights, n = _flight_bookings(b), b.rng.randint(1, 2)
    if not flights or n * BAG_FEE > b.state.wallet:
        return None
    bk = b.rng.choice(flights)
    return TurnSpec(user=b.say("bags", n=n, bk=bk.id), calls=[call("add_bags", booking_id=bk.id, bags=n)])


def op_cancel(b: Builder) -> TurnSpec | None:
    if not b.state.bookings:
        return None
    bk = b.rng.choice(b.state.bookings)
    return TurnSpec(
        user=b.say("cancel", bk=bk.id),
        calls=[call("cancel_booking", booking_id=bk.id)],
        closing="Cancelled and refunded.",
    )


def op_wallet(b: Builder) -> TurnSpec:
    return TurnSpec(user=b.say("wallet"), calls=[call("wallet_balance")], closing="That's your balance.")


def op_trips(b: Builder) -> TurnSpec:
    return TurnSpec(user=b.say("trips"), calls=[call("list_bookings")], closing="Those are your bookings.")


class TravelEnv(MultiTurnFCEnv):
    """Multi-turn travel booking over a deterministic catalogue."""

    description = "Multi-turn stateful function calling: search and book flights and hotels, seats, bags, refunds."
    tags = ("function-calling", "multi-turn", "travel")
    domain = "travel"
    state_cls = Travel
    system_prompt = (
        "You are a travel agent with booking tools; payments come from the user's travel wallet. "
        "Ask when a required detail is missing; say so when no tool can do it."
    )
    templates = T
    ops = (op_flight, op_flight, op_hotel, op_seat, op_bags, op_cancel, op_wallet, op_trips)

    @classmethod
    def initial_state(cls, rng: random.Random, split: Split) -> Travel:
        cities = rng.sample(split_pool(CITIES, split), 4)
        dates = rng.sample(split_pool(DATES, split), 3)
        flights = []
        for i in range(8):
            o, d = rng.sample(cities, 2)
            date = rng.choice(dates)
            for j in range(rng.randint(1, 3)):
                flights.append(
                    Flight(
                        id=f"FL{i}{j}{rng.randint(10, 99)}",
                        origin=o,
                        destination=d,
                        date=date,
                        price=rng.randint(40, 300),
                    )
                )
        hotels = [
            Hotel(
                id=f"H{i}{rng.randint(10, 99)}",
                city=rng.choice(cities),
                name=f"Hotel {chr(65 + i)}",
                nightly=rng.randint(40, 180),
            )
            for i in range(6)
        ]
        return Travel(flights=flights, hotels=hotels, wallet=rng.randint(8, 20) * 100)
