"""What people really say to a home assistant: sentences with their intent and slots.

Each intent has many templates; a template is rendered by filling its ``{placeholders}`` with
values spoken in the varied ways people say them ("25%", "twenty five percent"; "90 minutes", "an
hour and a half"), then wrapped in fillers and politeness ("um", "could you", "please"). The written
sentence keeps digits and punctuation; ``text`` is its spoken form from :func:`to_spoken`, which is
what the recognizer learns to write and the NLU learns to read.

Slot values are normalised:

- numbers are numbers (``brightness`` 25, ``volume`` 40, ``duration_s`` 5400, ``temperature`` 21.5);
- ``time`` is ``"HH:MM"`` (24-hour when a m / p m is said, else the hour as said);
- names from the user's configuration are written canonical (``contact`` "Siobhan Kelly" or just
  "Siobhan" when only the first name is said, ``name`` "kitchen light", ``area`` "living room");
- ``word`` (SpellWord, DefineWord) is the written word;
- other free text (``message``, ``query``, ``item``, ``location``, ``day``, ``topic``) is the spoken
  form, exactly the words in ``text``.

>>> from models.corpus.names import train_names
>>> sentences = generate_sentences(seed=1, count=3, names=train_names())
>>> all(s.text == to_spoken(s.written) for s in sentences)
True
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from assistant.textnorm import number_to_words, to_spoken
from models.corpus.names import RELATIONS, NameSet, device_kind
from models.corpus.wake_phrases import confusable_phrases, generate_negative_sentences

__all__ = [
    "INTENTS",
    "Sentence",
    "confusable_phrases",
    "generate_negative_sentences",
    "generate_sentences",
    "sentence_from_dict",
    "sentence_to_dict",
]

SlotValue = str | int | float


@dataclass(frozen=True)
class Sentence:
    """One utterance: spoken ``text`` (what the recognizer should output), the ``written`` form it came
    from, and its meaning."""

    text: str
    written: str
    intent: str
    slots: dict[str, SlotValue]
    domain: str


def sentence_to_dict(sentence: Sentence) -> dict[str, Any]:
    """The JSONL manifest record of a sentence."""
    return {
        "text": sentence.text,
        "written": sentence.written,
        "intent": sentence.intent,
        "slots": dict(sentence.slots),
        "domain": sentence.domain,
    }


def sentence_from_dict(record: Mapping[str, Any]) -> Sentence:
    """Inverse of :func:`sentence_to_dict`; raises ``KeyError``/``TypeError`` on a malformed record."""
    slots = record["slots"]
    if not isinstance(slots, dict) or not all(isinstance(v, str | int | float) for v in slots.values()):
        raise TypeError(f"slots must be a mapping of str/int/float, got {slots!r}")
    return Sentence(
        text=str(record["text"]),
        written=str(record["written"]),
        intent=str(record["intent"]),
        slots=dict(slots),
        domain=str(record["domain"]),
    )


# ---------------------------------------------------------------------------------------------------
# Vocabularies for free-text slots (written form).


def _entries(block: str) -> tuple[str, ...]:
    return tuple(
        dict.fromkeys(e.strip() for line in block.splitlines() for e in line.split(",") if e.strip())
    )


GENRES = _entries("""
jazz, classical music, rock, hip hop, country, reggae, blues, lo-fi, lofi beats, soul, funk, metal, punk
indie rock, k-pop, afrobeats, salsa, bossa nova, techno, house music, ambient music, folk music, gospel
disco, R&B, 80s music, 90s hits, Christmas music, opera, piano music, acoustic covers, bluegrass, reggaeton
""")
ARTISTS = _entries("""
Taylor Swift, The Beatles, Beyonce, Ed Sheeran, Adele, Drake, Queen, Fleetwood Mac, Miles Davis
Bob Marley, Billie Eilish, Coldplay, Kendrick Lamar, Dolly Parton, Bad Bunny, Burna Boy, Wizkid
BTS, Blackpink, Shakira, Elton John, Stevie Wonder, Aretha Franklin, Nina Simone, Radiohead
Arctic Monkeys, Dua Lipa, Harry Styles, The Rolling Stones, Led Zeppelin, Pink Floyd, Bruce Springsteen
Johnny Cash, Willie Nelson, Kacey Musgraves, Rosalia, Karol G, J Balvin, AR Rahman, Arijit Singh
Lata Mangeshkar, Fela Kuti, Angelique Kidjo, Ella Fitzgerald, Louis Armstrong, John Coltrane
Frank Sinatra, Norah Jones, Mozart, Beethoven, Bach, Chopin, Vivaldi, Debussy, Hozier, The Cranberries
U2, Enya, The Pogues, Lorde, Sia, Rihanna, Bruno Mars, Lady Gaga, Prince, Michael Jackson, Whitney Houston
Olivia Rodrigo, SZA, Post Malone, The Weeknd, Tame Impala, Daft Punk, ABBA, Sigur Ros, Bjork
""")
SONGS = _entries("""
Bohemian Rhapsody, Hey Jude, Shake It Off, Bad Guy, Hotel California, Dancing Queen, Imagine
Billie Jean, Let It Be, Wonderwall, Rolling in the Deep, Despacito, Blinding Lights, Uptown Funk
Take On Me, Africa, Purple Rain, Sweet Caroline, Respect, Halo, Yellow, Clair de Lune, Fur Elise
Here Comes the Sun, Three Little Birds, Lose Yourself, Jolene, Smells Like Teen Spirit, Dreams
September, Zombie, Someone Like You, Levitating, Flowers, Bad Romance, Thriller, Hallelujah
What a Wonderful World, Fly Me to the Moon, Take Five, So What, Redemption Song, Stayin' Alive
""")
PLAYLISTS = _entries("""
workout, chill, dinner party, road trip, focus, sleep, morning, running, study, party, rainy day
feel good, throwback, summer, cooking, relaxing, discover weekly, liked songs, favorites, kids
""")
STATIONS = _entries("""
BBC Radio 1, BBC Radio 4, NPR, KEXP, Radio Paradise, Classic FM, Jazz FM, RTE Radio 1, Capital FM
""")
PODCASTS = _entries("""
the Daily, This American Life, Radiolab, Serial, Freakonomics, the news podcast, my latest podcast
""")
CITIES = _entries("""
London, Paris, New York, Tokyo, Lagos, Mumbai, Sao Paulo, Ho Chi Minh City, Dublin, Krakow, Cairo
Sydney, Toronto, Chicago, Los Angeles, San Francisco, Seattle, Boston, Berlin, Madrid, Barcelona, Rome
Mexico City, Buenos Aires, Nairobi, Cape Town, Accra, Delhi, Bangalore, Beijing, Shanghai, Seoul
Hanoi, Bangkok, Singapore, Manila, Jakarta, Istanbul, Dubai, Tehran, Moscow, Warsaw, Stockholm
Oslo, Helsinki, Amsterdam, Brussels, Vienna, Prague, Budapest, Athens, Lisbon, Edinburgh, Glasgow
Cardiff, Belfast, Cork, Galway, Austin, Denver, Miami, Atlanta, Phoenix, Portland, Vancouver, Montreal
Auckland, Wellington, Honolulu, Anchorage, Lima, Bogota, Santiago, Havana, Kingston, Addis Ababa
""")
DAYS = _entries("""
today, tomorrow, tonight, this afternoon, this evening, this weekend, Monday, Tuesday, Wednesday, Thursday
Friday, Saturday, Sunday, next week, on Monday, on Friday, on Saturday, on Sunday, the day after tomorrow
""")
SHOPPING_ITEMS = _entries("""
milk, eggs, bread, butter, cheese, apples, bananas, oranges, lemons, avocados, tomatoes, onions, garlic
potatoes, carrots, spinach, lettuce, rice, pasta, flour, sugar, salt, olive oil, coffee, tea, orange juice
yogurt, cereal, oat milk, almond milk, chicken breasts, ground beef, salmon, tofu, bacon, sausages, ham
toilet paper, paper towels, dish soap, laundry detergent, shampoo, toothpaste, deodorant, trash bags
AA batteries, light bulbs, cat food, dog food, cat litter, baby wipes, diapers, aluminum foil, cling film
ice cream, frozen peas, pizza, crisps, chips, crackers, hummus, peanut butter, jam, honey, maple syrup
soy sauce, ketchup, mustard, mayonnaise, tortillas, bagels, croissants, muffins, chocolate, biscuits
sparkling water, beer, a bottle of wine, 2 liters of milk, a dozen eggs, 6 bagels, 2 pounds of apples
a loaf of bread, a bag of rice, a pack of gum, some basil, fresh ginger, chili peppers, coconut milk
kimchi, naan bread, lentils, chickpeas, black beans, feta, mozzarella, parmesan, mangoes, blueberries
strawberries, grapes, watermelon, cucumbers, bell peppers, mushrooms, zucchini, broccoli, cauliflower
""")
TASKS = _entries("""
call the plumber, pay the electricity bill, book a dentist appointment, renew my passport
return the library books, pick up the dry cleaning, water the plants, take out the recycling
clean the gutters, send the invoice, email my landlord, buy a birthday present for Mom
fix the leaky tap, mow the lawn, schedule the car service, cancel the gym membership
back up my laptop, change the air filter, order more printer ink, file my taxes, walk the dog
feed the cat, charge the camera, pack for the trip, reply to the school, book flights for August
clean the fridge, wash the car, check the tire pressure, call the bank, pick up the kids at 3
practice piano, finish the report, update my resume, sign the permission slip, defrost the freezer
take my vitamins, take the chicken out of the freezer, check the oven, move the laundry to the dryer
""")
REMINDER_TASKS = TASKS + _entries("""
take my medicine, call Mom, turn off the oven, leave for the airport, take the bins out
check on the bread, put the washing out, lock the back door, start dinner, join the meeting
""")
MESSAGES = _entries("""
I'm running late, I'm on my way, I'll be home in 20 minutes, see you at 7, can you pick up some milk
dinner is ready, call me when you get this, happy birthday, thanks for today, I miss you, good night
love you, running 10 minutes late, I'm outside, where are you, can you call me back, the kids are asleep
don't forget the keys, I'll be there at 6:30, meeting ran over, traffic is terrible, leaving now
I got the tickets, let's get pizza tonight, I'm at the store do you need anything, the package arrived
sorry I missed your call, are we still on for tomorrow, congratulations, I'll call you later
just landed, be there in 5, can you feed the cat, don't wait up, the train is delayed by 15 minutes
""")
NEWS_TOPICS = _entries("""
sports, business, technology, politics, science, entertainment, local, world, health, football
financial, tech, weather, election, climate, cricket, basketball
""")
SPELL_WORDS = _entries("""
necessary, rhythm, conscientious, bureaucracy, definitely, separate, accommodate, embarrass
millennium, occasionally, pharaoh, questionnaire, restaurant, silhouette, tomorrow, Wednesday
February, library, mischievous, pronunciation, receive, supersede, threshold, vacuum, weird
entrepreneur, hors d'oeuvre, liaison, maneuver, minuscule, onomatopoeia, playwright, rhinoceros
acquaintance, broccoli, cemetery, colleague, committee, daiquiri, ecstasy, fluorescent, gauge
handkerchief, hygiene, indict, knowledge, lieutenant, mnemonic, noticeable, occurrence
parallel, privilege, pseudonym, psychology, queue, recommend, schedule, sovereign, surveillance
""")
DEFINE_WORDS = _entries("""
ubiquitous, serendipity, ephemeral, petrichor, quixotic, sonder, laconic, obfuscate, pernicious
gregarious, esoteric, mellifluous, ineffable, sanguine, cacophony, limerence, halcyon, nefarious
ambivalent, pragmatic, melancholy, zeitgeist, schadenfreude, hygge, ennui, juxtaposition, paradigm
benevolent, capricious, diligent, eloquent, frugal, hubris, idiosyncrasy, lethargic, meticulous
nostalgia, ostentatious, plethora, resilient, superfluous, tenacious, vicarious, whimsical, wanderlust
""")
QUESTIONS = _entries("""
how tall is Mount Everest, who wrote Pride and Prejudice, what's the capital of Australia
how far away is the moon, how many days until Christmas, how many ounces are in a pound
what's the population of Nigeria, who painted the Mona Lisa, why is the sky blue
when was the Eiffel Tower built, who invented the telephone, how many calories are in a banana
what's 15 times 12, what's the square root of 144, how many teaspoons in a tablespoon
convert 5 miles to kilometers, how long do you boil an egg, what's the speed of light
who won the World Cup in 2018, how old is the universe, what's the tallest building in the world
how deep is the ocean, what's the biggest animal on earth, how many bones are in the human body
who was the first person on the moon, what's the longest river in Africa, how do airplanes fly
what time does the sun set today, when is the next full moon, how many people live in Tokyo
what's 20% of 80, how many cups are in a liter, what's the boiling point of water in Fahrenheit
who directed Jaws, what language do they speak in Brazil, how many players are on a soccer team
what's the distance between London and Paris, how do you say thank you in Japanese
what's the difference between a frog and a toad, how many continents are there, who discovered penicillin
""")
TIMER_NAMES = _entries("""
pasta, egg, pizza, laundry, tea, oven, cookie, nap, workout, rice, bread, homework, meditation
parking, steak, potato, roast, cake, plank, break
""")

_DAYS_WITH_TIME = tuple(d for d in DAYS if d not in ("tonight", "this afternoon", "this evening"))


# ---------------------------------------------------------------------------------------------------
# How values are said.


def _plural(n: int | float, singular: str, plural: str | None = None) -> str:
    return singular if n == 1 else (plural or singular + "s")


def _number_written(n: int, rng: random.Random) -> str:
    """Digits or words, as a person might write what they said."""
    return str(n) if rng.random() < 0.55 else number_to_words(n)


def duration_phrases(seconds: int) -> list[str]:
    """Ways to say a duration, written (all parse back to ``seconds`` with ``parse_duration_s``).

    >>> duration_phrases(5400)[:3]
    ['an hour and a half', 'one and a half hours', '1.5 hours']
    """
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    out: list[str] = []
    if seconds < 60:
        out += [
            f"{seconds} {_plural(seconds, 'second')}",
            f"{number_to_words(seconds)} {_plural(seconds, 'second')}",
        ]
        out += [f"{seconds} secs"] if seconds > 1 else []
        if seconds == 30:
            out += ["half a minute"]
        return out
    if hours == 0 and secs == 0:
        out += [
            f"{minutes} {_plural(minutes, 'minute')}",
            f"{number_to_words(minutes)} {_plural(minutes, 'minute')}",
        ]
        out += [f"{minutes} min" if minutes == 1 else f"{minutes} mins"]
        out += {
            1: ["a minute", "one minute"],
            15: ["a quarter of an hour", "quarter of an hour"],
            30: ["half an hour", "30 minutes"],
            45: ["three quarters of an hour"],
        }.get(minutes, [])
        return out
    if hours == 0:
        if secs == 30 and minutes < 10:
            if minutes == 1:
                out += ["a minute and a half", "a minute and thirty seconds", "90 seconds", "ninety seconds"]
            out += [f"{minutes} and a half minutes", f"{number_to_words(minutes)} and a half minutes"]
        out += [
            f"{minutes} {_plural(minutes, 'minute')} and {secs} {_plural(secs, 'second')}",
            f"{number_to_words(minutes)} {_plural(minutes, 'minute')} {number_to_words(secs)} "
            f"{_plural(secs, 'second')}",
        ]
        return out
    hour_said = ["an hour", "one hour", "1 hour", "1 hr"] if hours == 1 else [
        f"{hours} hours", f"{number_to_words(hours)} hours", f"{hours} hrs"]  # fmt: skip
    if secs:
        return [f"{h} {minutes} {_plural(minutes, 'minute')} and {secs} seconds" for h in hour_said[:2]]
    if minutes == 0:
        return hour_said
    if minutes == 30:
        out += [
            f"{hour_said[0]} and a half",
            f"{number_to_words(hours)} and a half hours",
            f"{hours}.5 hours",
        ]
        out += [f"{hours} and a half hours", f"{hour_said[1]} and thirty minutes", f"{hours}h30"]
    elif minutes == 15:
        out += [f"{hour_said[0]} and a quarter", f"{hour_said[0]} and fifteen minutes"]
    out += [f"{h} and {minutes} {_plural(minutes, 'minute')}" for h in hour_said[:3]]
    out += [f"{hour_said[2]} {minutes} {_plural(minutes, 'minute')}"]
    if hours * 60 + minutes <= 120:
        out += [f"{hours * 60 + minutes} minutes", f"{number_to_words(hours * 60 + minutes)} minutes"]
    return out


def _duration_adjective(seconds: int) -> list[str]:
    """ "a 10-minute timer": single-unit durations only."""
    if seconds < 60:
        return [f"{seconds}-second", f"{number_to_words(seconds)} second"]
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return [f"{hours}-hour", f"{number_to_words(hours)} hour"]
    if seconds == 1800:
        return ["half-hour", "30-minute"]
    if seconds % 60 == 0:
        minutes = seconds // 60
        return [f"{minutes}-minute", f"{number_to_words(minutes)} minute", f"{minutes} minute"]
    return []


_COMMON_DURATIONS = (
    30, 45, 60, 90, 120, 180, 240, 300, 360, 420, 480, 600, 720, 900, 1200, 1500, 1800, 2400, 2700, 3600,
    5400, 7200, 9000, 10800, 150, 210, 20, 10, 15, 40, 4500, 1080, 1320, 3900,
)  # fmt: skip


def _article_for(spoken: str) -> str:
    first = spoken.split()[0] if spoken else ""
    vowel = (first[:1] in ("a", "e", "i", "o") and first != "one") or first in ("hour", "hours", "honest")
    return "an" if vowel else "a"


def _time_phrases(hour: int, minute: int, rng: random.Random) -> tuple[str, str]:
    """(written time, canonical "HH:MM") for ``hour`` 1..12 and ``minute``; am/pm said or not."""
    ampm = rng.choice(["am", "pm", None, None])
    if ampm is None and rng.random() < 0.15:  # the 24-hour clock
        hour24 = hour % 12 + 12
        return f"{hour24}:{minute:02d}", f"{hour24:02d}:{minute:02d}"
    canonical = hour % 12 + (12 if ampm == "pm" else 0) if ampm else hour
    if ampm == "am":
        suffix = rng.choice([" am", " a.m.", "am", " AM", " in the morning" if hour != 12 else " am"])
    elif ampm == "pm":
        part = " in the evening" if 5 <= hour <= 11 else " in the afternoon"
        suffix = rng.choice([" pm", " p.m.", "pm", " PM", part])
    else:
        suffix = ""
    spaced = " " + suffix.lstrip() if suffix else ""  # "7pm" is written, "sevenpm" is not
    said = number_to_words(hour)
    forms: list[str] = []
    if minute == 0:
        forms += [f"{hour}{suffix}", f"{said}{spaced}"]
        if ampm is None:
            forms += [f"{hour} o'clock", f"{said} o'clock", f"{hour}:00"]
    else:
        minute_words = ("oh " + number_to_words(minute)) if minute < 10 else number_to_words(minute)
        forms += [f"{hour}:{minute:02d}{suffix}", f"{said} {minute_words}{spaced}"]
        if minute == 30:
            forms += [f"half past {said}{spaced}", f"half past {hour}{spaced}"]
        elif minute == 15:
            forms += [f"quarter past {said}{spaced}", f"a quarter past {said}{spaced}"]
        elif minute == 45:
            forms += [f"quarter to {number_to_words(hour % 12 + 1)}{spaced}"]
        elif minute % 5 == 0 and minute < 30:
            forms += [f"{number_to_words(minute)} past {said}{spaced}"]
    return rng.choice(forms), f"{canonical:02d}:{minute:02d}"


# ---------------------------------------------------------------------------------------------------
# Intents and their templates.


@dataclass(frozen=True)
class IntentSpec:
    """An intent's templates. ``commands`` are imperatives (they take "could you", "please");
    ``phrases`` are questions and statements (they take only disfluencies). ``device_kinds`` weights
    the kinds of device that fill ``{name}``; ``domain`` is used when no device is named."""

    intent: str
    domain: str
    weight: float
    commands: tuple[str, ...] = ()
    phrases: tuple[str, ...] = ()
    device_kinds: Mapping[str, float] = field(default_factory=dict)

    @property
    def templates(self) -> tuple[str, ...]:
        return self.commands + self.phrases


_SWITCHABLE = {"light": 5.0, "switch": 1.0, "plug": 1.0, "fan": 1.0, "media": 1.0, "climate": 0.7}

INTENTS: tuple[IntentSpec, ...] = (
    IntentSpec(
        "HassTurnOn",
        "light",
        10.0,
        commands=(
            "turn on the {name}",
            "turn the {name} on",
            "switch on the {name}",
            "switch the {name} on",
            "{name} on",
            "put the {name} on",
            "power on the {name}",
            "turn on the {name} in the {area}",
            "turn on the {area} {name}",
            "turn on the lights in the {area}",
            "lights on in the {area}",
            "turn the {area} lights on",
            "{area} lights on",
            "switch on the {area} lights",
            "turn on all the lights in the {area}",
            "activate the {name}",
            "get the {name} on",
            "turn the {name} in the {area} on",
            "{name} on in the {area}",
            "fire up the {name}",
            "light up the {area}",
            "turn the lights on in the {area}",
        ),
        phrases=(
            "I want the {name} on",
            "it's too dark in the {area}",
            "can we have the {name} on",
            "the {name} needs to be on",
            "let's get the {name} going",
        ),
        device_kinds=_SWITCHABLE,
    ),
    IntentSpec(
        "HassTurnOff",
        "light",
        10.0,
        commands=(
            "turn off the {name}",
            "turn the {name} off",
            "switch off the {name}",
            "switch the {name} off",
            "{name} off",
            "shut off the {name}",
            "power off the {name}",
            "kill the {name}",
            "turn off the {name} in the {area}",
            "turn off the {area} {name}",
            "turn off the lights in the {area}",
            "lights off in the {area}",
            "turn the {area} lights off",
            "{area} lights off",
            "turn off all the lights in the {area}",
            "shut the {name} off",
            "cut the {name}",
            "turn the {name} in the {area} off",
            "deactivate the {name}",
            "switch off the {area} lights",
            "turn the lights off in the {area}",
            "shut down the {name}",
        ),
        phrases=(
            "I don't need the {name} anymore",
            "nobody's in the {area}, lights off",
            "the {name} can go off now",
            "we're done with the {name}",
        ),
        device_kinds=_SWITCHABLE,
    ),
    IntentSpec(
        "HassLightSet",
        "light",
        6.0,
        commands=(
            "set the {name} to {brightness}",
            "dim the {name} to {brightness}",
            "brighten the {name} to {brightness}",
            "turn the {name} up to {brightness}",
            "turn the {name} down to {brightness}",
            "{name} brightness {brightness}",
            "set the {area} lights to {brightness}",
            "dim the lights in the {area} to {brightness}",
            "make the {name} {brightness}",
            "change the brightness of the {name} to {brightness}",
            "set the brightness in the {area} to {brightness}",
            "put the {name} at {brightness}",
            "{area} lights to {brightness}",
            "set {name} brightness to {brightness}",
            "bring the {name} down to {brightness}",
            "set the {name} in the {area} to {brightness}",
            "lower the {area} lights to {brightness}",
            "turn the brightness of the {name} to {brightness}",
        ),
        phrases=("I'd like the {name} at {brightness}", "can the {area} lights be at {brightness}"),
        device_kinds={"light": 1.0},
    ),
    IntentSpec(
        "HassFanSetSpeed",
        "fan",
        1.5,
        commands=(
            "set the {name} to {percentage}",
            "set the {name} speed to {percentage}",
            "{name} speed {percentage}",
            "turn the {name} down to {percentage}",
            "turn the {name} up to {percentage}",
            "put the {name} on {percentage}",
            "change the {name} speed to {percentage}",
            "run the {name} at {percentage}",
        ),
        device_kinds={"fan": 1.0},
    ),
    IntentSpec(
        "HassClimateSetTemperature",
        "climate",
        6.0,
        commands=(
            "set the temperature to {temperature}",
            "set the thermostat to {temperature}",
            "make it {temperature} in here",
            "change the heat to {temperature}",
            "set the {area} to {temperature}",
            "turn the heat up to {temperature}",
            "turn the heating down to {temperature}",
            "put the thermostat on {temperature}",
            "set the {area} temperature to {temperature}",
            "warm the {area} up to {temperature}",
            "cool the house down to {temperature}",
            "thermostat {temperature}",
            "heat the {area} to {temperature}",
            "set the heating to {temperature}",
            "bump the temperature up to {temperature}",
            "drop the temperature to {temperature}",
            "change the thermostat to {temperature} in the {area}",
            "set the AC to {temperature}",
        ),
        phrases=(
            "I want it {temperature} in the {area}",
            "can you make the {area} {temperature}",
            "it's cold, set it to {temperature}",
            "it's too hot, {temperature} please",
        ),
    ),
    IntentSpec(
        "HassClimateGetTemperature",
        "climate",
        1.5,
        phrases=(
            "what's the temperature in the {area}",
            "how warm is it in here",
            "what's the thermostat set to",
            "how cold is it in the {area}",
            "what temperature is it inside",
            "how hot is it in the {area}",
            "what's the temperature in here",
            "what is the thermostat at",
        ),
    ),
    IntentSpec(
        "HassStartTimer",
        "timer",
        8.0,
        commands=(
            "set a timer for {duration}",
            "timer for {duration}",
            "start {a_duration_adj} timer",
            "set a {timer} timer for {duration}",
            "{duration} timer",
            "set {a_duration_adj} timer",
            "start a timer for {duration}",
            "count down {duration}",
            "set the {timer} timer for {duration}",
            "put a timer on for {duration}",
            "set timer {duration}",
            "{timer} timer {duration}",
            "time my {timer} for {duration}",
            "start {a_duration_adj} {timer} timer",
            "set a timer for {duration} for the {timer}",
            "start the clock for {duration}",
            "give me {a_duration_adj} timer",
            "set a countdown for {duration}",
            "timer {duration}",
            "make a timer for {duration}",
        ),
        phrases=(
            "I need a timer for {duration}",
            "let me know when {duration} is up",
            "tell me when {duration} have passed",
            "{timer} timer, {duration}",
        ),
    ),
    IntentSpec(
        "HassCancelTimer",
        "timer",
        2.0,
        commands=(
            "cancel the timer",
            "stop the timer",
            "cancel my timer",
            "turn off the timer",
            "delete the timer",
            "kill the timer",
            "cancel all timers",
            "timer off",
            "stop all the timers",
            "clear the timer",
            "cancel that timer",
            "get rid of the timer",
        ),
        phrases=("never mind the timer", "I don't need the timer anymore"),
    ),
    IntentSpec(
        "HassTimerStatus",
        "timer",
        1.5,
        phrases=(
            "how much time is left",
            "how long is left on the timer",
            "how's my timer doing",
            "how much time is left on the timer",
            "when will the timer go off",
            "how long until the timer ends",
            "time left on the timer",
            "how many minutes are left",
        ),
    ),
    IntentSpec(
        "SetAlarm",
        "alarm",
        4.0,
        commands=(
            "set an alarm for {time}",
            "wake me up at {time}",
            "alarm for {time}",
            "set an alarm for {time} {day}",
            "wake me up {day} at {time}",
            "set my alarm for {time}",
            "alarm {time} {day}",
            "wake me at {time}",
            "set an alarm at {time}",
            "create an alarm for {time}",
            "set the alarm for {time} {day}",
            "get me up at {time}",
        ),
        phrases=(
            "I need to get up at {time}",
            "I want to wake up at {time} {day}",
            "I have to be up at {time}",
            "can I get an alarm for {time}",
        ),
    ),
    IntentSpec(
        "CancelAlarm",
        "alarm",
        1.0,
        commands=(
            "cancel my alarm",
            "turn off the alarm",
            "delete my alarm",
            "cancel the alarm",
            "stop the alarm",
            "switch off my alarm",
            "remove the alarm",
            "cancel all my alarms",
            "alarm off",
        ),
        phrases=("I don't need an alarm tomorrow", "no alarm tomorrow"),
    ),
    IntentSpec(
        "SetReminder",
        "reminder",
        4.0,
        commands=(
            "remind me to {reminder} at {time}",
            "remind me in {duration} to {reminder}",
            "remind me {day} to {reminder}",
            "remind me to {reminder}",
            "remind me to {reminder} {day} at {time}",
            "set a reminder to {reminder}",
            "set a reminder for {time} to {reminder}",
            "remind me at {time} to {reminder}",
            "create a reminder to {reminder} {day}",
            "in {duration} remind me to {reminder}",
            "remind me to {reminder} in {duration}",
            "don't let me forget to {reminder}",
        ),
        phrases=("I need a reminder to {reminder} at {time}", "can you remind me to {reminder} {day}"),
    ),
    IntentSpec(
        "Call",
        "communication",
        6.0,
        commands=(
            "call {contact}",
            "phone {contact}",
            "ring {contact}",
            "give {contact} a call",
            "dial {contact}",
            "call {contact} on speaker",
            "video call {contact}",
            "get {contact} on the phone",
            "place a call to {contact}",
            "start a call with {contact}",
            "ring up {contact}",
            "call up {contact}",
            "facetime {contact}",
            "get me {contact}",
            "phone {contact} for me",
            "make a call to {contact}",
        ),
        phrases=(
            "I need to talk to {contact}",
            "I want to call {contact}",
            "can I call {contact}",
            "let's call {contact}",
        ),
    ),
    IntentSpec(
        "SendMessage",
        "communication",
        5.0,
        commands=(
            "send a message to {contact} saying {message}",
            "text {contact} {message}",
            "message {contact} that {message}",
            "tell {contact} {message}",
            "send {contact} a text saying {message}",
            "text {contact} and say {message}",
            "send a text to {contact} that says {message}",
            "message {contact} {message}",
            "shoot {contact} a message saying {message}",
            "send {contact} a message, {message}",
            "let {contact} know {message}",
            "text {contact}: {message}",
        ),
        phrases=("I want to text {contact} {message}", "can you let {contact} know that {message}"),
    ),
    IntentSpec(
        "PlayMusic",
        "music",
        8.0,
        commands=(
            "play {artist}",
            "play some {genre}",
            "play {song}",
            "play {song_by_artist}",
            "put on some {genre}",
            "play my {playlist} playlist",
            "play something by {artist}",
            "play the song {song}",
            "put on {artist}",
            "play {station}",
            "play the {playlist} playlist",
            "shuffle {artist}",
            "play music by {artist}",
            "start my {playlist} playlist",
            "play {podcast}",
            "play a bit of {genre}",
            "play the album by {artist}",
            "turn on {station}",
            "play songs by {artist}",
            "queue up {song}",
        ),
        phrases=(
            "I want to listen to {artist}",
            "I'm in the mood for some {genre}",
            "let's hear {song}",
            "can we have some {genre}",
            "how about some {artist}",
        ),
    ),
    IntentSpec(
        "HassMediaPause",
        "media",
        3.0,
        commands=(
            "pause",
            "pause the music",
            "pause it",
            "stop the music",
            "pause playback",
            "pause the song",
            "hit pause",
            "stop playing",
            "pause that",
            "pause the movie",
            "pause the show",
            "hold the music",
        ),
        phrases=("hold on, pause that", "wait, pause"),
    ),
    IntentSpec(
        "HassMediaUnpause",
        "media",
        2.5,
        commands=(
            "resume",
            "resume the music",
            "unpause",
            "keep playing",
            "continue playing",
            "carry on playing",
            "start the music again",
            "resume playback",
            "unpause the song",
            "press play",
            "resume the movie",
            "continue the song",
            "play it again from where it stopped",
        ),
        phrases=("okay, you can resume", "go on, keep playing"),
    ),
    IntentSpec(
        "HassMediaNext",
        "media",
        2.5,
        commands=(
            "next",
            "next song",
            "skip",
            "skip this song",
            "skip this one",
            "play the next track",
            "next track",
            "skip ahead",
            "go to the next song",
            "skip this track",
            "play the next song",
            "skip it",
        ),
        phrases=("I don't like this song, skip it", "next one", "not this song"),
    ),
    IntentSpec(
        "HassMediaPrevious",
        "media",
        1.5,
        commands=(
            "previous song",
            "go back",
            "play the last song again",
            "back one track",
            "previous track",
            "play the previous song",
            "go back a song",
            "play that song again",
            "rewind to the last track",
        ),
    ),
    IntentSpec(
        "HassSetVolume",
        "media",
        5.0,
        commands=(
            "set the volume to {volume}",
            "volume {volume}",
            "turn the volume to {volume}",
            "change the volume to {volume}",
            "put the volume at {volume}",
            "volume to {volume}",
            "make the volume {volume}",
            "turn it up to {volume}",
            "turn it down to {volume}",
            "set volume {volume}",
            "turn the volume up to {volume}",
            "turn the volume down to {volume}",
            "set the speaker to {volume}",
            "bring the volume to {volume}",
            "adjust the volume to {volume}",
            "lower the volume to {volume}",
        ),
        phrases=("can we have the volume at {volume}", "I want the volume at {volume}"),
    ),
    IntentSpec(
        "VolumeUp",
        "media",
        1.5,
        commands=(
            "turn it up",
            "louder",
            "volume up",
            "turn up the volume",
            "crank it up",
            "make it louder",
            "turn the music up",
            "pump up the volume",
            "raise the volume",
        ),
        phrases=("I can't hear it", "a bit louder", "little louder"),
    ),
    IntentSpec(
        "VolumeDown",
        "media",
        1.5,
        commands=(
            "turn it down",
            "quieter",
            "volume down",
            "lower the volume",
            "turn down the volume",
            "make it quieter",
            "turn the music down",
            "bring the volume down",
        ),
        phrases=("that's too loud", "a bit quieter", "it's way too loud"),
    ),
    IntentSpec(
        "HassGetWeather",
        "weather",
        6.0,
        phrases=(
            "what's the weather",
            "what's the weather like {day}",
            "what's the weather in {location}",
            "weather {day}",
            "is it going to rain {day}",
            "do I need an umbrella {day}",
            "what's the forecast for {day}",
            "how hot will it be {day}",
            "will it snow {day} in {location}",
            "what's it like outside",
            "how's the weather looking {day}",
            "is it sunny in {location}",
            "weather forecast for {location} {day}",
            "what's the weather going to be like in {location} {day}",
            "is it cold outside",
            "will it rain in {location} {day}",
            "how windy is it {day}",
            "what's the high {day}",
            "do I need a jacket {day}",
            "weather in {location}",
            "what's the temperature outside",
            "is it going to be warm {day}",
        ),
        commands=(
            "tell me the weather {day}",
            "give me the forecast for {location}",
            "check the weather {day}",
        ),
    ),
    IntentSpec(
        "HassGetCurrentTime",
        "time",
        4.0,
        phrases=(
            "what time is it",
            "what's the time",
            "do you know what time it is",
            "time please",
            "what time is it now",
            "have you got the time",
            "current time",
            "what's the time right now",
            "what time have we got",
            "is it late",
            "how late is it",
        ),
        commands=("tell me the time", "tell me what time it is", "give me the time"),
    ),
    IntentSpec(
        "GetDate",
        "time",
        2.0,
        phrases=(
            "what's the date",
            "what's today's date",
            "what day is it",
            "what day is it today",
            "what's the date today",
            "what month is it",
            "what year is it",
            "what's the date tomorrow",
            "what day of the week is it",
            "is today Monday",
        ),
        commands=("tell me the date", "tell me today's date"),
    ),
    IntentSpec(
        "HassShoppingListAddItem",
        "shopping",
        5.0,
        commands=(
            "add {item} to my shopping list",
            "put {item} on the shopping list",
            "add {item} to the grocery list",
            "put {item} on my list",
            "shopping list add {item}",
            "add {item} to the list",
            "add {item} to my shopping",
            "put {item} on the grocery list",
            "add {item}",
            "{item} on the shopping list",
            "stick {item} on the shopping list",
            "write down {item} on the shopping list",
        ),
        phrases=(
            "we need {item}",
            "I need to buy {item}",
            "we're out of {item}",
            "don't let me forget {item}",
            "we're running low on {item}",
        ),
    ),
    IntentSpec(
        "AddTodo",
        "todo",
        3.0,
        commands=(
            "add {todo} to my to-do list",
            "put {todo} on my to do list",
            "add a task to {todo}",
            "new to-do: {todo}",
            "add {todo} to my tasks",
            "create a task to {todo}",
            "to-do list add {todo}",
            "put {todo} on the to-do list",
            "add to my to-do list {todo}",
            "make a note to {todo}",
        ),
        phrases=("I need to {todo}, put it on my list", "I have to {todo}, add it to my to-dos"),
    ),
    IntentSpec(
        "GetCalendar",
        "calendar",
        3.0,
        phrases=(
            "what's on my calendar {day}",
            "do I have any meetings {day}",
            "what's my schedule {day}",
            "what's next on my calendar",
            "when is my next meeting",
            "am I free {day}",
            "what do I have going on {day}",
            "anything on my calendar {day}",
            "what's my first meeting {day}",
            "do I have anything {day}",
            "what's on the agenda {day}",
        ),
        commands=(
            "read me my calendar for {day}",
            "check my calendar {day}",
            "tell me my appointments {day}",
        ),
    ),
    IntentSpec(
        "GetNews",
        "news",
        2.5,
        phrases=(
            "what's the news",
            "what's happening in the world",
            "any {topic} news",
            "what's in the news today",
            "what are today's top stories",
            "what's the latest {topic} news",
            "anything new in {topic}",
            "what's going on in the world",
        ),
        commands=(
            "give me the latest headlines",
            "tell me the {topic} news",
            "play the news",
            "read me the headlines",
            "news update",
            "give me the {topic} headlines",
        ),
    ),
    IntentSpec(
        "TellJoke",
        "fun",
        2.0,
        commands=(
            "tell me a joke",
            "make me laugh",
            "tell me something funny",
            "tell me a dad joke",
            "tell me another joke",
            "say something funny",
            "tell me a knock knock joke",
            "joke please",
        ),
        phrases=("do you know any jokes", "got any good jokes", "I need a laugh", "know any good jokes"),
    ),
    IntentSpec(
        "Trivia",
        "fun",
        1.5,
        commands=(
            "ask me a trivia question",
            "quiz me",
            "give me a fun fact",
            "tell me something interesting",
            "teach me something new",
            "tell me a random fact",
            "start a trivia game",
        ),
        phrases=("let's play trivia", "do you have a fun fact", "I want to play a quiz"),
    ),
    IntentSpec(
        "GeneralQuestion",
        "knowledge",
        5.0,
        phrases=(
            "{question}",
            "do you know {question}",
            "I was wondering {question}",
            "quick question, {question}",
        ),
        commands=("tell me {question}", "look up {question}", "search for {question}", "find out {question}"),
    ),
    IntentSpec(
        "SpellWord",
        "dictionary",
        2.0,
        phrases=(
            "how do you spell {spell}",
            "what's the spelling of {spell}",
            "how is {spell} spelled",
            "how do I spell {spell}",
            "what's the correct spelling of {spell}",
        ),
        commands=(
            "spell {spell}",
            "spell {spell} for me",
            "spell the word {spell}",
            "tell me how to spell {spell}",
        ),
    ),
    IntentSpec(
        "DefineWord",
        "dictionary",
        1.5,
        phrases=(
            "what does {define} mean",
            "what's the meaning of {define}",
            "what is the definition of {define}",
            "what's {define}",
            "what does the word {define} mean",
        ),
        commands=(
            "define {define}",
            "look up {define} in the dictionary",
            "give me the definition of {define}",
            "tell me what {define} means",
        ),
    ),
    IntentSpec(
        "HassVacuumStart",
        "vacuum",
        2.0,
        commands=(
            "start the {name}",
            "start vacuuming",
            "vacuum the {area}",
            "run the {name}",
            "clean the {area}",
            "send the {name} to the {area}",
            "have the {name} clean the {area}",
            "start cleaning",
            "get the {name} going",
            "hoover the {area}",
            "start the {name} in the {area}",
            "{name} start",
            "let the {name} run",
            "vacuum the house",
        ),
        device_kinds={"vacuum": 1.0},
    ),
    IntentSpec(
        "HassVacuumReturnToBase",
        "vacuum",
        1.0,
        commands=(
            "send the {name} home",
            "dock the {name}",
            "{name} go home",
            "return the {name} to base",
            "send the {name} back to its dock",
            "stop cleaning and go home",
            "send the vacuum back",
            "{name} back to the dock",
            "tell the {name} to go home",
        ),
        device_kinds={"vacuum": 1.0},
    ),
    IntentSpec(
        "HassOpenCover",
        "cover",
        2.5,
        commands=(
            "open the {name}",
            "raise the {name}",
            "open the {name} in the {area}",
            "open the {area} {name}",
            "roll up the {name}",
            "pull the {name} up",
            "{name} up",
            "open up the {name}",
            "lift the {name}",
            "open the blinds in the {area}",
            "open the curtains in the {area}",
            "open all the blinds",
        ),
        phrases=("let some light into the {area}",),
        device_kinds={"cover": 1.0},
    ),
    IntentSpec(
        "HassCloseCover",
        "cover",
        2.5,
        commands=(
            "close the {name}",
            "lower the {name}",
            "shut the {name}",
            "draw the {name}",
            "pull down the {name}",
            "roll down the {name}",
            "close the {name} in the {area}",
            "close the {area} {name}",
            "{name} down",
            "close the blinds in the {area}",
            "close the curtains in the {area}",
            "close all the blinds",
        ),
        phrases=("the sun is too bright in the {area}",),
        device_kinds={"cover": 1.0},
    ),
    IntentSpec(
        "HassLock",
        "lock",
        2.0,
        commands=(
            "lock the {name}",
            "lock up the {name}",
            "make sure the {name} is locked",
            "{name} lock",
            "secure the {name}",
            "can you lock the {name}",
            "lock all the doors",
            "lock up",
            "lock the house",
            "lock the {name} now",
        ),
        phrases=("did I lock the {name}? lock it",),
        device_kinds={"lock": 1.0},
    ),
    IntentSpec(
        "HassUnlock",
        "lock",
        1.5,
        commands=(
            "unlock the {name}",
            "unlock {name}",
            "can you unlock the {name}",
            "{name} unlock",
            "open the lock on the {name}",
            "unlock the {name} please",
            "unlock the {name} for the delivery",
            "unlock the {name} so I can get in",
            "release the lock on the {name}",
        ),
        device_kinds={"lock": 1.0},
    ),
)
INTENT_NAMES = tuple(spec.intent for spec in INTENTS)


# ---------------------------------------------------------------------------------------------------
# Rendering.

_POLITE_PREFIXES = (
    "could you", "can you", "please", "would you", "could you please", "can you please", "hey can you",
    "hey could you", "I need you to", "I'd like you to", "go ahead and", "would you please", "will you",
    "can you go ahead and", "do me a favor and",
)  # fmt: skip
_DISFLUENCIES = ("um", "uh", "okay", "so", "hey", "oh", "alright", "um okay", "right", "er", "hmm", "okay so")
_SUFFIXES = (
    "please", "thanks", "thank you", "for me", "for me please", "now", "right now", "real quick",
    "if you could", "please and thank you", "when you get a chance", "thanks a lot",
)  # fmt: skip
_QUESTION_STARTS = (
    "what", "what's", "how", "how's", "when", "where", "who", "why", "is", "are", "do", "does", "did", "will",
    "can", "could", "would", "am", "have", "any", "anything",
)  # fmt: skip
_PLACEHOLDER_RE = re.compile(r"\{(\w+)\}")


class _Unavailable(Exception):
    """A template needs something the name set does not have (e.g. no devices of that kind)."""


def _skewed_choice(rng: random.Random, items: tuple[str, ...], power: float) -> str:
    """Pick from a list ordered most-frequent first, favouring the front (``power`` > 1)."""
    return items[int(len(items) * rng.random() ** power)]


class _Renderer:
    """Fills one template; collects the slots and the domain on the way."""

    def __init__(self, rng: random.Random, names: NameSet, devices_by_kind: Mapping[str, tuple[str, ...]]):
        self.rng = rng
        self.names = names
        self.devices_by_kind = devices_by_kind
        self.slots: dict[str, SlotValue] = {}
        self.domain: str | None = None
        self.spec: IntentSpec = INTENTS[0]
        self.template = ""

    def render(self, spec: IntentSpec, template: str) -> str:
        self.spec, self.template, self.slots, self.domain = spec, template, {}, None
        return _PLACEHOLDER_RE.sub(lambda m: _FILLERS[m.group(1)](self), template)

    # -- devices and places -------------------------------------------------------------------------

    def device(self) -> str:
        kinds = [k for k in self.spec.device_kinds if self.devices_by_kind.get(k)]
        if not kinds:
            raise _Unavailable("no device of kinds " + ", ".join(self.spec.device_kinds))
        kind = self.rng.choices(kinds, weights=[self.spec.device_kinds[k] for k in kinds])[0]
        device = self.rng.choice(self.devices_by_kind[kind])
        self.slots["name"] = device
        self.domain = kind
        return device

    def area(self) -> str:
        if not self.names.areas:
            raise _Unavailable("no areas")
        area = self.rng.choice(self.names.areas)
        self.slots["area"] = area
        return area

    def contact(self) -> str:
        if not self.names.first_names:
            raise _Unavailable("no first names")
        roll = self.rng.random()
        if roll < 0.08:
            contact = self.rng.choice(RELATIONS)
            self.slots["contact"] = contact.removeprefix("my ")
            return contact
        first = _skewed_choice(self.rng, self.names.first_names, 2.0)
        contact = first
        if roll < 0.6 and self.names.last_names:
            contact = f"{first} {_skewed_choice(self.rng, self.names.last_names, 3.0)}"
        self.slots["contact"] = contact
        return contact

    # -- numbers said many ways ---------------------------------------------------------------------

    def percent(self, slot: str, minimum: int = 1) -> str:
        roll = self.rng.random()
        if roll < 0.65:
            value = self.rng.randrange(max(10, minimum), 101, 10)
        elif roll < 0.9:
            value = self.rng.randrange(5, 100, 5)
        else:
            value = self.rng.randint(minimum, 100)
        self.slots[slot] = value
        forms = [f"{value}%", f"{value} percent", f"{number_to_words(value)} percent", f"{value} per cent"]
        if value == 100 and self.rng.random() < 0.5:
            forms = ["a hundred percent", "one hundred percent"]
        if self.rng.random() < 0.2:
            return _number_written(value, self.rng)
        return self.rng.choice(forms)

    def temperature(self) -> str:
        rng = self.rng
        fahrenheit = rng.random() < 0.25
        value: int | float
        if fahrenheit:
            value = rng.randint(60, 80)
        else:
            value = rng.randint(15, 27) + (0.5 if rng.random() < 0.25 else 0)
            value = int(value) if value == int(value) else value
        self.slots["temperature"] = value
        if isinstance(value, float):
            whole = int(value)
            forms = [
                f"{value} degrees",
                f"{value}°",
                f"{value}°C",
                f"{value}",
                f"{number_to_words(whole)} and a half degrees",
                f"{number_to_words(whole)} point five degrees",
            ]
        else:
            unit = " Fahrenheit" if fahrenheit else " Celsius"
            forms = [
                f"{value} degrees",
                f"{value}°",
                f"{value}°{unit[1]}",
                f"{value}",
                f"{number_to_words(value)} degrees",
                f"{value} degrees{unit}",
                f"{number_to_words(value)}",
            ]
        return rng.choice(forms)

    def duration_seconds(self) -> int:
        rng = self.rng
        roll = rng.random()
        if roll < 0.7:
            seconds = rng.choice(_COMMON_DURATIONS)
        elif roll < 0.85:
            seconds = 60 * rng.randint(1, 90)
        elif roll < 0.95:
            seconds = rng.randint(5, 59)
        else:
            seconds = 3600 * rng.randint(1, 4) + 60 * rng.choice([0, 5, 10, 15, 20, 30, 40, 45])
        self.slots["duration_s"] = seconds
        return seconds

    def duration(self) -> str:
        return self.rng.choice(duration_phrases(self.duration_seconds()))

    def duration_adjective(self) -> str:
        for _ in range(20):
            seconds = self.duration_seconds()
            forms = _duration_adjective(seconds)
            if forms:
                adjective = self.rng.choice(forms)
                return _article_for(to_spoken(adjective)) + " " + adjective
        raise _Unavailable("no single-unit duration drawn")

    def clock_time(self) -> str:
        hour = self.rng.randint(1, 12)
        minute = self.rng.choice([0, 0, 0, 15, 30, 30, 45, 5, 10, 20, 25, 40, 50, 55])
        written, canonical = _time_phrases(hour, minute, self.rng)
        self.slots["time"] = canonical
        return written

    def day(self) -> str:
        # "six tonight" means 18:00: keep day parts away from clock times so "time" stays what was said
        day = self.rng.choice(_DAYS_WITH_TIME if "{time}" in self.template else DAYS)
        self.slots["day"] = to_spoken(day.removeprefix("on "))
        return day

    def free_text(self, slot: str, choices: tuple[str, ...]) -> str:
        value = self.rng.choice(choices)
        self.slots[slot] = to_spoken(value)
        return value

    def word(self, choices: tuple[str, ...]) -> str:
        if self.names.first_names and self.rng.random() < 0.25:
            value = _skewed_choice(self.rng, self.names.first_names, 2.0)
        else:
            value = self.rng.choice(choices)
        self.slots["word"] = value
        return value

    def timer_name(self) -> str:
        value = self.rng.choice(TIMER_NAMES)
        self.slots["name"] = value
        return value


def _song_by_artist(r: _Renderer) -> str:
    return r.free_text("query", (f"{r.rng.choice(SONGS)} by {r.rng.choice(ARTISTS)}",))


_FILLERS: dict[str, Callable[[_Renderer], str]] = {
    "name": _Renderer.device,
    "area": _Renderer.area,
    "contact": _Renderer.contact,
    "brightness": lambda r: r.percent("brightness"),
    "volume": lambda r: r.percent("volume", minimum=0),
    "percentage": lambda r: r.percent("percentage"),
    "temperature": _Renderer.temperature,
    "duration": _Renderer.duration,
    "a_duration_adj": _Renderer.duration_adjective,
    "timer": _Renderer.timer_name,
    "time": _Renderer.clock_time,
    "day": _Renderer.day,
    "location": lambda r: r.free_text("location", CITIES),
    "message": lambda r: r.free_text("message", MESSAGES),
    "reminder": lambda r: r.free_text("message", REMINDER_TASKS),
    "todo": lambda r: r.free_text("item", TASKS),
    "item": lambda r: r.free_text("item", SHOPPING_ITEMS),
    "genre": lambda r: r.free_text("query", GENRES),
    "artist": lambda r: r.free_text("query", ARTISTS),
    "song": lambda r: r.free_text("query", SONGS),
    "song_by_artist": _song_by_artist,
    "playlist": lambda r: r.free_text("query", PLAYLISTS),
    "station": lambda r: r.free_text("query", STATIONS),
    "podcast": lambda r: r.free_text("query", PODCASTS),
    "topic": lambda r: r.free_text("topic", NEWS_TOPICS),
    "question": lambda r: r.free_text("query", QUESTIONS),
    "spell": lambda r: r.word(SPELL_WORDS),
    "define": lambda r: r.word(DEFINE_WORDS),
}


def _devices_by_kind(names: NameSet) -> dict[str, tuple[str, ...]]:
    grouped: dict[str, list[str]] = {}
    for device in names.devices:
        grouped.setdefault(device_kind(device), []).append(device)
    return {kind: tuple(devices) for kind, devices in grouped.items()}


# First words of terse commands ("lights off in the kitchen", "timer five minutes"): no "could you".
_NOT_VERBS = frozenset((
    "lights", "timer", "volume", "thermostat", "next", "previous", "louder", "quieter", "alarm", "shopping",
    "new", "to-do", "joke", "news", "back", "in", "can", "don't",
))  # fmt: skip


def _starts_with_verb(template: str) -> bool:
    first = template.split(" ", 1)[0].lower()
    return first not in _NOT_VERBS and not first.startswith("{")


def _decorate(core: str, is_command: bool, polite_ok: bool, rng: random.Random) -> str:
    """Fillers, politeness and punctuation around a rendered core sentence (written form)."""
    prefix = ""
    polite = ""
    if rng.random() < (0.15 if is_command else 0.2):
        prefix = rng.choice(_DISFLUENCIES) + ", "
    if is_command and polite_ok and rng.random() < 0.35:
        polite = rng.choice(_POLITE_PREFIXES) + " "
    suffix = ""
    if rng.random() < (0.25 if is_command else 0.08):
        suffix = rng.choice(_SUFFIXES if is_command else ("please", "thanks", "thank you"))
        if "please" in suffix and "please" in polite:
            suffix = "thanks"
        suffix = ", " + suffix
    if polite:
        question = polite.startswith(("hey c", "would", "will", "could", "can"))
    else:
        question = core.split(" ", 1)[0].lower() in _QUESTION_STARTS
    end = "?" if question else rng.choice([".", ".", "", "!"])
    sentence = prefix + polite + core + suffix + end
    return sentence[0].upper() + sentence[1:]


def _pick_template(spec: IntentSpec, rng: random.Random) -> tuple[str, bool]:
    if spec.commands and (not spec.phrases or rng.random() < len(spec.commands) / len(spec.templates)):
        return rng.choice(spec.commands), True
    return rng.choice(spec.phrases), False


def _vary_template(template: str, is_command: bool, rng: random.Random) -> str:
    """Terse commands drop "the"; some sentences hesitate before a value ("for, um, five minutes")."""
    if is_command and rng.random() < 0.1:
        template = re.sub(r"\bthe ", "", template)
    placeholders = list(_PLACEHOLDER_RE.finditer(template))
    if placeholders and rng.random() < 0.06:
        m = rng.choice(placeholders)
        if m.start() > 0:
            template = (
                template[: m.start()].rstrip()
                + ", "
                + rng.choice(("um", "uh"))
                + ", "
                + template[m.start() :]
            )
    return template


def generate_sentences(seed: int, count: int, names: NameSet) -> list[Sentence]:
    """``count`` sentences across all :data:`INTENTS`, the same for the same seed and names.

    Only names, devices and areas from ``names`` appear, so generating with
    :func:`~models.corpus.names.train_names` never says an eval-only name.
    """
    rng = random.Random(seed)
    renderer = _Renderer(rng, names, _devices_by_kind(names))
    weights = [spec.weight for spec in INTENTS]
    sentences: list[Sentence] = []
    while len(sentences) < count:
        spec = rng.choices(INTENTS, weights=weights)[0]
        template, is_command = _pick_template(spec, rng)
        template = _vary_template(template, is_command, rng)
        try:
            core = renderer.render(spec, template)
        except _Unavailable:
            continue
        written = _decorate(core, is_command, _starts_with_verb(template), rng)
        sentences.append(
            Sentence(
                text=to_spoken(written),
                written=written,
                intent=spec.intent,
                slots=dict(renderer.slots),
                domain=renderer.domain or spec.domain,
            )
        )
    return sentences
