"""Config composition and validation: every shipped config composes, bad ones fail with every problem listed."""

from __future__ import annotations

import pytest

from helpers import compose_cfg
from lorakit.config.compose import redact
from lorakit.config.validation import validate
from lorakit.core.errors import ConfigError
from lorakit.core.paths import CONF_DIR

EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
MODELS = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_validates(experiment, tmp_path):
    cfg = compose_cfg(f"+experiment={experiment}", run_dir=tmp_path)
    validate(cfg, cuda=False)
    assert cfg.data.train_file.endswith(".jsonl")


@pytest.mark.parametrize("model", MODELS)
def test_every_model_composes_with_lora_targets(model, tmp_path):
    cfg = compose_cfg("+experiment=quickstart", f"model={model}", run_dir=tmp_path)
    assert list(cfg.lora.target_modules) == list(cfg.model.target_modules)
    validate(cfg, cuda=True)  # hub models default to nf4, which is valid on a GPU box


def test_gpu_models_default_to_nf4_and_say_how_to_run_on_cpu(tmp_path):
    cfg = compose_cfg("+experiment=quickstart", "model=llama-3.1-8b", run_dir=tmp_path)
    assert cfg.quant.load_in_4bit and cfg.quant.bnb_4bit_quant_type == "nf4"
    with pytest.raises(ConfigError, match="add quant=none"):
        validate(cfg, cuda=False)
    cfg = compose_cfg("+experiment=quickstart", "model=llama-3.1-8b", "quant=none", run_dir=tmp_path)
    validate(cfg, cuda=False)


def test_all_problems_reported_at_once(tmp_path):
    cfg = compose_cfg(
        "+experiment=quickstart", "quant=nf4", "+quant.load_in_8bit=true", "+train.learning_rat=1e-4",
        "+lora.rank=8", "train.bf16=true", "stages=[train,prepare]", "eval.metrics=[exact_match,precision]",
        "data.train_file=does/not/exist.jsonl", "train.use_liger_kernel=true",
        "+train.activation_offloading=true", "data.too_long=cut", "data.duplicates=no", "data.strict=yes",
        "data.num_proc=0", run_dir=tmp_path,
    )
    with pytest.raises(ConfigError) as err:
        validate(cfg, cuda=False)
    msg = str(err.value)
    for expected in [
        "load_in_4bit and load_in_8bit are both set",
        "4-bit quantization (bitsandbytes) needs a CUDA GPU",
        "train.learning_rat: not a trl.SFTConfig field (did you mean learning_rate",
        "lora.rank: not a peft.LoraConfig field",
        "train.bf16: mixed precision needs a CUDA GPU",
        "out of order",
        "unknown metric 'precision'",
        "data.train_file: does/not/exist.jsonl is not found",
        "train.use_liger_kernel: Liger's kernels are Triton GPU kernels and need CUDA",
        "train.activation_offloading: moves saved activations from GPU to CPU memory and needs CUDA",
        "data.too_long: 'cut' is not one of drop, truncate, error",
        "data.duplicates: 'no' is not one of drop, keep",
        "data.strict: must be true or false, got 'yes'",
        "data.num_proc: must be null (automatic) or a positive integer, got 0",
    ]:
        assert expected in msg, f"{expected!r} missing from:\n{msg}"


@pytest.mark.parametrize("stages", ["[evaluate]", "[merge]", "[evaluate,merge]"])
def test_evaluate_or_merge_alone_needs_an_adapter(tmp_path, stages):
    cfg = compose_cfg("+experiment=quickstart", f"stages={stages}", run_dir=tmp_path)
    with pytest.raises(ConfigError, match="adapter_dir"):
        validate(cfg, cuda=False)


def test_missing_train_file_is_named(tmp_path):
    cfg = compose_cfg(run_dir=tmp_path)  # data=chat without train_file
    with pytest.raises(ConfigError, match=r"data.train_file: required; add data.train_file="):
        validate(cfg, cuda=False)


def test_redact_hides_secrets_only():
    out = redact({"logger": {"api_key": "abc", "project": "p"}, "hf_token": "t", "items": [{"password": "x"}]})
    assert out == {"logger": {"api_key": "***", "project": "p"}, "hf_token": "***", "items": [{"password": "***"}]}


def test_test_file_must_differ_from_train_file(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text("{}\n")
    cfg = compose_cfg(f"data.train_file={data}", f"data.test_file={data}", run_dir=tmp_path)
    with pytest.raises(ConfigError, match="data.test_file: the same file as data.train_file"):
        validate(cfg, cuda=False)


@pytest.mark.parametrize(("override", "expected"), [
    ("train.learning_rate=-1", "train.learning_rate: must be a number > 0, got -1"),
    ("train.learning_rate=abc", "train.learning_rate: must be a number > 0, got 'abc'"),
    ("train.per_device_train_batch_size=0", "train.per_device_train_batch_size: must be an integer >= 1, got 0"),
    ("train.gradient_accumulation_steps=1.5", "train.gradient_accumulation_steps: must be an integer >= 1, got 1.5"),
    ("lora.lora_dropout=2", "lora.lora_dropout: must be a number >= 0 and < 1, got 2"),
    ("lora.lora_alpha=-5", "lora.lora_alpha: must be a number > 0, got -5"),
    ("train.num_train_epochs=0", "train.num_train_epochs=0 (and no train.max_steps) would train nothing"),
    ("train.num_train_epochs=-2", "train.num_train_epochs: must be a number >= 0 (or null"),
    ("train.save_steps=0", "train.save_steps: must be a number > 0 (or null"),
    ("data.val_fraction=1.5", "data.val_fraction: must be a number >= 0 and < 1 (or null"),
    ("method=dpo method.beta=0", "method.beta: must be a number > 0, got 0"),
    ("method=dpo method.beta=-0.1", "method.beta: must be a number > 0, got -0.1"),
    ("method=dpo +method.betta=0.2", "method.betta: not a trl.DPOConfig field (did you mean beta?)"),
    ("method=supervised +method.beta=0.2", "method: ['beta'] are settings of another method"),
    ("init_from=/nowhere", "init_from: /nowhere holds no adapter_config.json"),
    ("init_from=/nowhere backend=openai", "init_from: a local adapter, which a hosted job cannot start from"),
    ("eval.engine=fast", "eval.engine='fast': use auto, lorakit or vllm"),
    ("eval.engine=vllm eval.vllm.python=/nowhere/python quant=nf4", "serves the base unquantized here"),
])
def test_out_of_range_settings_are_refused_before_any_model_loads(tmp_path, override, expected):
    cfg = compose_cfg("+experiment=quickstart", *override.split(), run_dir=tmp_path)
    with pytest.raises(ConfigError) as err:
        validate(cfg, cuda=False)
    assert expected in str(err.value)


def test_a_reinforcement_run_needs_one_grader_and_whole_groups_of_completions_per_batch(tmp_path):
    one = tmp_path / "one.yaml"
    one.write_text("{type: string_check, name: same, input: '{{ sample.output_text }}', "
                   "reference: '{{ item.answer }}', operation: eq}\n")
    two = tmp_path / "two.yaml"
    two.write_text(f"[{one.read_text().strip()}, {one.read_text().strip().replace('same', 'again')}]\n")
    validate(compose_cfg("+experiment=quickstart", "method=reinforcement", f"method.grader={one}", run_dir=tmp_path),
             cuda=False)
    cases = {
        "": "method.grader: method=reinforcement trains on a grader's scores; set method.grader=graders.yaml",
        f"method.grader={two}": "method.grader: holds 2 graders (same, again); the reward is one grader: combine them",
        f"method.grader={tmp_path / 'none.yaml'}": "method.grader: " + str(tmp_path / "none.yaml") + ": no such grader file",
        f"method.grader={one} method.num_generations=3": "method.num_generations=3: each step trains on whole groups "
        "of completions, and train.per_device_train_batch_size x train.gradient_accumulation_steps = 4 is not a "
        "multiple of it; set train.per_device_train_batch_size=3 or method.num_generations to a divisor of 4",
        f"method.grader={one} method.num_generations=1": "method.num_generations: must be an integer >= 2, got 1",
        f"method.grader={one} +method.num_generation=8": "method.num_generation: not a trl.GRPOConfig field (did you "
        "mean num_generations",
        f"method.grader={one} data.format=alpaca": "data.format=alpaca: method=reinforcement reads tasks in OpenAI's",
    }
    for override, expected in cases.items():
        cfg = compose_cfg("+experiment=quickstart", "method=reinforcement", *override.split(), run_dir=tmp_path)
        with pytest.raises(ConfigError) as err:
            validate(cfg, cuda=False)
        assert expected in str(err.value), override


def test_epochs_zero_with_max_steps_and_null_defaults_are_valid(tmp_path):
    validate(compose_cfg("+experiment=quickstart", "train.num_train_epochs=0", "+train.max_steps=5", run_dir=tmp_path),
             cuda=False)
    validate(compose_cfg("+experiment=quickstart", "train.num_train_epochs=null", "train.save_steps=null",
                         "data.val_fraction=null", run_dir=tmp_path), cuda=False)


def test_a_model_path_or_data_path_that_is_not_what_it_should_be_is_named(tmp_path):
    cfg = compose_cfg("+experiment=quickstart", f"model.name_or_path={tmp_path}/nonexistent",
                      f"data.train_file={tmp_path}", run_dir=tmp_path / "run")
    with pytest.raises(ConfigError) as err:
        validate(cfg, cuda=False)
    assert f"model.name_or_path: {tmp_path}/nonexistent is not found" in str(err.value)
    assert f"data.train_file: {tmp_path} is a directory, not a file" in str(err.value)


def test_a_model_path_given_with_the_embedded_model_config_is_the_model_loaded(tiny_dir):
    from lorakit.models.loading import embedded, resolve

    default = compose_cfg("+experiment=quickstart").model
    assert embedded(default)  # the embedded GGUF, as before
    given = compose_cfg("+experiment=quickstart", f"model.name_or_path={tiny_dir}").model
    assert not embedded(given) and resolve(given) == tiny_dir  # before: the embedded SmolLM2 was trained instead
    hub = compose_cfg("+experiment=quickstart", "model.name_or_path=meta-llama/Llama-3.1-8B-Instruct").model
    assert resolve(hub) == "meta-llama/Llama-3.1-8B-Instruct"


def test_eval_graders_are_checked_with_the_config(tmp_path):
    (tmp_path / "graders.yaml").write_text("judge:\n  type: label_model\n  model: no-such-model\n  labels: [good]\n"
                                           "  passing_labels: [good]\n  input: [{role: user, content: x}]\n"
                                           "exact_match:\n  type: string_check\n  input: a\n  reference: b\n"
                                           "  operation: eq\n")
    cfg = compose_cfg("+experiment=quickstart", f"eval.graders={tmp_path / 'graders.yaml'}", run_dir=tmp_path)
    with pytest.raises(ConfigError, match="exact_match is the name of a built-in metric"):
        validate(cfg, cuda=False)
    (tmp_path / "graders.yaml").write_text((tmp_path / "graders.yaml").read_text().split("exact_match:")[0])
    with pytest.raises(ConfigError, match=r"eval.graders.judge: model='no-such-model': no such folder"):
        validate(cfg, cuda=False)
    (tmp_path / "graders.yaml").unlink()
    with pytest.raises(ConfigError, match=r"eval.graders: .*graders.yaml: no such grader file"):
        validate(cfg, cuda=False)
