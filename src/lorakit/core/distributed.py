"""One run on several GPUs (or CPU processes) through `accelerate launch` (or torchrun): DDP, or FSDP for QLoRA.

    accelerate launch --multi_gpu --num_processes 4 -m train +experiment=x             # DDP, one process per GPU
    accelerate launch --config_file conf/accelerate/fsdp_qlora.yaml -m train model=llama-3.1-8b quant=nf4_fsdp

Every process runs the same command. The first process (rank 0) checks and prepares the data and decides the run
folder; the others wait, then all train together (the Trainer splits each global batch between them, so the
effective batch is per_device_train_batch_size x gradient_accumulation_steps x processes); rank 0 alone saves the
adapter, evaluates, merges and logs.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

log = logging.getLogger(__name__)


def free_port() -> int:
    """A TCP port free on loopback now: a run's rendezvous (accelerate's --main_process_port), or a child server's."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def fsdp() -> bool:
    """accelerate launch with an FSDP config (it sets ACCELERATE_USE_FSDP for the processes)."""
    return os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"


def start(cuda: bool, run_dir: Path) -> Path:
    """In a multi-process run: join the process group (NCCL on GPUs, gloo on CPU), put each process on its own GPU,
    quiet the log of all but rank 0, and return rank 0's run folder (each process's Hydra picked one from its own
    clock). Without one: `run_dir` unchanged."""
    if world_size() == 1:
        return run_dir
    import torch
    import torch.distributed as dist

    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    if not is_main():
        logging.getLogger("lorakit").setLevel(logging.WARNING)
    chosen = [str(run_dir)]
    dist.broadcast_object_list(chosen, src=0)
    if is_main():
        log.info("%d processes (%s) train this run together", world_size(), "NCCL" if cuda else "gloo")
    return Path(chosen[0])


def barrier() -> None:
    if world_size() > 1:
        import torch.distributed as dist

        dist.barrier()
