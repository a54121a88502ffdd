"""`python -m lorakit.merge`: the merged model answers like the adapter; a folder without an adapter exits 2."""

from __future__ import annotations

import pytest
import torch


def test_merge_cli_saves_a_model_that_answers_like_the_adapter(trained, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lorakit import merge

    trainer, _, tokenizer, _, _ = trained
    adapter = tmp_path / "adapter"
    trainer.model.save_pretrained(str(adapter))
    tokenizer.save_pretrained(str(adapter))
    merge.main([str(adapter)])  # base from adapter_config.json, output beside the adapter
    merged = AutoModelForCausalLM.from_pretrained(str(tmp_path / "merged")).eval()
    assert not any("lora_" in n for n, _ in merged.named_parameters())
    assert AutoTokenizer.from_pretrained(str(tmp_path / "merged")).chat_template == tokenizer.chat_template
    ids = tokenizer(["<|im_start|>user\nplay jazz<|im_end|>\n<|im_start|>assistant\n"], return_tensors="pt")
    with torch.no_grad():
        expected = trainer.model.eval()(**ids).logits
        torch.testing.assert_close(merged(**ids).logits, expected, rtol=1e-4, atol=1e-4)
        with trainer.model.disable_adapter():
            assert not torch.allclose(trainer.model(**ids).logits, expected, atol=1e-3)  # the merge changed something


def test_merge_cli_without_an_adapter_exits_2(tmp_path, capsys):
    from lorakit import merge

    with pytest.raises(SystemExit) as info:
        merge.main([str(tmp_path)])
    assert info.value.code == 2 and "adapter_config.json" in capsys.readouterr().err
