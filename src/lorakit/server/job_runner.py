"""Fine-tuning jobs: each one is `python -m train stages=[prepare,train]` in its own process, as many at once as
the machine has room for (job_slots: GPUs, --max-jobs), the next ones queued in order. Statuses:
validating_files -> queued -> running -> succeeded | failed | cancelled.

While a job runs, its run folder's progress.jsonl becomes events (step, training loss, validation loss); when it
succeeds, its adapter is served as `ft:<base>:<suffix>:<job id>` and every saved epoch checkpoint as
`...:ckpt-step-N`. A local job that was running when the server stopped is marked failed, with the reason, when the
server starts again (its process dies with the server); a job SLURM runs (job_executors, --executor slurm) goes on,
and the server started again follows it.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from lorakit import methods
from lorakit.core.runs import RunFolder, holds_adapter, logged_error
from lorakit.models.adapters import AdapterError
from lorakit.server import job_command
from lorakit.server.api_errors import APIError, without_paths
from lorakit.server.job_executors import LocalExecutor, LocalHandle, SlurmExecutor, SlurmHandle
from lorakit.server.job_slots import Slots
from lorakit.server.store import new_id

log = logging.getLogger("lorakit.server")
FINAL = {"succeeded", "failed", "cancelled"}


def _progress(run_dir: Path) -> list[dict]:
    """The complete lines of a run's progress.jsonl (the trainer may be writing the last one)."""
    path = RunFolder(run_dir).progress
    text = path.read_text() if path.is_file() else ""
    return [json.loads(line) for line in text[: text.rfind("\n") + 1].splitlines() if line.strip()]


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


# OpenAI's names for the trainer's logged values: in the job's metric events and its checkpoints' metrics (DPO's
# implicit rewards, which OpenAI does not publish, named the same way: train_/valid_ and TRL's name)
METRICS = (("train_loss", "loss"), ("train_mean_token_accuracy", "mean_token_accuracy"), ("valid_loss", "eval_loss"),
           ("valid_mean_token_accuracy", "eval_mean_token_accuracy"), ("train_reward_mean", "reward"),
           ("valid_reward_mean", "eval_reward"),
           *((f"{split}_rewards_{what}", f"{prefix}rewards/{what}") for split, prefix in (("train", ""), ("valid", "eval_"))
             for what in ("chosen", "rejected", "accuracies", "margins")))


@dataclass
class Running:
    """A job's training process (here or on SLURM), the GPUs it holds, and how far its progress has been read."""

    job_id: str
    handle: LocalHandle | SlurmHandle
    gpus: list[str]
    seen_lines: int = 0
    step_metrics: dict = field(default_factory=dict)  # the values logged so far at the step the job is at


class JobRunner:
    def __init__(self, state, *, model_overrides: list[str], slots: Slots | None = None,
                 executor: LocalExecutor | SlurmExecutor | None = None, poll_s: float = 0.5):
        self.state, self.store = state, state.store
        self.model_overrides, self.poll_s = model_overrides, poll_s
        self.slots = slots or Slots(gpus=[])
        self.executor = executor or LocalExecutor()
        self.running: dict[str, Running] = {}
        self._stop = threading.Event()
        self._lock = threading.RLock()
        self._thread = threading.Thread(target=self._loop, name="lorakit-jobs", daemon=True)

    # lifecycle
    def start(self) -> None:
        self._recover()
        self._thread.start()

    def stop(self) -> None:
        """Server shutdown: a running job is stopped and marked failed (it cannot finish without the server)."""
        self._stop.set()
        self._thread.join(timeout=10)
        with self._lock:
            for run in list(self.running.values()):
                if isinstance(run.handle, SlurmHandle):  # SLURM runs it on: the next server follows it (_recover)
                    log.info("job %s goes on as SLURM job %s", run.job_id, run.handle.ref["slurm_job_id"])
                    continue
                self._kill(run)
                self._fail(run.job_id, "server_stopped", "the server was stopped while this job was running; "
                           "create the job again")

    def _recover(self) -> None:
        """Jobs left running or validating by a server that died: a SLURM job still held is followed on; the others
        fail with the reason (a local child died with the server). Succeeded jobs' models are served."""
        for body in self.store.jobs():
            body, private = self.store.job(body["id"])
            if body["status"] == "succeeded":
                self._serve(body)
            elif body["status"] == "running" and (handle := self.executor.attach(private)) is not None:
                self.running[body["id"]] = Running(body["id"], handle, [], seen_lines=self._reported(body["id"]))
                self.store.add_event(body["id"], f"The server restarted; following SLURM job {handle.ref['slurm_job_id']}")
            elif body["status"] in {"running", "validating_files"}:
                if _alive(private.get("pid")):
                    try:
                        os.killpg(private["pid"], signal.SIGKILL)
                    except OSError:
                        pass
                step = self._last_step(body["id"])
                self._fail(body["id"], "server_restarted",
                           f"the server stopped while this job was {body['status'].replace('_', ' ')}"
                           + (f" (at step {step[0]} of {step[1]})" if step else "") + "; create the job again")

    # the work loop
    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._tick()
            except Exception:  # noqa: BLE001 - one broken job must not stop the queue
                log.exception("job runner")
            self._stop.wait(self.poll_s)

    def _tick(self) -> None:
        with self._lock:
            for body in reversed(self.store.jobs()):  # oldest first
                if body["status"] == "validating_files":
                    self._validate(body)
            for run in list(self.running.values()):
                self._follow(run)
            for body in [b for b in reversed(self.store.jobs()) if b["status"] == "queued"]:  # in order: none overtakes
                if not self._launch(body):
                    break

    def _validate(self, body: dict) -> None:
        for param in ("training_file", "validation_file"):
            file_id = body.get(param)
            if not file_id:
                continue
            meta = self.store.file(file_id)
            if meta is None or not self.store.file_path(file_id).is_file():
                return self._fail(body["id"], f"invalid_{param}", f"{param} {file_id} was deleted", param=param)
            if meta["status"] == "error":
                return self._fail(body["id"], f"invalid_{param}",
                                  f"The job failed due to an invalid {param.replace('_', ' ')}. {meta['status_details']}",
                                  param=param)
            wrong = job_command.file_problem(body, meta, self.store.file_path(file_id))
            if wrong:
                return self._fail(body["id"], f"invalid_{param}", f"The job failed due to an invalid "
                                  f"{param.replace('_', ' ')}. {meta['filename']} {wrong}", param=param)
        self.store.add_event(body["id"], "Files validated, moving job to queued state")
        self._set(body["id"], status="queued")

    def _command(self, body: dict, run_dir: Path, gpus: int = 0) -> list[str]:
        _, private = self.store.job(body["id"])
        validation = self.store.file_path(body["validation_file"]) if body.get("validation_file") else None
        return job_command.command(body, private.get("init_from"), run_dir,
                                   training_file=self.store.file_path(body["training_file"]), validation_file=validation,
                                   model_overrides=self.model_overrides, learning_rate=self.state.learning_rate,
                                   base_model=self.state.registry.model_name, gpus=gpus)

    def _launch(self, body: dict) -> bool:
        """Start a queued job where its GPUs are free; False: it waits (no room yet)."""
        gpus = self.slots.take(body["id"], self.slots.need(body))
        if gpus is None:
            return False
        run_dir = self.store.run_dir(body["id"])
        run_dir.mkdir(parents=True, exist_ok=True)
        env = {} if "WANDB_MODE" in os.environ else {"WANDB_MODE": "disabled"}  # over the job's own environment
        if self.slots.gpus:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
        if self.slots.threads() and self.executor.name == "local":  # jobs side by side share the cores
            env.update({name: str(self.slots.threads()) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
                        if name not in os.environ})
        try:
            handle = self.executor.start(body["id"], self._command(body, run_dir, len(gpus)), env,
                                         RunFolder(run_dir).log, run_dir)
        except BaseException:
            self.slots.give(body["id"])  # the job stays queued; its GPUs are free again
            raise
        # a resumed job: its earlier steps are events already
        self.running[body["id"]] = Running(body["id"], handle, gpus, seen_lines=len(_progress(run_dir)))
        self._set(body["id"], status="running", private={**handle.ref, "run_dir": str(run_dir), "gpus": gpus})
        where = (f" as SLURM job {handle.ref['slurm_job_id']}" if "slurm_job_id" in handle.ref
                 else f" on GPU {','.join(gpus)}" if gpus else "")
        self.store.add_event(body["id"], "Fine-tuning job started" + where)
        log.info("job %s started%s: %s", body["id"], where, run_dir)
        return True

    def _follow(self, run: Running) -> None:
        job_id = run.job_id
        lines = _progress(self.store.run_dir(job_id))
        for line in lines[run.seen_lines:]:
            metrics = {name: line[key] for name, key in METRICS if key in line}
            if not metrics:
                continue
            if run.step_metrics.get("step") != line["step"]:  # a step's later lines (validation) carry its earlier
                run.step_metrics = {"step": line["step"]}
            run.step_metrics.update(metrics)
            data = {"step": line["step"], "total_steps": line["max_steps"], **run.step_metrics}
            text = ", ".join(f"{k}={v:.4f}" for k, v in data.items() if k not in {"step", "total_steps"})
            self.store.add_event(job_id, f"Step {line['step']}/{line['max_steps']}: {text}", data=data, kind="metrics")
        run.seen_lines = len(lines)
        code = run.handle.poll()
        if code is None:
            return
        self._release(run)
        body, _ = self.store.job(job_id)
        if body["status"] in {"cancelled", "paused"}:
            return
        adapter = RunFolder(self.store.run_dir(job_id)).adapter
        if code == 0 and holds_adapter(adapter):
            self._succeed(body)
        else:
            self._fail(job_id, "training_failed", self._error_line(job_id, code))

    def _error_line(self, job_id: str, code: int) -> str:
        log_file = RunFolder(self.store.run_dir(job_id)).log
        detail = logged_error(log_file, tail=5) or ""  # lorakit's own message with the fix, else the log's last lines
        body, _ = self.store.job(job_id)
        for param in ("training_file", "validation_file"):  # the uploads by their ids, as the client knows them
            if body.get(param):
                detail = detail.replace(str(self.store.file_path(body[param])), body[param])
        return (f"training exited with code {code}: {without_paths(detail)[-1500:]} (the whole log: train.log in the "
                "job's run folder on the server)")

    def _succeed(self, body: dict) -> None:
        folder = RunFolder(self.store.run_dir(body["id"]))
        hp = body["hyperparameters"]
        report = json.loads(folder.data_report.read_text()) if folder.data_report.is_file() else {}
        history = json.loads(folder.train_log.read_text()) if folder.train_log.is_file() else []
        epochs = next((h["epoch"] for h in reversed(history) if "epoch" in h), None)
        per_epoch = report.get("tokens", {}).get("per_epoch")
        config = (yaml.safe_load(folder.config.read_text()) or {}) if folder.config.is_file() else {}
        batch = config.get("train", {}).get("per_device_train_batch_size", hp["batch_size"])
        batch = methods.get(body["method"]["type"]).reported_batch(config, batch)  # as OpenAI counts it
        # "auto" resolved as OpenAI reports it: the epochs lorakit decided from the file's size, its batch, its rate
        resolved = {"n_epochs": round(epochs) if epochs else hp["n_epochs"], "batch_size": batch,
                    "learning_rate_multiplier": 1.0}
        model = f"ft:{self.state.registry.base.id}:{body.get('user_provided_suffix') or 'lorakit'}:{body['id']}"
        result = self._result_file(body["id"], history)
        self._set(body["id"], status="succeeded", fine_tuned_model=model, finished_at=int(time.time()),
                  trained_tokens=int(per_epoch * epochs) if per_epoch and epochs else None, result_files=[result],
                  hyperparameters={**hp, **{k: v for k, v in resolved.items() if hp.get(k) == "auto"}})
        body, _ = self.store.job(body["id"])
        self._serve(body)
        self.store.add_event(body["id"], f"New fine-tuned model created: {model}")
        self.store.add_event(body["id"], "The job has successfully completed")
        log.info("job %s succeeded: %s", body["id"], model)

    def _result_file(self, job_id: str, history: list[dict]) -> str:
        """OpenAI's results CSV (step, train_loss, valid_loss; the mean rewards of a reinforcement job), as a file of
        purpose fine-tune-results."""
        columns = [("train_loss", "loss"), ("valid_loss", "eval_loss")]
        columns += [(n, k) for n, k in METRICS if n.endswith("reward_mean") and any(k in h for h in history)]
        rows = [",".join(["step", *(n for n, _ in columns)])]
        rows += [",".join([str(h["step"]), *(str(h.get(k, "")) for _, k in columns)]) for h in history
                 if any(k in h for _, k in columns)]
        file_id = new_id("file")
        data = ("\n".join(rows) + "\n").encode()
        self.store.file_path(file_id).write_bytes(data)
        self.store.put_file({"id": file_id, "object": "file", "bytes": len(data), "created_at": int(time.time()),
                             "filename": "step_metrics.csv", "purpose": "fine-tune-results", "status": "processed",
                             "status_details": None, "expires_at": None})
        return file_id

    def checkpoints(self, body: dict) -> list[dict]:
        """The saved epoch checkpoints, newest first, as OpenAI's checkpoint objects."""
        folder = RunFolder(self.store.run_dir(body["id"]))
        if body["status"] != "succeeded" or not folder.checkpoints.is_dir():
            return []
        history = json.loads(folder.train_log.read_text()) if folder.train_log.is_file() else []
        out = []
        for path in sorted(folder.checkpoints.glob("checkpoint-*"), key=lambda p: -int(p.name.split("-")[1])):
            step = int(path.name.split("-")[1])
            at = [h for h in history if h.get("step") == step] or [h for h in history if h.get("step", 0) <= step]
            metrics = {"step": float(step)}
            for name, key in METRICS:
                if found := [h[key] for h in at if key in h]:
                    metrics[name] = found[-1]
            if "valid_loss" in metrics:
                metrics["full_valid_loss"] = metrics["valid_loss"]  # the whole validation split is evaluated
            if "valid_mean_token_accuracy" in metrics:
                metrics["full_valid_mean_token_accuracy"] = metrics["valid_mean_token_accuracy"]
            out.append({"object": "fine_tuning.job.checkpoint", "id": f"ftckpt-{body['id'][6:]}-{step}",
                        "created_at": int(path.stat().st_mtime), "fine_tuning_job_id": body["id"],
                        "fine_tuned_model_checkpoint": f"{body['fine_tuned_model']}:ckpt-step-{step}",
                        "metrics": metrics, "step_number": step})
        return out

    def _serve(self, body: dict) -> None:
        folder = RunFolder(self.store.run_dir(body["id"]))
        deleted = self.store.deleted_models()
        try:
            if body["fine_tuned_model"] not in deleted:
                self.state.registry.add(body["fine_tuned_model"], folder.adapter, body.get("finished_at"))
            for ckpt in self.checkpoints(body):
                path = folder.checkpoint(ckpt["step_number"])
                if holds_adapter(path) and ckpt["fine_tuned_model_checkpoint"] not in deleted:
                    self.state.registry.add(ckpt["fine_tuned_model_checkpoint"], path, ckpt["created_at"])
        except AdapterError as err:
            log.warning("job %s: its model is not served: %s", body["id"], err)

    # state changes
    def cancel(self, job_id: str) -> dict:
        with self._lock:
            body, _ = self.store.job(job_id)
            if body["status"] in FINAL:
                return body
            if job_id in self.running:
                self._kill(self.running[job_id])
            self._set(job_id, status="cancelled", finished_at=int(time.time()))
            self.store.add_event(job_id, "Fine-tuning job cancelled")
            return self.store.job(job_id)[0]

    def pause(self, job_id: str) -> dict:
        """A running (or waiting) job stops; its run folder and checkpoints stay, and resume() continues it from
        its last checkpoint (lorakit.training.resume: the same command goes on where it was saved).

        Raises:
            APIError: 400 for a job that is not running, queued or validating its files.
        """
        with self._lock:
            body, _ = self.store.job(job_id)
            if body["status"] not in {"running", "queued", "validating_files"}:
                raise APIError(400, f"job {job_id} is {body['status']}; only a running or queued job can be paused",
                               param="fine_tuning_job_id", code="invalid_job_state")
            step = self._last_step(job_id) if job_id in self.running else None
            if job_id in self.running:
                self._kill(self.running[job_id])
            self._set(job_id, status="paused", private={"paused_from": body["status"]})
            self.store.add_event(job_id, "Fine-tuning job paused" + (f" at step {step[0]} of {step[1]}; it will go "
                                 "on from its last checkpoint" if step else ""))
            return self.store.job(job_id)[0]

    def resume(self, job_id: str) -> dict:
        """A paused job is queued again (a running job first runs to its end); it continues from its checkpoint.

        Raises:
            APIError: 400 for a job that is not paused.
        """
        with self._lock:
            body, private = self.store.job(job_id)
            if body["status"] != "paused":
                raise APIError(400, f"job {job_id} is {body['status']}; only a paused job can be resumed",
                               param="fine_tuning_job_id", code="invalid_job_state")
            back = "validating_files" if private.get("paused_from") == "validating_files" else "queued"
            self._set(job_id, status=back)
            self.store.add_event(job_id, "Fine-tuning job resumed")
            return self.store.job(job_id)[0]

    def _kill(self, run: Running) -> None:
        """Stop a job (its process group here, scancel on SLURM), and free its GPUs."""
        run.handle.stop()
        self._release(run)

    def _release(self, run: Running) -> None:
        self.running.pop(run.job_id, None)
        self.slots.give(run.job_id)

    def _fail(self, job_id: str, code: str, message: str, param: str | None = None) -> None:
        self._set(job_id, status="failed", finished_at=int(time.time()),
                  error={"code": code, "message": message, "param": param})
        self.store.add_event(job_id, message, level="error")
        log.warning("job %s failed: %s", job_id, message)

    def _set(self, job_id: str, private: dict | None = None, **changes) -> None:
        body, old = self.store.job(job_id)
        self.store.put_job({**body, **changes}, {**old, **(private or {})})

    def _reported(self, job_id: str) -> int:
        """The progress lines already turned into events (a restarted server goes on after them)."""
        steps = [e["data"]["step"] for e in self.store.events(job_id) if e["type"] == "metrics"]
        lines = _progress(self.store.run_dir(job_id))
        return len([line for line in lines if steps and line["step"] <= max(steps)])

    def _last_step(self, job_id: str) -> tuple[int, int] | None:
        lines = _progress(self.store.run_dir(job_id))
        return (lines[-1]["step"], lines[-1]["max_steps"]) if lines else None
