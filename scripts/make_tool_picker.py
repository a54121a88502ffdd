"""Generate the tool_picker example dataset (the "LLM as API" use case).

Usage:
    python scripts/make_tool_picker.py                 # writes data/tool_picker/{train,test}.jsonl
    python scripts/make_tool_picker.py --n 600 --test 150 --seed 1 --out /tmp/tp

Each line is an OpenAI chat example: a fixed system prompt, a user utterance, and the
assistant's JSON tool call, e.g. {"tool": "weather", "city": "Lisbon"}. The generator is
deterministic for a given seed, every utterance is unique, and no utterance appears in
both files.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

SYSTEM = (
    "Pick the tool for the user's request and reply with one JSON object only. "
    "Tools: weather(city), timer(minutes), music(query), email(to, subject), "
    "search(query), translate(text, lang), reminder(task, time), no_tool."
)

CITIES = ["Lisbon", "Tokyo", "Nairobi", "Denver", "Oslo", "Lima", "Cairo", "Seoul", "Austin",
          "Dublin", "Hanoi", "Perth", "Quebec", "Porto", "Zurich", "Mumbai", "Boston", "Kyiv"]
MUSIC = ["jazz for studying", "Taylor Swift", "lofi beats", "the Beatles", "classical piano",
         "90s hip hop", "Miles Davis", "rain sounds", "Daft Punk", "workout mix", "Bach cello suites",
         "country road trip songs", "Radiohead", "salsa classics"]
PEOPLE = ["Maria", "Tom", "Dr. Chen", "my landlord", "Priya", "the team", "Jonas", "Aunt Rosa",
          "Kevin", "Fatima", "my boss", "Lena"]
SUBJECTS = ["the quarterly report", "dinner on Friday", "the broken heater", "my vacation days",
            "the project deadline", "the invoice", "tomorrow's meeting", "the birthday party",
            "the lease renewal", "the code review"]
QUERIES = ["how tall is Mount Kilimanjaro", "best ramen in town", "when was the Eiffel Tower built",
           "symptoms of dehydration", "cheap flights to Rome", "how to fix a leaky faucet",
           "who won the 2018 World Cup", "vegan lasagna recipe", "distance from Earth to Mars",
           "python list comprehension examples", "opening hours of the library", "how do vaccines work"]
PHRASES = ["good morning", "where is the train station", "thank you very much", "I am allergic to nuts",
           "how much does this cost", "see you tomorrow", "the bill, please", "I need a doctor"]
LANGS = ["French", "Spanish", "German", "Japanese", "Italian", "Portuguese", "Korean"]
TASKS = ["call mom", "water the plants", "take my medicine", "submit the timesheet", "buy milk",
         "pick up the kids", "pay the electricity bill", "stretch", "back up the laptop", "feed the cat"]
TIMES = ["7am", "noon", "3pm", "6:30pm", "9pm", "tomorrow at 8am", "Monday at 10am", "tonight"]
SMALLTALK = ["tell me a joke", "how are you today", "what's your favorite color", "you're awesome",
             "rock paper scissors", "do you dream", "let's chat for a bit", "I'm bored",
             "sing me a song", "who made you", "never mind", "what do you think about cats",
             "thanks, that's all", "good night", "are you a robot", "hello there"]
OPENERS = ["", "", "", "hey, ", "ok, ", "quick one: ", "hi! ", "so, "]

TEMPLATES = {
    "weather": ["what's the weather in {city}", "is it going to rain in {city}",
                "{city} forecast", "do I need a jacket in {city} today", "how hot is it in {city}",
                "weather for {city} this weekend"],
    "timer": ["set a timer for {minutes} minutes", "timer {minutes} min", "start a {minutes} minute timer",
              "could you time {minutes} minutes for the pasta", "count down {minutes} minutes",
              "please set a {minutes} min timer"],
    "music": ["play {music}", "put on some {music}", "I want to listen to {music}", "queue up {music}",
              "music: {music}", "could you play {music}"],
    "email": ["email {person} about {subject}", "send {person} a mail regarding {subject}",
              "write to {person} about {subject}", "draft an email to {person} on {subject}"],
    "search": ["search for {query}", "look up {query}", "google {query}", "find out {query}",
               "can you search the web for {query}", "please search {query}"],
    "translate": ["translate '{phrase}' to {lang}", "how do you say '{phrase}' in {lang}",
                  "'{phrase}' in {lang} please", "what is '{phrase}' in {lang}"],
    "reminder": ["remind me to {task} {time_at}", "set a reminder to {task} {time_at}",
                 "don't let me forget to {task} {time_at}", "reminder: {task}, {time}",
                 "could you remind me to {task} {time_at}"],
    "no_tool": ["{smalltalk}"],
}


def make_example(rng: random.Random) -> tuple[str, dict]:
    """Draw one (utterance, tool call) pair."""
    tool = rng.choice(list(TEMPLATES))
    template = rng.choice(TEMPLATES[tool])
    slots = {
        "city": rng.choice(CITIES), "minutes": rng.choice([1, 2, 3, 5, 7, 10, 12, 15, 20, 25, 30, 45, 90]),
        "music": rng.choice(MUSIC), "person": rng.choice(PEOPLE), "subject": rng.choice(SUBJECTS),
        "query": rng.choice(QUERIES), "phrase": rng.choice(PHRASES), "lang": rng.choice(LANGS),
        "task": rng.choice(TASKS), "time": rng.choice(TIMES), "smalltalk": rng.choice(SMALLTALK),
    }
    slots["time_at"] = slots["time"] if slots["time"].startswith(("tomorrow", "Monday", "tonight")) else f"at {slots['time']}"
    text = rng.choice(OPENERS) + template.format(**slots)
    call: dict = {"tool": tool}
    call.update({
        "weather": lambda: {"city": slots["city"]},
        "timer": lambda: {"minutes": slots["minutes"]},
        "music": lambda: {"query": slots["music"]},
        "email": lambda: {"to": slots["person"], "subject": slots["subject"]},
        "search": lambda: {"query": slots["query"]},
        "translate": lambda: {"text": slots["phrase"], "lang": slots["lang"]},
        "reminder": lambda: {"task": slots["task"], "time": slots["time"]},
        "no_tool": lambda: {},
    }[tool]())
    return text, call


def generate(n: int, seed: int) -> list[dict]:
    """Return ``n`` unique chat examples, deterministic for ``seed``."""
    rng = random.Random(seed)
    seen: set[str] = set()
    rows = []
    for _ in range(n * 200):
        text, call = make_example(rng)
        if text in seen:
            continue
        seen.add(text)
        rows.append({"messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": text},
            {"role": "assistant", "content": json.dumps(call)},
        ]})
        if len(rows) == n:
            return rows
    raise RuntimeError(f"could only generate {len(rows)} unique examples, asked for {n}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=400, help="total examples (train + test)")
    ap.add_argument("--test", type=int, default=100, help="examples held out in test.jsonl")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "data" / "tool_picker")
    args = ap.parse_args()
    rows = generate(args.n, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, part in (("train", rows[args.test:]), ("test", rows[: args.test])):
        path = args.out / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in part))
        print(f"wrote {len(part)} examples to {path}")


if __name__ == "__main__":
    main()
