"""The tuned models' answers, recorded while they still exist (`python -m lorakit.migrate`, step 2): each succeeded
job's `ft:` model answers its validation file's prompts (each conversation without its final reply), or a prompt
file the user gives, at temperature 0; one JSON line per prompt in `DIR/<job id>/recorded.jsonl`:

    {"id": <sha256 of the request>, "request": <OpenAI's chat body, as sent>, "answer": <the reply's text>,
     "tool_calls": [...] | null, "finish_reason": ..., "usage": {...}, "model": <the model that answered>,
     "recorded_at": <UTC time>}

Each line is written as soon as its answer arrives, so an interrupted run loses nothing and a re-run asks only
what is not recorded yet (nothing is recorded twice). 429s and 5xx are retried with backoff by the SDK (its
max_retries, Retry-After honoured). A model that no longer exists (retired, deleted) is reported and skipped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from lorakit.core.messages import last_reply
from lorakit.openai.api import answer_text

log = logging.getLogger(__name__)

RECORDED = "recorded.jsonl"
CHARS_PER_TOKEN = 4  # the estimate's token count (OpenAI's tokenizers average about 4 characters a token)


@dataclass
class Plan:
    """What one job's recording would ask: its model, the requests not recorded yet, bad lines skipped."""
    job_id: str
    model: str
    base: str
    requests: list[dict]
    skipped: list[str]  # "file:line: why"
    expected_output_chars: int  # the reference replies' length (max_tokens x 4 where there is none)


def request_id(request: dict) -> str:
    return hashlib.sha256(json.dumps(request, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:32]


def _conversation(row: dict) -> tuple[list[dict], dict, str]:
    """(messages to send, extra request fields (tools), the final reply's text) of one line: a chat example
    without its final assistant reply, a DPO pair's input, or a task (its conversation as it is)."""
    source = row.get("input") if isinstance(row.get("input"), dict) else row
    messages = source.get("messages")
    if not isinstance(messages, list) or not all(isinstance(m, dict) and "role" in m for m in messages):
        raise ValueError('no "messages" list (a chat example, a DPO pair\'s "input", or a task)')
    last = last_reply(messages)
    final = None
    if last is not None and last == len(messages) - 1:
        final, messages = messages[last], messages[:last]
    elif source is not row and isinstance(row.get("preferred_output"), list) and row["preferred_output"]:
        final = row["preferred_output"][-1]  # a DPO pair: the preferred reply is the reference
    if not messages:
        raise ValueError("nothing is left to ask once the final reply is taken off")
    extra = {k: source[k] for k in ("tools", "parallel_tool_calls") if source.get(k) is not None}
    return messages, extra, _text(final) if isinstance(final, dict) else ""


def _text(message: dict) -> str:
    """A reply's text: its content (the text parts of a list), else its tool calls as JSON."""
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if isinstance(content, str) and content:
        return content
    return json.dumps(message["tool_calls"]) if message.get("tool_calls") else ""


def references(prompts: Path) -> list[str]:
    """The final reply of each readable line of a prompt file (chat example, DPO pair's preferred output; "" for a
    task): what the tuned model's answers are compared with."""
    found = []
    for line in prompts.read_text(encoding="utf-8").splitlines():
        try:
            found.append(_conversation(json.loads(line))[2])
        except (ValueError, AttributeError, TypeError):
            continue
    return found


def recorded_ids(recorded: Path) -> set[str]:
    """The requests recorded already. A line an interruption left half-written is dropped from the file (its
    request is asked again)."""
    if not recorded.is_file():
        return set()
    lines = recorded.read_text(encoding="utf-8").splitlines()
    kept, ids = [], set()
    for line in lines:
        try:
            ids.add(json.loads(line)["id"])
            kept.append(line)
        except (ValueError, KeyError, TypeError):
            log.warning("%s: a half-written line is dropped; its request is asked again", recorded)
    if len(kept) < len(lines):
        recorded.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
    return ids


def plan_job(job_id: str, model: str, base: str, prompts: Path, recorded: Path, max_tokens: int) -> Plan:
    """The requests for one job from a prompt file (its validation file, or the user's), less those recorded."""
    done = recorded_ids(recorded)
    requests, skipped, expected, seen = [], [], 0, set()
    for n, line in enumerate(prompts.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            messages, extra, reply = _conversation(json.loads(line))
        except (ValueError, AttributeError, TypeError) as err:  # JSONDecodeError is a ValueError
            skipped.append(f"{prompts.name}:{n}: {err}")
            continue
        request = {"model": model, "messages": messages, **extra, "temperature": 0, "max_tokens": max_tokens}
        key = request_id(request)
        if key in done or key in seen:  # recorded already, or the same prompt twice in the file
            continue
        seen.add(key)
        requests.append(request)
        expected += len(reply) if reply else max_tokens * CHARS_PER_TOKEN
    return Plan(job_id, model, base, requests, skipped, expected)


def estimate(plans: list[Plan], pricing) -> dict:
    """The number of requests and their estimated cost in USD from conf/pricing's dated rates (None where the
    table has no rate for a job's base model)."""
    rates = {k: list(v) for k, v in dict(pricing.get("usd_per_1m_fine_tuned_tokens") or {}).items()}
    usd, unpriced = 0.0, sorted({p.base for p in plans if p.requests and p.base not in rates})
    for p in plans:
        if p.base in rates:
            prompt_tokens = sum(len(json.dumps(r["messages"])) for r in p.requests) / CHARS_PER_TOKEN
            usd += (prompt_tokens * rates[p.base][0] + p.expected_output_chars / CHARS_PER_TOKEN * rates[p.base][1]) / 1e6
    return {"requests": sum(len(p.requests) for p in plans), "usd": round(usd, 4), "unpriced_models": unpriced,
            "rates_as_of": str(pricing.as_of)}


def record(client, plan: Plan, recorded: Path, *, concurrency: int = 4) -> int:
    """Ask every request of the plan, appending each answer to `recorded` as it arrives; returns how many were
    recorded. Raises openai.NotFoundError when the model no longer exists (nothing of it is recorded)."""
    lock = threading.Lock()

    def ask(request: dict) -> None:
        reply = client.chat.completions.create(**request)
        message = reply.choices[0].message
        line = {"id": request_id(request), "request": request, "answer": answer_text(message),
                "tool_calls": [c.model_dump(mode="json") for c in message.tool_calls] if message.tool_calls else None,
                "finish_reason": reply.choices[0].finish_reason,
                "usage": reply.usage.model_dump(mode="json") if reply.usage else None, "model": reply.model,
                "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        with lock, recorded.open("a", encoding="utf-8") as f:
            f.write(json.dumps(line, ensure_ascii=False) + "\n")

    if not plan.requests:
        return 0
    ask(plan.requests[0])  # alone first: a model that is gone fails once, not once per request
    with ThreadPoolExecutor(concurrency) as pool:
        list(tqdm(pool.map(ask, plan.requests[1:]), total=len(plan.requests), initial=1, unit="answer",
                  desc=f"recording {plan.model}"))
    return len(plan.requests)
