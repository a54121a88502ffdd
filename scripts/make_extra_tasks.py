"""Generate more example datasets, used to check that lorakit's defaults are not tuned to tool_picker.

Usage:
    python scripts/make_extra_tasks.py        # writes data/contacts/, data/dates/, data/intents/, data/orders/
    python scripts/make_extra_tasks.py --seed 1 --out /tmp/extra

- contacts: a free-form message -> {"name", "company", "email", "phone"} JSON (null when absent). Extraction.
- dates: a date written in one of many styles -> ISO 8601 (YYYY-MM-DD), plain text. Normalisation.
- intents: a request -> one of SNIPS' 7 intent labels (AddToPlaylist, ..., SearchScreeningEvent). Labels.
- orders: a two-turn conversation: a pizza order, then a change to it ("make it two") -> the order as JSON after
  each turn; both assistant turns are trained, the last one is scored. Multi-turn.
Deterministic for a given seed; no input appears twice or in both train and test.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

FIRST = ["Maria", "Tom", "Priya", "Jonas", "Fatima", "Kevin", "Lena", "Omar", "Sofia", "Chen", "Aiko", "Lucas",
         "Amara", "Diego", "Nina", "Raj", "Eva", "Samuel"]
LAST = ["Lopez", "Becker", "Shah", "Novak", "Haddad", "Okafor", "Schmidt", "Tanaka", "Rossi", "Kim", "Silva",
        "Dubois", "Mensah", "Ivanova"]
COMPANIES = ["Acme", "Globex", "Initech", "Umbrella Labs", "Stark Freight", "Wayne Foods", "Hooli", "Vandelay",
             "Soylent", "Cyberdyne", None, None]
CONTACT_TEMPLATES = [
    "Hi, this is {name}{from_co}. You can reach me at {email}{or_phone}.",
    "{name}{comma_co} here - call {phone_or_email} when you get a chance.",
    "Please add {name}{from_co} to the list. Email: {email}{phone_line}",
    "New lead: {name}{comma_co}, {email}{or_phone}",
    "Got a voicemail from {name}{from_co}, number {phone_or_email}.",
    "Contact card -> {name}{comma_co} | {email}{phone_bar}",
]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]


def _suffix(day: int) -> str:
    return "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")


DATE_STYLES = [
    lambda y, m, d: f"{MONTHS[m - 1]} {d}, {y}",
    lambda y, m, d: f"{d} {MONTHS[m - 1]} {y}",
    lambda y, m, d: f"{MONTHS[m - 1][:3]} {d} {y}",
    lambda y, m, d: f"{d:02d}.{m:02d}.{y}",
    lambda y, m, d: f"{y}/{m:02d}/{d:02d}",
    lambda y, m, d: f"the {d}{_suffix(d)} of {MONTHS[m - 1]} {y}",
    lambda y, m, d: f"{MONTHS[m - 1]} {d} in {y}",
]
CONTACT_SYSTEM = 'Extract the contact as JSON with keys name, company, email, phone (null when missing).'
DATE_SYSTEM = "Rewrite the date in ISO 8601 format (YYYY-MM-DD). Reply with the date only."


def contact(rng: random.Random) -> tuple[str, str]:
    first, last, company = rng.choice(FIRST), rng.choice(LAST), rng.choice(COMPANIES)
    name = f"{first} {last}"
    email = f"{first.lower()}.{last.lower()}@{(company or 'mail').lower().replace(' ', '')}.com"
    phone = rng.choice([None, f"555-{rng.randint(1000, 9999)}", f"+1 202 555 {rng.randint(1000, 9999)}"])
    text = rng.choice(CONTACT_TEMPLATES).format(
        name=name, email=email,
        from_co=f" from {company}" if company else "", comma_co=f", {company}" if company else "",
        or_phone=f" or {phone}" if phone else "", phone_line=f" Phone: {phone}" if phone else "",
        phone_bar=f" | {phone}" if phone else "", phone_or_email=phone or email,
    )
    has_email = email in text
    answer = {"name": name, "company": company, "email": email if has_email else None,
              "phone": phone if phone and phone in text else None}
    return text, json.dumps(answer)


def date(rng: random.Random) -> tuple[str, str]:
    y, m, d = rng.randint(1950, 2035), rng.randint(1, 12), rng.randint(1, 28)
    lead = rng.choice(["", "", "Date: ", "The meeting is on ", "Born ", "Due "])
    return lead + rng.choice(DATE_STYLES)(y, m, d), f"{y:04d}-{m:02d}-{d:02d}"


INTENT_SYSTEM = ("Classify the request as one of: AddToPlaylist, BookRestaurant, GetWeather, PlayMusic, RateBook, "
                 "SearchCreativeWork, SearchScreeningEvent. Reply with the intent only.")
SONGS = ["Bohemian Rhapsody", "Hey Jude", "something by Adele", "the new Taylor Swift album", "Clair de Lune",
         "Despacito", "a Miles Davis track", "Lose Yourself", "some lofi beats", "Wonderwall", "Dancing Queen"]
PLAYLISTS = ["my workout playlist", "Chill Vibes", "road trip mix", "the party list", "Sunday Morning", "my favorites"]
PLACES = ["Paris", "Chicago", "my area", "Tokyo", "Berlin", "the beach", "Denver", "here", "Lisbon", "Austin"]
WHEN = ["tomorrow", "this weekend", "tonight", "on Friday", "next week", "at 7pm", "right now", "in the morning"]
BOOKS = ["The Hobbit", "this novel", "Dune", "the last book I read", "Pride and Prejudice", "1984", "Educated"]
WORKS = ["the TV show Dark", "a movie called Inception", "the game Zelda", "the painting Starry Night",
         "a soundtrack named Interstellar", "the album Thriller", "the series Friends"]
INTENTS = {
    "AddToPlaylist": ["add {song} to {playlist}", "put {song} on {playlist} please", "can you save {song} in {playlist}",
                      "I want {song} added to {playlist}", "throw {song} into {playlist}"],
    "BookRestaurant": ["book a table for {n} in {place} {when}", "reserve a restaurant for {n} people {when}",
                       "I need a dinner reservation {when} for {n}", "get me a table at a sushi place {when}",
                       "can you book somewhere to eat in {place} {when}"],
    "GetWeather": ["what's the weather in {place} {when}", "will it rain {when} in {place}", "is it going to be cold "
                   "{when}", "forecast for {place} {when}?", "do I need an umbrella {when}"],
    "PlayMusic": ["play {song}", "put on {song}", "I wanna hear {song}", "start playing {song} on spotify",
                  "can you play {song} for me"],
    "RateBook": ["rate {book} {n} out of 5", "give {book} {n} stars", "I'd rate {book} a {n}",
                 "mark {book} as {n} stars", "my rating for {book} is {n}/5"],
    "SearchCreativeWork": ["find {work}", "search for {work}", "look up {work} for me", "where can I find {work}",
                           "show me {work}"],
    "SearchScreeningEvent": ["what movies are playing {when}", "showtimes for Dune in {place} {when}",
                             "which cinemas show Oppenheimer {when}", "is Barbie on at the theater {when}",
                             "find a movie screening near {place} {when}"],
}
ORDER_SYSTEM = ("Keep track of the customer's pizza order. After every message reply with the whole order as JSON "
                "with keys pizza, size, count.")
PIZZAS = ["margherita", "pepperoni", "hawaiian", "veggie", "four cheese", "bbq chicken", "marinara"]
SIZES = ["small", "medium", "large"]
NUMBERS = {1: "one", 2: "two", 3: "three", 4: "four"}


def intent(rng: random.Random) -> tuple[str, str]:
    label = rng.choice(sorted(INTENTS))
    text = rng.choice(INTENTS[label]).format(song=rng.choice(SONGS), playlist=rng.choice(PLAYLISTS), n=rng.randint(1, 6),
                                             place=rng.choice(PLACES), when=rng.choice(WHEN), book=rng.choice(BOOKS),
                                             work=rng.choice(WORKS))
    return rng.choice([text, text, text.capitalize(), text + "?" if not text.endswith("?") else text]), label


def order(rng: random.Random) -> list[tuple[str, str]]:
    """Two (user, assistant) turns: the order, then one change to it."""
    pizza, size, count = rng.choice(PIZZAS), rng.choice(SIZES), rng.randint(1, 3)
    first = rng.choice(["I'd like {c} {s} {p}", "can I get {c} {s} {p} pizza", "{c} {s} {p}, please",
                        "order {c} {p} in {s}"]).format(c=NUMBERS[count], s=size, p=pizza)
    answers = [json.dumps({"pizza": pizza, "size": size, "count": count})]
    change = rng.choice(["pizza", "size", "count"])
    if change == "pizza":
        pizza = rng.choice([p for p in PIZZAS if p != pizza])
        second = rng.choice(["actually make it {p}", "switch to {p} instead", "change the pizza to {p}"]).format(p=pizza)
    elif change == "size":
        size = rng.choice([s for s in SIZES if s != size])
        second = rng.choice(["make it {s}", "actually {s} please", "can you change it to {s}"]).format(s=size)
    else:
        count = rng.choice([n for n in NUMBERS if n != count])
        second = rng.choice(["make that {c}", "I need {c} of them", "change it to {c} pizzas"]).format(c=NUMBERS[count])
    answers.append(json.dumps({"pizza": pizza, "size": size, "count": count}))
    return [(first, answers[0]), (second, answers[1])]


def generate_turns(make, system: str, n: int, seed: int) -> list[dict]:
    """Conversations of several turns: make(rng) -> [(user, assistant), ...]."""
    rng, seen, rows = random.Random(seed), set(), []
    while len(rows) < n:
        turns = make(rng)
        key = json.dumps(turns)
        if key not in seen:
            seen.add(key)
            messages = [{"role": "system", "content": system}]
            for user, answer in turns:
                messages += [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
            rows.append({"messages": messages})
    return rows


def generate(make, system: str, n: int, seed: int) -> list[dict]:
    rng, seen, rows = random.Random(seed), set(), []
    while len(rows) < n:
        text, answer = make(rng)
        if text not in seen:
            seen.add(text)
            rows.append({"messages": [{"role": "system", "content": system}, {"role": "user", "content": text},
                                      {"role": "assistant", "content": answer}]})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--test", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "data")
    args = ap.parse_args()
    tasks = (("contacts", contact, CONTACT_SYSTEM, generate), ("dates", date, DATE_SYSTEM, generate),
             ("intents", intent, INTENT_SYSTEM, generate), ("orders", order, ORDER_SYSTEM, generate_turns))
    for name, make, system, build in tasks:
        rows = build(make, system, args.n, args.seed)
        folder = args.out / name
        folder.mkdir(parents=True, exist_ok=True)
        for split, part in (("train", rows[args.test:]), ("test", rows[: args.test])):
            (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
            print(f"wrote {len(part)} examples to {folder / split}.jsonl")


if __name__ == "__main__":
    main()
