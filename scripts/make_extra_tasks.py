"""Generate two more example datasets, used to check that lorakit's defaults are not tuned to tool_picker.

Usage:
    python scripts/make_extra_tasks.py                    # writes data/contacts/ and data/dates/
    python scripts/make_extra_tasks.py --seed 1 --out /tmp/extra

- contacts: a free-form message -> {"name", "company", "email", "phone"} JSON (null when absent). Extraction.
- dates: a date written in one of many styles -> ISO 8601 (YYYY-MM-DD), plain text. Normalisation.
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
    for name, make, system in (("contacts", contact, CONTACT_SYSTEM), ("dates", date, DATE_SYSTEM)):
        rows = generate(make, system, args.n, args.seed)
        folder = args.out / name
        folder.mkdir(parents=True, exist_ok=True)
        for split, part in (("train", rows[args.test:]), ("test", rows[: args.test])):
            (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
            print(f"wrote {len(part)} examples to {folder / split}.jsonl")


if __name__ == "__main__":
    main()
