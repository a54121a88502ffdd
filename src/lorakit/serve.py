"""`python -m lorakit.serve`: an OpenAI-compatible server for a base model and its adapters, with OpenAI's files
and fine-tuning-jobs API backed by lorakit's trainer.

Usage:
    python -m lorakit.serve                                        # SmolLM2 on 127.0.0.1:8000
    python -m lorakit.serve --adapters outputs                     # and every run under outputs/
    LORAKIT_API_KEY=... python -m lorakit.serve --host 0.0.0.0     # another address needs a key

Then, with the official SDK: `OpenAI(base_url="http://127.0.0.1:8000/v1", api_key=<the key, or any text>)`:
client.chat.completions.create(model=..., messages=...), client.files.create(file=open("train.jsonl", "rb"),
purpose="fine-tune"), client.fine_tuning.jobs.create(training_file=..., model="smollm2-135m"), ... Jobs, files and
their events are kept in --data-dir (default outputs/serve).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from omegaconf import OmegaConf

from lorakit.config.compose import compose, cuda_available, model_overrides, register_resolvers
from lorakit.core.errors import ConfigError, exit_2_on_user_error
from lorakit.inference import engines
from lorakit.inference.scheduler import Scheduler
from lorakit.models.loading import load_base
from lorakit.server import job_slots
from lorakit.server import tools as tool_syntax
from lorakit.server.app import State, create_app
from lorakit.server.browsers import BrowserRules
from lorakit.server.job_executors import LocalExecutor, SlurmExecutor
from lorakit.server.job_runner import JobRunner
from lorakit.server.registry import Registry, find_adapters, find_aliases
from lorakit.server.security import check_bind, load_key
from lorakit.server.store import Store
from lorakit.server.vllm_proxy import VllmProxy
from lorakit.sweeps import gpus

log = logging.getLogger("lorakit.server")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m lorakit.serve", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; others need a key)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                   help="a web page's origin (e.g. http://localhost:3000, or *) whose requests are served, with CORS "
                        "headers; repeat for more. Default: none but the server's own (any other page's requests "
                        "get 403)")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="a name clients reach the server by, beyond loopback names, IP addresses and --host "
                        "(or * for any); other Host headers get 403, which stops DNS rebinding")
    p.add_argument("--model", default="smollm2-135m",
                   help="base model: a conf/model name, a local folder or a hub id; served under that name (a folder "
                        "under its own name), or name=model to choose the id clients use")
    p.add_argument("--quant", default=None,
                   help="conf/quant name: none, nf4 or int8 (the last two need CUDA); default: the model config's own")
    p.add_argument("--adapters", nargs="*", default=[],
                   help="run folders, adapter folders, checkpoints or folders of runs to serve; name=path to name one")
    p.add_argument("--aliases", nargs="*", default=[],
                   help="folders python -m lorakit.migrate wrote: each migrated job's old ft: id is served from the "
                        "local adapter its run.sh trained")
    p.add_argument("--data-dir", default="outputs/serve", help="where files, jobs and their runs are kept")
    p.add_argument("--api-key-file", default=None, help="a file whose first line is the key (else LORAKIT_API_KEY)")
    p.add_argument("--engine", default="auto", choices=["auto", "lorakit", "vllm"],
                   help="what decodes chat, completions and responses: lorakit's own engine, or vLLM's server run "
                        "beside it (scripts/setup_vllm.sh); auto: vLLM on CUDA when it is installed")
    p.add_argument("--vllm-python", default=None, help="a Python with vLLM (default: $LORAKIT_VLLM_PYTHON, "
                                                          "./.venv-vllm, or `vllm` on PATH)")
    p.add_argument("--vllm-gpu-memory", type=float, default=0.5,
                   help="the share of GPU memory vLLM takes (the rest is left to the fine-tuning jobs)")
    p.add_argument("--job-gpus", default="all",
                   help="the GPUs fine-tuning jobs may use: all (every GPU the server sees), none, or ids such as 1,2 "
                        "(serving decodes on the first GPU the server sees; leave it out to keep it for serving)")
    p.add_argument("--gpus-per-job", type=int, default=1,
                   help="GPUs a job holds (a job's metadata {\"lorakit_gpus\": \"N\"} asks for N); several: DDP")
    p.add_argument("--max-jobs", type=int, default=None,
                   help="jobs running at once (default: as many as the job GPUs hold; 1 without GPUs)")
    p.add_argument("--executor", default="local", choices=["local", "slurm"],
                   help="where jobs train: here, or each as a SLURM job (submitit; --data-dir on a file system the "
                        "nodes share)")
    p.add_argument("--slurm-partition", default=None)
    p.add_argument("--slurm-account", default=None)
    p.add_argument("--slurm-time-min", type=int, default=1440, help="a SLURM job's time limit in minutes")
    p.add_argument("--slurm-gpus-per-job", type=int, default=1, help="GPUs per SLURM job (0 on a CPU partition)")
    p.add_argument("--slurm-cpus-per-job", type=int, default=None)
    p.add_argument("--slurm-mem-gb", type=float, default=None)
    p.add_argument("--slurm-option", action="append", default=[], metavar="KEY=VALUE",
                   help="any other sbatch option, e.g. qos=high (repeatable)")
    p.add_argument("--max-batch", type=int, default=32,
                   help="rows decoded together at most (requests join the running batch at each decoding step)")
    p.add_argument("--max-tokens", type=int, default=1024, help="a completion's token limit when the request sets none")
    p.add_argument("--max-request-mb", type=float, default=16, help="largest request body (413 above)")
    p.add_argument("--max-upload-mb", type=float, default=512, help="largest file upload (413 above)")
    p.add_argument("--log-level", default="info")
    return p.parse_args(argv)


def base_id(spec: str) -> tuple[str, str]:
    """(the id the base model is served under, the model as conf/model name, folder or hub id): `name=model`
    names it; a local folder goes by the folder's name (its path stays an alias); else the spec itself."""
    if "=" in spec and not Path(spec).expanduser().exists():
        name, _, model = spec.partition("=")
        return name, model
    folder = Path(spec).expanduser()
    return (folder.resolve().name if folder.is_dir() else spec), spec


def build(args: argparse.Namespace, key: str | None):
    """Load the base model's tokenizer and config, find the adapters, open the store: the app, ready to run."""
    served_id, args.model = base_id(args.model)
    cuda = cuda_available()
    visible = gpus.visible() if cuda else []
    slots = _slots(args, visible)  # a setting that cannot work is refused before the model loads
    overrides = model_overrides(args.model, args.quant)
    composed = compose(*overrides)  # as python -m train composes it: the model's quantization and learning rate
    quant = OmegaConf.to_container(composed.quant, resolve=True)
    if quant and not cuda:
        raise ConfigError(f"--model {args.model} is loaded quantized by its config, which needs a CUDA GPU; add "
                          "--quant none on this machine")
    base = load_base(composed.model)
    registry = Registry(served_id, [args.model, base.name], base.name, base.config)
    for spec in args.adapters:
        for name, folder in find_adapters(spec):
            registry.add(name, folder)
    for folder in args.aliases:
        for name, adapter in find_aliases(Path(folder)):
            registry.add(name, adapter)
    engine = engines.make("lorakit", base, quant=quant, batch_size=args.max_batch, cuda=cuda)
    state = State(registry=registry, tokenizer=base.tokenizer, eot_ids=base.eot_ids,
                  scheduler=Scheduler(engine, max_batch=args.max_batch),
                  store=Store(Path(args.data_dir)), context=base.context, default_max_tokens=args.max_tokens,
                  learning_rate=float(composed.train.learning_rate))
    state.runner = JobRunner(state, model_overrides=overrides, slots=slots, executor=_executor(args))
    state.proxy = _proxy(args, base, registry, quant, cuda, job_rank=int(composed.lora.r))
    job_slots.check_split(state.runner.slots.gpus, visible,
                          vllm_share=args.vllm_gpu_memory if state.proxy is not None and cuda else None)
    browsers = BrowserRules(bind=args.host, hosts=frozenset(args.allow_host), origins=frozenset(args.allow_origin))
    return create_app(state, key=key, max_body=int(args.max_request_mb * 2**20),
                      max_upload=int(args.max_upload_mb * 2**20), browsers=browsers)


def _executor(args: argparse.Namespace) -> LocalExecutor | SlurmExecutor:
    if args.executor == "local":
        return LocalExecutor()
    options = dict(o.split("=", 1) for o in args.slurm_option if "=" in o)
    if len(options) != len(args.slurm_option):
        raise ConfigError(f"--slurm-option takes KEY=VALUE (an sbatch option without its dashes), not "
                          f"{[o for o in args.slurm_option if '=' not in o][0]!r}")
    return SlurmExecutor(partition=args.slurm_partition, account=args.slurm_account, time_min=args.slurm_time_min,
                         gpus=args.slurm_gpus_per_job, cpus=args.slurm_cpus_per_job, mem_gb=args.slurm_mem_gb,
                         options=options)


def _slots(args: argparse.Namespace, visible: list[str]) -> job_slots.Slots:
    """Where the fine-tuning jobs run (server/job_slots.py): their GPUs, and how many at once (on SLURM: as many as
    --max-jobs, default all; SLURM queues them)."""
    if args.executor == "slurm":
        return job_slots.Slots([], max_jobs=args.max_jobs or 10_000)
    return job_slots.Slots(job_slots.parse_gpus(args.job_gpus, visible), per_job=args.gpus_per_job,
                           max_jobs=args.max_jobs)


def _proxy(args: argparse.Namespace, base, registry: Registry, quant: dict, cuda: bool, *,
           job_rank: int) -> VllmProxy | None:
    """vLLM behind the OpenAI routes (--engine), given the adapters served from the start and room for the rank
    the jobs train at (adapters loaded later cannot raise it); None: lorakit's engine decodes."""
    settings = {"python": args.vllm_python, "gpu_memory_utilization": args.vllm_gpu_memory if cuda else None,
                "max_lora_rank": job_rank,
                "tool_call_parser": tool_syntax.vllm_parser(getattr(base.tokenizer, "chat_template", None))}
    engine = engines.make(args.engine, base, quant=quant, batch_size=args.max_batch, cuda=cuda, settings=settings)
    if engine.name != "vllm":
        return None
    for served in registry.all():
        if served.adapter is not None:
            engine.add_adapter(served.internal, served.adapter)
    return VllmProxy(engine)


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    register_resolvers()
    with exit_2_on_user_error(log):
        key = load_key(args.api_key_file)
        check_bind(args.host, key)
        app = build(args, key)
    log.info("lorakit.serve on http://%s:%d/v1 (%s)", args.host, args.port,
             "API key required" if key else "no API key: loopback only")
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=True)


if __name__ == "__main__":
    main()
