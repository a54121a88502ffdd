"""One validation pass over a composed config (lorakit.config.compose composes it): the stages, each method's own
checks (lorakit.methods), train, lora, quant, model, data, backend and eval settings, and the engine.

`validate(cfg)` runs before any model loads and raises a single `ConfigError` that lists every problem
with its fix, so a user fixes a config in one go rather than one crash at a time.
"""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from lorakit import methods
from lorakit.config.compose import cuda_available
from lorakit.core.errors import ConfigError
from lorakit.core.fields import bad_number, config_fields, unknown_fields
from lorakit.core.paths import DATA_DIR
from lorakit.core.runs import ADAPTER_CONFIG, RunFolder, find_adapter, holds_adapter
from lorakit.data.formats import FORMATS
from lorakit.evaluation import grading
from lorakit.evaluation import judge as judges
from lorakit.evaluation.candidates import API
from lorakit.evaluation.graders.spec import GraderError
from lorakit.evaluation.metrics import check_names
from lorakit.inference.vllm_engine import problems as engine_problems

STAGES = ("prepare", "train", "evaluate", "merge")
LOGGERS = ("none", "wandb")


def _init_params(cls: type) -> set[str]:
    return {p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "kwargs")}


def _what_is(path: Path) -> str:
    """What a path that is not the file (or folder) expected is, for an error message."""
    if path.is_dir():
        return "a directory, not a file"
    if path.exists():
        return "not a regular file"
    return "not found" + ("" if path.parent.is_dir() else f" (no folder {path.parent})")


def _example_test_file(train: Path, test: Path) -> list[str]:
    """Own training data with a shipped example's test file (e.g. +experiment=quickstart data.train_file=mine.jsonl
    without data.test_file) would evaluate on the example task."""
    if test.resolve().is_relative_to(DATA_DIR.resolve()) and train.resolve().parent != test.resolve().parent:
        return [f"data.test_file: {test} is the test set of a shipped example ({test.parent.name}), while "
                f"data.train_file is your own {train}; set data.test_file=path/to/your/test.jsonl, or "
                "data.test_file=null to hold out data.test_fraction of your training file"]
    return []


def _check_stages(stages: list) -> list[str]:
    problems = [f"stages: unknown stage {s!r}; choose from {list(STAGES)}" for s in stages if s not in STAGES]
    if [s for s in STAGES if s in stages] != stages:
        problems.append(f"stages: {stages} is out of order; stages run as {list(STAGES)}, list them in that order")
    return problems


def _check_train(train: DictConfig, cuda: bool) -> list[str]:
    """trl.SFTConfig fields, their ranges (a run that would train nothing is refused), and what needs CUDA."""
    from trl import SFTConfig

    problems = unknown_fields("train", train.keys(), config_fields(SFTConfig), "trl.SFTConfig")
    if "output_dir" in train:
        problems.append("train.output_dir: lorakit sets it (run_dir/checkpoints); remove it and set hydra.run.dir")
    if train.get("report_to") not in (None, "none"):
        problems.append("train.report_to: lorakit sets it from the logger; use logger=wandb or logger=none instead")
    get = train.get
    problems += bad_number("train.learning_rate", get("learning_rate"), 0, above=True)
    for key in ("per_device_train_batch_size", "gradient_accumulation_steps", "per_device_eval_batch_size"):
        problems += bad_number(f"train.{key}", get(key, 1), 1, integer=True)
    problems += bad_number("train.num_train_epochs", get("num_train_epochs"), 0, null="decided from the data's size")
    problems += bad_number("train.max_steps", get("max_steps", -1), -1, integer=True)
    for key in ("warmup_steps", "weight_decay", "max_grad_norm"):
        problems += bad_number(f"train.{key}", get(key, 0), 0)
    problems += bad_number("train.logging_steps", get("logging_steps", 1), 0, above=True)
    problems += bad_number("train.save_steps", get("save_steps"), 0, above=True, null="decided from the run's length")
    problems += bad_number("train.save_total_limit", get("save_total_limit"), 1, integer=True, null="keep all")
    if get("num_train_epochs") == 0 and isinstance(get("max_steps", -1), int) and get("max_steps", -1) <= 0:
        problems.append("train.num_train_epochs=0 (and no train.max_steps) would train nothing; set it to the passes "
                        "over the data, or null to let lorakit decide from the data's size")
    if get("use_liger_kernel"):
        if not cuda:
            problems.append("train.use_liger_kernel: Liger's kernels are Triton GPU kernels and need CUDA; "
                            "set train.use_liger_kernel=false on this machine")
        elif importlib.util.find_spec("liger_kernel") is None:
            problems.append("train.use_liger_kernel: the liger-kernel package is not installed; "
                            "pip install -c constraints.txt -e .[cuda] (or set train.use_liger_kernel=false)")
    if get("activation_offloading") and not cuda:
        problems.append("train.activation_offloading: moves saved activations from GPU to CPU memory and needs CUDA; "
                        "remove it on this machine")
    for flag in ("bf16", "fp16"):
        if get(flag) and not cuda:
            problems.append(f"train.{flag}: mixed precision needs a CUDA GPU; set train.{flag}=null (fp32 on CPU)")
    return problems


def _check_method(cfg: DictConfig) -> list[str]:
    """method.name (a registered method) and its own settings (the method checks them); init_from a run folder or
    adapter."""
    method = cfg.get("method") or {}
    try:
        problems = methods.get(method.get("name", "supervised")).check(cfg)
    except methods.UnknownMethod as err:
        return [str(err)]
    if cfg.get("init_from") and cfg.get("backend", {}).get("name") == "openai":
        problems.append("init_from: a local adapter, which a hosted job cannot start from; with backend=openai set "
                        "backend.model=<the ft: model to continue from> instead")
    elif cfg.get("init_from") and find_adapter(cfg.init_from) is None:
        problems.append(f"init_from: {cfg.init_from} holds no {ADAPTER_CONFIG} (nor adapter/{ADAPTER_CONFIG}); set it "
                        "to a finished run's folder or its adapter folder")
    return problems


def _check_lora(lora: DictConfig) -> list[str]:
    from peft import LoraConfig

    problems = unknown_fields("lora", lora.keys(), config_fields(LoraConfig), "peft.LoraConfig")
    problems += bad_number("lora.r", lora.get("r", 8), 0, integer=True, above=True)
    problems += bad_number("lora.lora_alpha", lora.get("lora_alpha", 8), 0, above=True)
    problems += bad_number("lora.lora_dropout", lora.get("lora_dropout", 0.0), 0, high=1)
    return problems


def _check_quant(quant_cfg: DictConfig, cuda: bool) -> list[str]:
    from transformers import BitsAndBytesConfig

    quant = OmegaConf.to_container(quant_cfg, resolve=True)
    problems = unknown_fields("quant", quant.keys(), _init_params(BitsAndBytesConfig), "transformers.BitsAndBytesConfig")
    four, eight = bool(quant.get("load_in_4bit")), bool(quant.get("load_in_8bit"))
    if four and eight:
        problems.append("quant: load_in_4bit and load_in_8bit are both set; pick one: quant=nf4 or quant=int8")
    if (four or eight) and not cuda:
        problems.append(
            f"quant: {'4' if four else '8'}-bit quantization (bitsandbytes) needs a CUDA GPU and none was found; "
            "add quant=none to train in full precision on this machine"
        )
    return problems


def _check_model(model: DictConfig) -> list[str]:
    problems = []
    name = str(model.get("name_or_path") or "")
    if not name:
        problems.append("model.name_or_path: empty; set a hub id or a local folder")
    elif name.startswith(("/", "./", "../", "~")) and not Path(name).expanduser().is_dir():
        found = Path(name).expanduser()
        problems.append(f"model.name_or_path: {name} is {'a file' if found.exists() else _what_is(found)}; give the "
                        "folder holding the model's config.json and weights, or a hub id such as "
                        "meta-llama/Llama-3.1-8B-Instruct")
    if bool(model.get("gguf_package")) != bool(model.get("gguf_file")):
        problems.append("model.gguf_package and model.gguf_file: set both (embedded GGUF model) or neither")
    return problems


def _check_files(data: DictConfig, stages: list, run_dir: Path) -> list[str]:
    """The data files the stages will read exist, are files, and are not the same file twice."""
    problems = []
    # Evaluating without prepare reads the test set from data.test_file, or splits it off data.train_file.
    evaluates_unprepared = "evaluate" in stages and not RunFolder(run_dir).split("test").is_file()
    if "prepare" in stages or (evaluates_unprepared and data.test_file is None):
        if OmegaConf.is_missing(data, "train_file"):
            problems.append("data.train_file: required; add data.train_file=path/to/train.jsonl")
        elif not Path(data.train_file).is_file():
            problems.append(f"data.train_file: {data.train_file} is {_what_is(Path(data.train_file))}; give a data file "
                            f"(relative to {Path.cwd()})")
    if "prepare" in stages or evaluates_unprepared:
        if data.test_file is not None and not Path(data.test_file).is_file():
            problems.append(f"data.test_file: {data.test_file} is {_what_is(Path(data.test_file))}; give a data file or "
                            "set data.test_file=null")
        elif data.test_file is not None and not OmegaConf.is_missing(data, "train_file") and Path(
                data.test_file).resolve() == Path(data.train_file).resolve():
            problems.append("data.test_file: the same file as data.train_file, so the test would measure memorisation; "
                            "set data.test_file=null to hold out data.test_fraction of it")
        elif data.test_file is not None and not OmegaConf.is_missing(data, "train_file"):
            problems += _example_test_file(Path(data.train_file).resolve(), Path(data.test_file).resolve())
    if data.get("validation_file") and not Path(data.validation_file).is_file():
        problems.append(f"data.validation_file: {data.validation_file} is {_what_is(Path(data.validation_file))}; give "
                        "a data file, or set data.validation_file=null to hold out data.val_fraction of the training file")
    return problems


def _check_data(data: DictConfig) -> list[str]:
    problems = []
    if data.format not in FORMATS:
        problems.append(f"data.format: {data.format!r} is not a format lorakit reads; choose from {list(FORMATS)}")
    problems += bad_number("data.val_fraction", data.get("val_fraction"), 0, high=1, null="decided from the size")
    problems += bad_number("data.test_fraction", data.get("test_fraction"), 0, high=1)
    problems += bad_number("data.max_length", data.max_length, 16, integer=True)
    for key, choices in (("too_long", ("drop", "truncate", "error")), ("duplicates", ("drop", "keep"))):
        if data.get(key) not in choices:
            problems.append(f"data.{key}: {data.get(key)!r} is not one of {', '.join(choices)}")
    if not isinstance(data.get("strict"), bool):
        problems.append(f"data.strict: must be true or false, got {data.get('strict')!r}")
    if data.get("num_proc") is not None and (not isinstance(data.num_proc, int) or data.num_proc < 1):
        problems.append(f"data.num_proc: must be null (automatic) or a positive integer, got {data.num_proc!r}")
    return problems


def _check_run(cfg: DictConfig, stages: list, run_dir: Path) -> list[str]:
    """What the stages need from earlier runs (prepared data, an adapter), and the backend."""
    problems = []
    if "train" in stages and "prepare" not in stages and not RunFolder(run_dir).tokenized("train").is_dir():
        problems.append(f"stages: train without prepare needs prepared data in {run_dir}/data; add prepare to stages "
                        "or set hydra.run.dir to an earlier run's folder")
    if "train" in stages and cfg.get("adapter_dir"):
        problems.append("adapter_dir: only for evaluating an existing adapter; remove it or drop the train stage")
    backend = cfg.get("backend", {}).get("name", "local")
    if backend not in ("local", "openai"):
        problems.append(f"backend: {backend!r} is unknown; use backend=local (this machine) or backend=openai")
    if backend == "openai" and "merge" in stages:
        problems.append("stages: merge needs the adapter's weights, which a hosted fine-tune does not give; drop merge")
    if backend == "openai" and "evaluate" in stages and "train" not in stages:
        problems.append("stages: with backend=openai, evaluate follows train in the same run; to evaluate an existing "
                        "hosted model use python -m lorakit.compare candidates=[openai:<base>,openai:<ft model>]")
    elif ("evaluate" in stages or "merge" in stages) and "train" not in stages:
        adapter = Path(cfg.adapter_dir or RunFolder(run_dir).adapter)
        if not holds_adapter(adapter):
            problems.append(f"adapter_dir: {adapter} holds no {ADAPTER_CONFIG}; set adapter_dir=path/to/run/adapter")
    if cfg.logger.type not in LOGGERS:
        problems.append(f"logger.type: {cfg.logger.type!r} is unknown; use logger=none or logger=wandb")
    return problems


def _check_eval(ev: DictConfig, stages: list, quant: DictConfig) -> list[str]:
    problems = check_names(ev.metrics or [])
    if "evaluate" in stages:
        problems += engine_problems(ev.get("engine") or "auto", quant=OmegaConf.to_container(quant, resolve=True),
                                    settings=OmegaConf.to_container(ev.vllm, resolve=True) if ev.get("vllm") else None)
    if ev.get("fewshot") is not None and (not isinstance(ev.fewshot, int) or ev.fewshot < 1):
        problems.append(f"eval.fewshot: the number of training examples to prompt with (a positive integer) or null, "
                        f"got {ev.fewshot!r}")
    problems += bad_number("eval.batch_size", ev.batch_size, 1, integer=True)
    if ev.get("graders"):
        try:
            problems += grading.check_can_run(grading.load(ev.graders))
        except GraderError as err:
            problems.append(str(err))
    judge = ev.get("judge")
    if "evaluate" in stages and judge is not None and judge.model:

        try:
            if not str(judge.model).startswith(API):
                judges.model_config(str(judge.model))
        except ValueError as err:  # CandidateError
            problems.append(str(err))
        if judge.mode not in {"pointwise", "pairwise", "both"}:
            problems.append(f"eval.judge.mode={judge.mode!r}: use pointwise, pairwise or both")
    return problems


def validate(cfg: DictConfig, *, cuda: bool | None = None) -> None:
    """Check the whole config before any model loads; raise one ConfigError listing every problem and its fix.

    Args:
        cfg: the composed Hydra config.
        cuda: whether a CUDA GPU is present (detected when None; tests pass it explicitly).

    Raises:
        ConfigError: with one line per problem.
    """
    cuda = cuda_available() if cuda is None else cuda
    stages, run_dir = list(cfg.stages), Path(cfg.run_dir)
    problems = (_check_stages(stages) + _check_method(cfg) + _check_train(cfg.train, cuda) + _check_lora(cfg.lora)
                + _check_quant(cfg.quant, cuda) + _check_model(cfg.model) + _check_data(cfg.data)
                + _check_files(cfg.data, stages, run_dir) + _check_run(cfg, stages, run_dir)
                + _check_eval(cfg.eval, stages, cfg.quant))
    if problems:
        raise ConfigError("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))


