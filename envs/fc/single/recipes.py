"""Recipes: for each catalogue tool, how to draw one request in words and its correct call.

A recipe draws entities from the split's pools and phrases the request with the split's own wording (train
and test never share a phrasing), returning the gold arguments and any other acceptable values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from resrl import Tool
from resrl_envs.fc.single import tools as T
from resrl_envs.fc.single.drawing import Draw, Side, listing, orders


@dataclass(frozen=True)
class Recipe:
    """A catalogue tool, its family and domain (tools of one domain can stand in for each other), its draw."""

    tool: Tool
    family: str
    domain: str
    draw: Callable[[Side], Draw]


def _weather_now(s: Side) -> Draw:
    city = s.pick("city")
    unit = s.rng.choice(["celsius", "fahrenheit", None])
    args = {"city": city} | ({"unit": unit} if unit else {})
    u = f" in {unit.capitalize()}" if unit else ""
    return Draw(
        args,
        s.say(
            ["check the current weather in {c}{u}", "find out what the weather is like in {c} right now{u}"],
            ["tell me how the weather is in {c} at the moment{u}", "report the present conditions in {c}{u}"],
            c=city,
            u=u,
        ),
    )


def _forecast(s: Side) -> Draw:
    city = s.pick("city")
    args: dict[str, Any] = {"city": city}
    days = ""
    if s.chance(0.6):
        args["days"] = s.rng.randint(2, 14)
        days = f" for the next {args['days']} days"
    hourly = s.chance(0.3)
    if hourly:
        args["include_hourly"] = True
    h = s.words(" with hourly detail", ", hour by hour") if hourly else ""
    return Draw(
        args,
        s.say(
            ["get the weather forecast for {c}{d}{h}"],
            ["look up what the weather will do in {c}{d}{h}"],
            c=city,
            d=days,
            h=h,
        ),
    )


def _currency(s: Side) -> Draw:
    (src, src_name), (dst, dst_name) = s.sample("currency", 2)
    amount = s.rng.choice([s.rng.randint(5, 5000), s.rng.randint(10, 999) + 0.5])
    a, b = (src if s.chance(0.5) else src_name), (dst if s.chance(0.5) else dst_name)
    text = s.say(
        ["convert {n} {a} to {b}", "tell me how much {n} {a} is in {b}"],
        ["change {n} {a} into {b}", "work out what {n} {a} comes to in {b}"],
        n=amount,
        a=a,
        b=b,
    )
    return Draw({"amount": float(amount), "from_currency": src, "to_currency": dst}, text)


_LENGTHS = {
    "mm": "millimetres",
    "cm": "centimetres",
    "m": "metres",
    "km": "kilometres",
    "in": "inches",
    "ft": "feet",
    "mi": "miles",
}


def _length(s: Side) -> Draw:
    src, dst = s.rng.sample(sorted(_LENGTHS), 2)
    value = s.rng.choice([s.rng.randint(1, 900), round(s.rng.uniform(0.5, 99), 1)])
    text = s.say(["convert {v} {a} to {b}"], ["express {v} {a} in {b}"], v=value, a=_LENGTHS[src], b=_LENGTHS[dst])
    return Draw({"value": float(value), "from_unit": src, "to_unit": dst}, text)


def _temperature(s: Side) -> Draw:
    src, dst = s.rng.sample(["celsius", "fahrenheit", "kelvin"], 2)
    value = s.rng.randint(-40, 400)
    text = s.say(
        ["convert {v} degrees {a} to {b}"],
        ["tell me what {v} degrees {a} is in {b}"],
        v=value,
        a=src.capitalize(),
        b=dst.capitalize(),
    )
    return Draw({"value": float(value), "from_scale": src, "to_scale": dst}, text)


def _circle(s: Side) -> Draw:
    r = s.rng.choice([s.rng.randint(1, 60), round(s.rng.uniform(0.5, 30), 2)])
    return Draw(
        {"radius": float(r)},
        s.say(
            ["compute the area of a circle with radius {r}"], ["find how much area a circle of radius {r} covers"], r=r
        ),
    )


def _triangle(s: Side) -> Draw:
    b, h = s.rng.randint(2, 80), s.rng.randint(2, 80)
    text = s.say(
        ["calculate the area of a triangle with base {b} and height {h}"],
        ["work out the area of a triangle whose base is {b} and whose height is {h}"],
        b=b,
        h=h,
    )
    return Draw({"base": float(b), "height": float(h)}, text)


def _perimeter(s: Side) -> Draw:
    sides = [s.rng.randint(1, 40) for _ in range(s.rng.randint(3, 6))]
    text = s.say(
        ["compute the perimeter of a polygon with sides {x}"],
        ["add up the perimeter of a shape whose sides measure {x}"],
        x=listing(sides),
    )
    return Draw({"side_lengths": [float(x) for x in sides]}, text)


_MEAT = {"chicken", "salmon", "beef", "cod", "shrimp", "duck"}


def _recipes(s: Side) -> Draw:
    items = s.sample("ingredient", s.rng.randint(1, 3))
    args: dict[str, Any] = {"ingredients": items}
    t = ""
    if s.chance(0.5):
        args["max_minutes"] = s.rng.randrange(15, 95, 5)
        t = s.words(" that take at most {m} minutes", " ready within {m} minutes").format(m=args["max_minutes"])
    if s.chance(0.3) and not set(items) & _MEAT:
        args["vegetarian"] = True
        t += s.words(", vegetarian only", ", and make them vegetarian")
    text = s.say(["find recipes using {x}{t}"], ["suggest dishes I can cook with {x}{t}"], x=listing(items), t=t)
    return Draw(args, text, {"ingredients": orders(items)})


def _flights(s: Side) -> Draw:
    origin, dest = s.sample("city", 2)
    iso, words = s.date()
    args: dict[str, Any] = {"origin": origin, "destination": dest, "date": iso}
    extra = ""
    if s.chance(0.4):
        args["cabin"] = s.rng.choice(["premium", "business", "first"])
        extra += f" in {args['cabin']} class"
    if s.chance(0.4):
        args["passengers"] = s.rng.randint(2, 5)
        extra += s.words(" for {n} passengers", " for {n} people").format(n=args["passengers"])
    text = s.say(
        ["search flights from {o} to {d} on {w}{x}"],
        ["find me a way to fly {o} to {d} departing {w}{x}"],
        o=origin,
        d=dest,
        w=words,
        x=extra,
    )
    return Draw(args, text)


def _stock_name(s: Side, symbol: str, company: str) -> str:
    return f"{company} ({symbol})" if company != symbol and s.chance(0.5) else symbol


def _stock_price(s: Side) -> Draw:
    symbol, company, exchange = s.pick("stock")
    args: dict[str, Any] = {"symbol": symbol}
    alternatives: dict[str, list[Any]] = {}
    if s.chance(0.5):
        args["exchange"] = exchange
        ex = f" on the {exchange}"
    else:  # unstated: the default, the true listing, or leaving it out are all right
        ex, alternatives["exchange"] = "", [exchange]
    text = s.say(
        ["get the latest price of {x}{e}"],
        ["look up what {x} shares trade at now{e}"],
        x=_stock_name(s, symbol, company),
        e=ex,
    )
    return Draw(args, text, alternatives)


def _stock_history(s: Side) -> Draw:
    symbol, company, _ = s.pick("stock")
    days = s.rng.randint(5, 60)
    text = s.say(
        ["fetch the closing prices of {x} over the last {n} trading days"],
        ["pull {n} days of price history for {x}"],
        x=_stock_name(s, symbol, company),
        n=days,
    )
    return Draw({"symbol": symbol, "days": days}, text)


def _translate(s: Side) -> Draw:
    sentence, (language, code) = s.pick("sentence"), s.pick("language")
    args: dict[str, Any] = {"text": sentence, "target_language": language}
    # The texts are English, so naming the source language is right even when the request does not.
    alternatives: dict[str, list[Any]] = {"target_language": [code], "source_language": ["English", "en"]}
    extra = ""
    if s.chance(0.4):
        args["source_language"] = "English"
        extra += " from English"
    if s.chance(0.3):
        args["formal"] = True
        extra += s.words(" using the formal register", " in a formal tone")
    text = s.say(
        ['translate "{t}" into {lang}{x}'],
        ['render the sentence "{t}" in {lang}{x}'],
        t=sentence,
        lang=language,
        x=extra,
    )
    return Draw(args, text, alternatives)


def _calendar(s: Side) -> Draw:
    title = s.pick("event")
    iso, date_words = s.date()
    clock, clock_words = s.clock()
    args: dict[str, Any] = {"title": title, "date": iso, "start_time": clock}
    alternatives: dict[str, list[Any]] = {}
    extra = ""
    if s.chance(0.5):
        args["duration_minutes"] = s.rng.choice([30, 45, 90, 120])
        extra += f" for {args['duration_minutes']} minutes"
    if s.chance(0.4):
        emails = [f"{p.lower()}@example.com" for p in s.sample("person", s.rng.randint(1, 2))]
        args["attendees"], alternatives["attendees"] = emails, orders(emails)
        extra += s.words(" and invite {x}", ", inviting {x}").format(x=listing(emails))
    text = s.say(
        ["schedule a {t} on {d} at {c}{x}"],
        ["put a {t} in my calendar for {d}, starting {c}{x}"],
        t=title,
        d=date_words,
        c=clock_words,
        x=extra,
    )
    return Draw(args, text, alternatives)


def _factorial(s: Side) -> Draw:
    n = s.rng.randint(3, 12) if s.split == "train" else s.rng.randint(13, 25)
    return Draw({"n": n}, s.say(["compute the factorial of {n}"], ["tell me what {n} factorial equals"], n=n))


def _quadratic(s: Side) -> Draw:
    a, b, c = s.rng.randint(1, 9), s.rng.randint(-12, 12), s.rng.randint(-20, 20)
    expr = f"{a}x^2 {'-' if b < 0 else '+'} {abs(b)}x {'-' if c < 0 else '+'} {abs(c)} = 0"
    text = s.say(
        ["solve {e} for x"], ["find the real roots of the quadratic with a={a}, b={b} and c={c}"], e=expr, a=a, b=b, c=c
    )
    return Draw({"a": float(a), "b": float(b), "c": float(c)}, text)


def _gcd(s: Side) -> Draw:
    base = s.rng.randint(2, 15)
    nums = [base * s.rng.randint(2, 30) for _ in range(s.rng.randint(2, 3))]
    text = s.say(
        ["find the greatest common divisor of {x}"],
        ["tell me the largest number that divides all of {x}"],
        x=listing(nums),
    )
    return Draw({"numbers": nums}, text, {"numbers": orders(nums)})


def _hotel(s: Side) -> Draw:
    city, (iso, words), nights = s.pick("city"), s.date(), s.rng.randint(1, 14)
    args: dict[str, Any] = {"city": city, "check_in": iso, "nights": nights}
    extra = ""
    if s.chance(0.3):
        args["rooms"] = s.rng.randint(2, 4)
        extra += f" with {args['rooms']} rooms"
    if s.chance(0.3):
        args["breakfast"] = True
        extra += s.words(" including breakfast", ", breakfast included")
    text = s.say(
        ["book a hotel in {c} from {w} for {n} nights{x}"],
        ["reserve a stay in {c}, arriving {w}, {n} nights{x}"],
        c=city,
        w=words,
        n=nights,
        x=extra,
    )
    return Draw(args, text)


_PRICES = {"cheap": "cheap ", "moderate": "mid-priced ", "expensive": "upscale "}


def _restaurants(s: Side) -> Draw:
    city, cuisine = s.pick("city"), s.pick("cuisine")
    args: dict[str, Any] = {"city": city, "cuisine": cuisine}
    price = s.rng.choice([*_PRICES, None])
    if price:
        args["price"] = price
    opened = s.chance(0.3)
    if opened:
        args["open_now"] = True
    o = s.words(" that are open now", " open at this moment") if opened else ""
    text = s.say(
        ["find {p}{k} restaurants in {c}{o}"],
        ["look for places serving {p}{k} food in {c}{o}"],
        p=_PRICES.get(price or "", ""),
        k=cuisine,
        c=city,
        o=o,
    )
    return Draw(args, text)


def _showtimes(s: Side) -> Draw:
    movie, city, (iso, words) = s.pick("movie"), s.pick("city"), s.date()
    text = s.say(
        ['list showtimes for "{m}" in {c} on {w}'], ['check when "{m}" plays in {c} on {w}'], m=movie, c=city, w=words
    )
    return Draw({"movie": movie, "city": city, "date": iso}, text)


def _standing(s: Side) -> Draw:
    (team, league), season = s.pick("team"), s.rng.randint(2012, 2025)
    text = s.say(
        ["get the {y} league position of {t} in the {g}"],
        ["check where {t} finished in the {g} in the {y} season"],
        y=season,
        t=team,
        g=league,
    )
    return Draw({"team": team, "league": league, "season": season}, text)


def _calories(s: Side) -> Draw:
    food, grams = s.pick("food"), s.rng.randrange(50, 450, 10)
    text = s.say(
        ["count the calories in {g} grams of {f}"], ["estimate how many calories {g} g of {f} has"], g=grams, f=food
    )
    return Draw({"food": food, "grams": float(grams)}, text)


def _timezone(s: Side) -> Draw:
    (clock, words), (src, dst) = s.clock(), s.sample("timezone", 2)
    text = s.say(
        ["convert {t} in {a} to {b} time"],
        ["tell me what time it is in {b} when it is {t} in {a}"],
        t=words,
        a=src,
        b=dst,
    )
    return Draw({"time": clock, "from_timezone": src, "to_timezone": dst}, text)


def _loan(s: Side) -> Draw:
    principal, rate, years = s.rng.randrange(5000, 500000, 1000), s.rng.randrange(10, 40) / 4, s.rng.randint(5, 30)
    text = s.say(
        ["calculate the monthly payment on a {p} loan at {r}% over {y} years"],
        ["work out monthly installments for borrowing {p} at {r} percent for {y} years"],
        p=principal,
        r=rate,
        y=years,
    )
    return Draw({"principal": float(principal), "annual_rate_percent": rate, "years": years}, text)


_CARRIERS = {"dhl": "DHL", "ups": "UPS", "fedex": "FedEx", "usps": "USPS"}


def _track(s: Side) -> Draw:
    carrier = s.rng.choice(sorted(_CARRIERS))
    number = "".join(s.rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789") for _ in range(s.rng.randint(10, 14)))
    text = s.say(["track my {c} package {n}"], ["find where my parcel {n} is with {c}"], c=_CARRIERS[carrier], n=number)
    return Draw({"tracking_number": number, "carrier": carrier}, text)


def _song(s: Side) -> Draw:
    title, artist = s.pick("song")
    args: dict[str, Any] = {"title": title}
    extra = ""
    if s.chance(0.5):
        args["artist"] = artist
        extra += f" by {artist}"
    if s.chance(0.3):
        args["shuffle"] = True
        extra += s.words(" and then shuffle", ", shuffling afterwards")
    return Draw(args, s.say(['play "{t}"{x}'], ['put on the song "{t}"{x}'], t=title, x=extra))


def _email(s: Side) -> Draw:
    to = [f"{p.lower()}@example.com" for p in s.sample("person", s.rng.randint(1, 2))]
    subject, body = s.pick("email_topic")
    text = s.say(
        ['email {to} with the subject "{s}" saying "{b}"'],
        ['send a message to {to}, subject "{s}", body "{b}"'],
        to=listing(to),
        s=subject,
        b=body,
    )
    return Draw({"to": to, "subject": subject, "body": body}, text, {"to": orders(to)})


RECIPES: dict[str, Recipe] = {
    r.tool.name: r
    for r in [
        Recipe(T.get_current_weather, "weather", "weather", _weather_now),
        Recipe(T.get_weather_forecast, "weather", "weather", _forecast),
        Recipe(T.convert_currency, "currency", "currency", _currency),
        Recipe(T.convert_length, "units", "units", _length),
        Recipe(T.convert_temperature, "units", "units", _temperature),
        Recipe(T.circle_area, "geometry", "math", _circle),
        Recipe(T.triangle_area, "geometry", "math", _triangle),
        Recipe(T.polygon_perimeter, "geometry", "math", _perimeter),
        Recipe(T.find_recipes, "recipes", "food", _recipes),
        Recipe(T.search_flights, "flights", "flights", _flights),
        Recipe(T.get_stock_price, "stocks", "stocks", _stock_price),
        Recipe(T.get_stock_history, "stocks", "stocks", _stock_history),
        Recipe(T.translate_text, "translation", "translation", _translate),
        Recipe(T.create_calendar_event, "calendar", "calendar", _calendar),
        Recipe(T.factorial, "maths", "math", _factorial),
        Recipe(T.solve_quadratic, "maths", "math", _quadratic),
        Recipe(T.greatest_common_divisor, "maths", "math", _gcd),
        Recipe(T.book_hotel, "hotels", "hotels", _hotel),
        Recipe(T.find_restaurants, "restaurants", "food", _restaurants),
        Recipe(T.get_movie_showtimes, "movies", "movies", _showtimes),
        Recipe(T.get_team_standing, "sports", "sports", _standing),
        Recipe(T.count_calories, "nutrition", "food", _calories),
        Recipe(T.convert_time_zone, "timezones", "time", _timezone),
        Recipe(T.monthly_loan_payment, "finance", "math", _loan),
        Recipe(T.track_package, "shipping", "shipping", _track),
        Recipe(T.play_song, "music", "music", _song),
        Recipe(T.send_email, "email", "email", _email),
    ]
}
