"""The tool catalogue of the single-turn envs: typed functions whose schemas pydantic derives.

Single-turn episodes score the calls and never run them, but every tool is a working function so the
catalogue can back other envs and demos. Tools that would need the outside world (weather, prices) answer
with values derived deterministically from their arguments.
"""

from __future__ import annotations

import math
import zlib
from typing import Literal

from resrl import tool

LengthUnit = Literal["mm", "cm", "m", "km", "in", "ft", "mi"]
TemperatureScale = Literal["celsius", "fahrenheit", "kelvin"]
_METRES = {"mm": 0.001, "cm": 0.01, "m": 1.0, "km": 1000.0, "in": 0.0254, "ft": 0.3048, "mi": 1609.344}


def _pseudo(*parts: object, low: float = 0.0, high: float = 1.0) -> float:
    """A stable stand-in for live data: the same arguments always give the same number."""
    digest = zlib.crc32("|".join(str(p).lower() for p in parts).encode())
    return low + (high - low) * (digest % 10_000) / 10_000


@tool
def get_current_weather(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius") -> dict:
    """Get the current weather in a city.

    Args:
        city: the city name, e.g. "Lisbon".
        unit: temperature unit of the answer.
    """
    celsius = round(_pseudo(city, low=-10, high=35), 1)
    temp = celsius if unit == "celsius" else round(celsius * 9 / 5 + 32, 1)
    return {"city": city, "temperature": temp, "unit": unit}


@tool
def get_weather_forecast(city: str, days: int = 3, include_hourly: bool = False) -> dict:
    """Get the weather forecast for the coming days in a city.

    Args:
        city: the city name.
        days: how many days ahead, 1 to 14.
        include_hourly: whether to add hour-by-hour detail.
    """
    highs = [round(_pseudo(city, d, low=-5, high=35), 1) for d in range(days)]
    return {"city": city, "daily_high_celsius": highs, "hourly": include_hourly}


@tool
def convert_currency(amount: float, from_currency: str, to_currency: str) -> dict:
    """Convert an amount of money from one currency to another.

    Args:
        amount: the amount in the source currency.
        from_currency: ISO 4217 code of the source currency, e.g. "EUR".
        to_currency: ISO 4217 code of the target currency.
    """
    rate = _pseudo(from_currency, to_currency, low=0.05, high=20)
    return {"amount": round(amount * rate, 2), "currency": to_currency}


@tool
def convert_length(value: float, from_unit: LengthUnit, to_unit: LengthUnit) -> float:
    """Convert a length between metric and imperial units.

    Args:
        value: the length to convert.
        from_unit: unit of the given length.
        to_unit: unit to convert to.
    """
    return value * _METRES[from_unit] / _METRES[to_unit]


@tool
def convert_temperature(value: float, from_scale: TemperatureScale, to_scale: TemperatureScale) -> float:
    """Convert a temperature between Celsius, Fahrenheit and Kelvin.

    Args:
        value: the temperature to convert.
        from_scale: scale of the given temperature.
        to_scale: scale to convert to.
    """
    kelvin = {"celsius": value + 273.15, "fahrenheit": (value - 32) * 5 / 9 + 273.15, "kelvin": value}[from_scale]
    return {"celsius": kelvin - 273.15, "fahrenheit": (kelvin - 273.15) * 9 / 5 + 32, "kelvin": kelvin}[to_scale]


@tool
def circle_area(radius: float) -> float:
    """Compute the area of a circle.

    Args:
        radius: the circle's radius.
    """
    return math.pi * radius**2


@tool
def triangle_area(base: float, height: float) -> float:
    """Compute the area of a triangle from its base and height.

    Args:
        base: length of the base.
        height: height perpendicular to the base.
    """
    return base * height / 2


@tool
def polygon_perimeter(side_lengths: list[float]) -> float:
    """Compute the perimeter of a polygon from its side lengths.

    Args:
        side_lengths: length of every side, in order.
    """
    return sum(side_lengths)


@tool
def find_recipes(ingredients: list[str], max_minutes: int = 60, vegetarian: bool = False) -> list[str]:
    """Find recipes that use the given ingredients.

    Args:
        ingredients: ingredients the recipe must use.
        max_minutes: the longest total cooking time accepted.
        vegetarian: only vegetarian recipes.
    """
    return [f"{' and '.join(ingredients)} {'bake' if max_minutes > 30 else 'salad'}"]


@tool
def search_flights(
    origin: str,
    destination: str,
    date: str,
    cabin: Literal["economy", "premium", "business", "first"] = "economy",
    passengers: int = 1,
) -> list[dict]:
    """Search for flights between two cities on a date.

    Args:
        origin: departure city.
        destination: arrival city.
        date: departure date, YYYY-MM-DD.
        cabin: cabin class.
        passengers: number of travellers.
    """
    price = round(_pseudo(origin, destination, date, low=60, high=900) * passengers, 2)
    return [{"from": origin, "to": destination, "date": date, "cabin": cabin, "price": price}]


@tool
def get_stock_price(symbol: str, exchange: Literal["NASDAQ", "NYSE", "LSE", "TSE"] = "NASDAQ") -> float:
    """Get the latest price of a stock.

    Args:
        symbol: the ticker symbol, e.g. "AAPL".
        exchange: the exchange the stock trades on.
    """
    return round(_pseudo(symbol, exchange, low=5, high=900), 2)


@tool
def get_stock_history(symbol: str, days: int) -> list[float]:
    """Get a stock's daily closing prices over the last days.

    Args:
        symbol: the ticker symbol.
        days: how many trading days back.
    """
    return [round(_pseudo(symbol, d, low=5, high=900), 2) for d in range(days)]


@tool
def translate_text(text: str, target_language: str, source_language: str | None = None, formal: bool = False) -> str:
    """Translate a text into another language.

    Args:
        text: the text to translate.
        target_language: language to translate into, e.g. "German".
        source_language: language of the text; detected when omitted.
        formal: use the formal register.
    """
    return f"[{target_language}{' formal' if formal else ''}] {text}"


@tool
def create_calendar_event(
    title: str, date: str, start_time: str, duration_minutes: int = 60, attendees: list[str] | None = None
) -> dict:
    """Create an event in the user's calendar.

    Args:
        title: the event's title.
        date: the day, YYYY-MM-DD.
        start_time: the start, 24-hour HH:MM.
        duration_minutes: how long the event lasts.
        attendees: email addresses to invite.
    """
    return {"title": title, "date": date, "start": start_time, "minutes": duration_minutes, "invited": attendees or []}


@tool
def factorial(n: int) -> int:
    """Compute the factorial of a non-negative integer.

    Args:
        n: the integer.
    """
    return math.factorial(n)


@tool
def solve_quadratic(a: float, b: float, c: float) -> list[float]:
    """Find the real roots of a*x^2 + b*x + c = 0.

    Args:
        a: coefficient of x squared.
        b: coefficient of x.
        c: constant term.
    """
    disc = b * b - 4 * a * c
    if disc < 0 or a == 0:
        return []
    return sorted({(-b - math.sqrt(disc)) / (2 * a), (-b + math.sqrt(disc)) / (2 * a)})


@tool
def greatest_common_divisor(numbers: list[int]) -> int:
    """Compute the greatest common divisor of several integers.

    Args:
        numbers: the integers.
    """
    return math.gcd(*numbers)


@tool
def book_hotel(city: str, check_in: str, nights: int, rooms: int = 1, breakfast: bool = False) -> dict:
    """Book a hotel stay.

    Args:
        city: where to stay.
        check_in: arrival date, YYYY-MM-DD.
        nights: number of nights.
        rooms: number of rooms.
        breakfast: include breakfast.
    """
    return {"city": city, "check_in": check_in, "nights": nights, "rooms": rooms, "breakfast": breakfast}


@tool
def find_restaurants(
    city: str,
    cuisine: str,
    price: Literal["cheap", "moderate", "expensive"] | None = None,
    open_now: bool = False,
) -> list[str]:
    """Find restaurants in a city.

    Args:
        city: the city to search in.
        cuisine: the kind of food, e.g. "Thai".
        price: price range; any when omitted.
        open_now: only places open right now.
    """
    return [f"{cuisine} house {city}"]


@tool
def get_movie_showtimes(movie: str, city: str, date: str) -> list[str]:
    """List the showtimes of a movie in a city on a date.

    Args:
        movie: the movie title.
        city: the city.
        date: the day, YYYY-MM-DD.
    """
    return [f"{18 + int(_pseudo(movie, city, date, high=4))}:00"]


@tool
def get_team_standing(team: str, league: str, season: int) -> dict:
    """Get a sports team's position in its league for a season.

    Args:
        team: the team name.
        league: the league or competition.
        season: the year the season started.
    """
    return {"team": team, "league": league, "season": season, "position": 1 + int(_pseudo(team, season, high=20))}


@tool
def count_calories(food: str, grams: float) -> float:
    """Estimate the calories in a portion of food.

    Args:
        food: the food, e.g. "banana".
        grams: portion weight in grams.
    """
    return round(_pseudo(food, low=0.2, high=9) * grams, 1)


@tool
def convert_time_zone(time: str, from_timezone: str, to_timezone: str) -> str:
    """Convert a clock time from one time zone to another.

    Args:
        time: the time, 24-hour HH:MM.
        from_timezone: IANA zone of the given time, e.g. "Europe/Paris".
        to_timezone: IANA zone to convert to.
    """
    shift = int(_pseudo(from_timezone, to_timezone, low=-12, high=12))
    hours, minutes = (int(p) for p in time.split(":"))
    return f"{(hours + shift) % 24:02d}:{minutes:02d}"


@tool
def monthly_loan_payment(principal: float, annual_rate_percent: float, years: int) -> float:
    """Compute the monthly payment of a fixed-rate loan.

    Args:
        principal: the amount borrowed.
        annual_rate_percent: yearly interest rate in percent, e.g. 4.5.
        years: the loan term in years.
    """
    rate, months = annual_rate_percent / 1200, years * 12
    return principal / months if rate == 0 else principal * rate / (1 - (1 + rate) ** -months)


@tool
def track_package(tracking_number: str, carrier: Literal["dhl", "ups", "fedex", "usps"]) -> dict:
    """Track a parcel with its carrier.

    Args:
        tracking_number: the tracking number on the receipt.
        carrier: the delivery company.
    """
    return {"tracking_number": tracking_number, "carrier": carrier, "status": "in transit"}


@tool
def play_song(title: str, artist: str | None = None, shuffle: bool = False) -> str:
    """Play a song on the user's speaker.

    Args:
        title: the song title.
        artist: the performer, to tell same-titled songs apart.
        shuffle: continue with shuffled songs afterwards.
    """
    return f"now playing {title}" + (f" by {artist}" if artist else "")


@tool
def send_email(to: list[str], subject: str, body: str) -> str:
    """Send an email.

    Args:
        to: recipient addresses.
        subject: the subject line.
        body: the message text.
    """
    return f"sent '{subject}' to {len(to)} recipient(s)"
