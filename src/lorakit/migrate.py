"""`python -m lorakit.migrate --out DIR`: bring an OpenAI fine-tuning account home before it closes.

OpenAI takes no new fine-tuning jobs after 2027-01-06 and retires gpt-4o, gpt-4o-mini, gpt-4.1 and gpt-4.1-mini,
with the models fine-tuned from them, on 2027-01-14. This command:
  1. records every fine-tuning job of the account in DIR/<job id>/: job.json (the job as OpenAI resolved it, its
     events and checkpoints, what is missing) and its training, validation and result files byte for byte;
  2. records each succeeded job's `ft:` model answering its validation file's prompts (or --prompts FILE) at
     temperature 0, in DIR/<job id>/recorded.jsonl, after showing the number of requests and their estimated cost;
  3. writes DIR/<job id>/run.sh: the same method on the same data with OpenAI's hyperparameters mapped, trained on
     a local base (--base) into DIR/<job id>/local, then `lorakit.compare` of that adapter against the recorded
     answers (non-inferiority, --margin; for free-text answers the pairwise judge, --judge) into
     DIR/<job id>/compare.
Re-running resumes: files on disk are not fetched again, answers recorded are not asked again.
`python -m lorakit.serve --aliases DIR` then serves each old `ft:` id from its local adapter.

The account: OPENAI_API_KEY and OPENAI_BASE_URL, read as the openai SDK reads them (any server of OpenAI's API,
lorakit.serve included). The key is never printed nor written.

    OPENAI_API_KEY=sk-... python -m lorakit.migrate --out migrated
    python -m lorakit.migrate --out migrated --yes --prompts my_prompts.jsonl
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from omegaconf import OmegaConf

from lorakit import methods
from lorakit.config.compose import compose, model_overrides, register_resolvers
from lorakit.core.answers import task_kind
from lorakit.core.errors import ApiError, UserError, exit_2_on_user_error
from lorakit.core.paths import CONF_DIR
from lorakit.evaluation.graders import spec
from lorakit.models.loading import load_base
from lorakit.openai.account import inventory
from lorakit.openai.recording import RECORDED, Plan, estimate, plan_job, record, references
from lorakit.server.files_api import check_training_file
from lorakit.server.job_command import retrain_script
from lorakit.server.jobs_api import hyperparameters

log = logging.getLogger("lorakit.migrate")
INDEX = "index.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m lorakit.migrate", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--out", required=True, help="the folder the account is brought into (one folder per job)")
    p.add_argument("--prompts", default=None,
                   help="a JSONL file of prompts every tuned model answers (chat examples, DPO pairs or tasks), "
                        "instead of each job's validation file")
    p.add_argument("--no-record", action="store_true", help="only the inventory and the files (step 1)")
    p.add_argument("--yes", action="store_true", help="record without asking, whatever the estimated cost")
    p.add_argument("--max-tokens", type=int, default=1024, help="an answer's token limit (default 1024)")
    p.add_argument("--concurrency", type=int, default=4, help="requests at once while recording (default 4)")
    p.add_argument("--retries", type=int, default=8,
                   help="retries of a request answered 429 or 5xx, with backoff (default 8)")
    p.add_argument("--base", default="smollm2-135m",
                   help="the local base run.sh trains on: a conf/model name, a folder or a hub id (default: the "
                        "embedded smollm2-135m; on a GPU box e.g. llama-3.1-8b or mistral-7b, README)")
    p.add_argument("--margin", type=float, default=0.05,
                   help="run.sh's non-inferiority margin: the local model may be worse by at most this (default 0.05)")
    p.add_argument("--judge", default=None,
                   help="the pairwise judge run.sh adds where the answers are free text: a conf/model name, a folder, a "
                        "hub id or openai:<model> (default: none; JUDGE=... bash run.sh sets it later)")
    return p.parse_args(argv)


def client(retries: int):
    """The SDK's client, configured from the environment as the SDK does it."""
    import openai

    try:
        return openai.OpenAI(max_retries=retries, timeout=600)
    except openai.OpenAIError as err:  # no key in the environment
        raise ApiError(f"{err} (the key is read from OPENAI_API_KEY only, never from a file or the command line)") \
            from None


def base_of(model: str) -> str:
    """The OpenAI base model of a job's model: `ft:<base>:<org>:<suffix>:<id>` -> <base>."""
    return model.split(":")[1] if model.startswith("ft:") else model


def plans(records: list[dict], out: Path, prompts: Path | None, max_tokens: int) -> list[Plan]:
    """One recording plan per succeeded job with a model to ask and prompts to ask it."""
    found = []
    for rec in records:
        job = rec["job"]
        if job["status"] != "succeeded" or not job.get("fine_tuned_model"):
            continue
        validation = rec["files"].get("validation_file", {})
        source = prompts or (out / job["id"] / validation["path"] if validation.get("path") else None)
        if source is None:
            log.warning("%s: no validation file and no --prompts: %s answers nothing (give --prompts FILE)",
                        job["id"], job["fine_tuned_model"])
            continue
        plan = plan_job(job["id"], job["fine_tuned_model"], base_of(job["model"]), source,
                        out / job["id"] / RECORDED, max_tokens)
        for line in plan.skipped:
            log.warning("%s: skipped %s", job["id"], line)
        found.append(plan)
    return found


def confirmed(cost: dict, yes: bool) -> bool:
    """Whether to spend: the estimate shown, then --yes or the user's answer."""
    priced = f"about ${cost['usd']:.2f} at OpenAI's rates as of {cost['rates_as_of']}"
    if cost["unpriced_models"]:
        priced += f" (no rate in conf/pricing/openai.yaml for {', '.join(cost['unpriced_models'])}: not counted)"
    print(f"Recording asks {cost['requests']} request(s) of the tuned models: {priced}.", flush=True)
    if yes:
        return True
    if not sys.stdin.isatty():
        raise UserError("recording spends on the account and nobody can be asked here: add --yes to go on, or "
                        "--no-record for the inventory alone")
    return input("Go on? [y/N] ").strip().lower() in {"y", "yes"}


def record_all(openai_client, found: list[Plan], out: Path, concurrency: int) -> dict[str, str]:
    """Each plan recorded; returns {job id: what went wrong} for the jobs whose answers could not be recorded."""
    import openai

    failed = {}
    for plan in found:
        try:
            n = record(openai_client, plan, out / plan.job_id / RECORDED, concurrency=concurrency)
            log.info("%s: %d answer(s) of %s recorded", plan.job_id, n, plan.model)
        except openai.NotFoundError:
            failed[plan.job_id] = f"{plan.model} no longer answers (retired or deleted): its answers cannot be recorded"
        except openai.APIStatusError as err:
            failed[plan.job_id] = f"{plan.model}: {err.status_code} {err.message} (re-run to resume)"
        except openai.APIConnectionError as err:
            failed[plan.job_id] = f"{plan.model}: cannot reach the API ({err}; re-run to resume)"
        if plan.job_id in failed:
            log.error("%s: %s", plan.job_id, failed[plan.job_id])
    return failed


def _job_body(job: dict) -> dict:
    """The job as the server's job command reads it: method, hyperparameters ("auto" where OpenAI gives none; one
    lorakit has no setting for is named and left out), a reinforcement job's grader checked.

    Raises:
        UserError: a value lorakit cannot train with, or a grader it cannot run (each problem named).
    """
    from pydantic import ValidationError

    method = {k: v for k, v in (job.get("method") or {"type": "supervised"}).items() if v is not None}
    kind = method.get("type", "supervised")
    known = set(methods.get(kind).hyperparameters.model_fields) if kind in methods.names() else set()
    given = {**(job.get("hyperparameters") or {}), **((method.get(kind) or {}).get("hyperparameters") or {})}
    unknown = sorted(set(given) - known)
    if unknown:
        log.warning("%s: hyperparameters lorakit has no setting for, left out of run.sh: %s", job["id"],
                    ", ".join(unknown))
    try:
        kind, hp = hyperparameters({"method": {"type": kind, kind: {"hyperparameters": {
            k: v for k, v in given.items() if k in known}}}})
    except (ValidationError, methods.UnknownMethod) as err:
        raise UserError(f"its method or hyperparameters cannot be mapped to lorakit's: {err}") from None
    if "grader" in methods.get(kind).openai_fields:
        found = spec.problems((method.get(kind) or {}).get("grader"))
        if found:
            raise UserError(f"its grader cannot run here: {'; '.join(found)}")
    return {**job, "method": {**method, "type": kind}, "hyperparameters": hp}


def check_files(folder: Path, files: dict, tokenizer) -> list[str]:
    """What lorakit's checks (the prepare stage's, as the server's uploads get them) find in a job's training and
    validation files: one `file:line: category: problem` per unusable line, though OpenAI accepted them."""
    problems = []
    for role in ("training_file", "validation_file"):
        if "path" in files.get(role, {}):
            problem = check_training_file(folder / files[role]["path"], files[role]["path"], tokenizer)[2]
            problems += [problem] if problem else []
    return problems


def free_text(test_file: Path | None, recorded: Path) -> bool:
    """Whether a job's answers are free text (neither JSON objects nor a small label set), read from the test file's
    references, or from the recorded answers where it has none: where run.sh adds the pairwise judge."""
    found = [r for r in references(test_file) if r.strip()] if test_file and test_file.is_file() else []
    if not found:
        found = [json.loads(line)["answer"] for line in recorded.read_text(encoding="utf-8").splitlines() if line]
    return task_kind(found) == "text"


def write_scripts(records: list[dict], out: Path, base: str, margin: float, prompts: Path | None,
                  judge: str | None = None) -> tuple[dict[str, list], dict[str, str]]:
    """run.sh per succeeded job whose training file is on disk (paths in it absolute). Returns what lorakit's checks
    find in each job's files ({job id: problems}) and the jobs that got no run.sh ({job id: why})."""
    out, prompts = out.resolve(), prompts.resolve() if prompts else None
    overrides = model_overrides(base)
    composed = compose(*overrides)
    local = {"model_overrides": overrides, "learning_rate": float(composed.train.learning_rate), "base_model": base,
             "margin": margin, "judge": judge}
    tokenizer = load_base(composed.model).tokenizer
    found, unscripted = {}, {}
    made_by = {r["job"]["fine_tuned_model"]: r["job"]["id"] for r in records if r["job"].get("fine_tuned_model")}
    for rec in records:
        job, files, folder = rec["job"], rec["files"], out / rec["job"]["id"]
        if job["status"] != "succeeded":
            continue
        if "path" not in files.get("training_file", {}):
            unscripted[job["id"]] = "its training file is missing: nothing to train on"
        else:
            try:
                _write_script(rec, folder, out, made_by, prompts, local)
            except UserError as err:
                unscripted[job["id"]] = f"no run.sh: {err}"
        if job["id"] in unscripted:
            log.error("%s: %s", job["id"], unscripted[job["id"]])
            continue
        found[job["id"]] = check_files(folder, files, tokenizer)
        for problem in found[job["id"]]:
            log.warning("%s: lorakit's checks drop lines OpenAI accepted (run.sh trains without them): %s",
                        job["id"], problem)
    return found, unscripted


def _write_script(rec: dict, folder: Path, out: Path, made_by: dict, prompts: Path | None, local: dict) -> None:
    """One job's run.sh (retrain_script's settings in `local`); a job continuing another of the account's starts
    from that job's local model."""
    job, files = rec["job"], rec["files"]
    body = _job_body(job)
    parent = made_by.get(job["model"]) if job["model"].startswith("ft:") else None
    if job["model"].startswith("ft:") and parent is None:
        log.warning("%s continues %s, which no job of this account made: run.sh trains from the base", job["id"],
                    job["model"])
    valid = folder / files["validation_file"]["path"] if "path" in files.get("validation_file", {}) else None
    recorded = folder / RECORDED if (folder / RECORDED).is_file() else None
    text = recorded is not None and free_text(prompts or valid, recorded)
    if text and not local["judge"]:
        log.warning("%s: its answers are free text: run.sh compares them by metrics alone; --judge MODEL (or "
                    "JUDGE=MODEL bash run.sh) adds the pairwise judge", job["id"])
    script = retrain_script(body, folder, training_file=folder / files["training_file"]["path"], validation_file=valid,
                            init_from=out / parent / "local" if parent else None, recorded=recorded,
                            test_file=prompts or valid, free_text=text, **local)
    (folder / "run.sh").write_text(script)
    (folder / "run.sh").chmod(0o755)


def write_index(records: list[dict], out: Path, failed: dict[str, str], checks: dict[str, list],
                unscripted: dict[str, str]) -> None:
    """DIR/index.json: every job with its status, model, missing files and answers recorded."""
    jobs = []
    for rec in records:
        job, recorded = rec["job"], out / rec["job"]["id"] / RECORDED
        jobs.append({"id": job["id"], "status": job["status"], "method": (job.get("method") or {}).get("type"),
                     "model": job["model"], "fine_tuned_model": job.get("fine_tuned_model"),
                     "missing": rec["missing"], "recording_failed": failed.get(job["id"]),
                     "lorakit_checks": checks.get(job["id"], []), "no_run_sh": unscripted.get(job["id"]),
                     "run_sh": str(out / job["id"] / "run.sh") if (out / job["id"] / "run.sh").is_file() else None,
                     "recorded": sum(1 for line in recorded.read_text().splitlines() if line.strip())
                     if recorded.is_file() else 0})
    (out / INDEX).write_text(json.dumps({"jobs": jobs}, indent=2, ensure_ascii=False) + "\n")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    openai_client = client(args.retries)
    records = inventory(openai_client, out)
    failed: dict[str, str] = {}
    if not args.no_record:
        prompts = Path(args.prompts) if args.prompts else None
        if prompts is not None and not prompts.is_file():
            raise UserError(f"--prompts {prompts}: no such file")
        found = plans(records, out, prompts, args.max_tokens)
        cost = estimate(found, OmegaConf.load(CONF_DIR / "pricing" / "openai.yaml"))
        if cost["requests"] and confirmed(cost, args.yes):
            failed = record_all(openai_client, found, out, args.concurrency)
    register_resolvers()
    checks, unscripted = write_scripts(records, out, args.base, args.margin,
                                       Path(args.prompts) if args.prompts else None, args.judge)
    write_index(records, out, failed, checks, unscripted)
    print(f"{len(records)} job(s) in {out}/ ({INDEX} lists them)", flush=True)
    return 1 if failed or unscripted else 0


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    for name in ("httpx", "httpx2"):  # one INFO line per request otherwise
        logging.getLogger(name).setLevel(logging.WARNING)
    with exit_2_on_user_error(log):
        code = run(args)
    sys.exit(code)


if __name__ == "__main__":
    main()
