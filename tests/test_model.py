"""The tiny model factory and the character-level tokenizer: both load back with transformers alone."""

import copy

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from grpo.model import (PRESETS, build_model, build_tokenizer, cpu_has_bf16, load, mixed_precision, parameter_count,
                        slow_bf16_warning)

COMPLETION = "<think>\n12 + 7 = 19\n</think>\n\\boxed{19}"


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


def test_every_ascii_character_is_one_token_and_decodes_back(tokenizer):
    text = "Compute (47 + 38) - 15.\n\\boxed{70} x^2 {a,b} 'q' \"r\"~"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(text)
    assert tokenizer.decode(ids) == text


def test_think_tags_are_single_tokens_that_survive_decoding(tokenizer):
    ids = tokenizer(COMPLETION, add_special_tokens=False)["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids[0]) == "<think>"
    assert tokenizer.decode(ids, skip_special_tokens=True) == COMPLETION


def test_chat_template_and_end_of_turn(tokenizer):
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "Compute 1 + 1."}], tokenize=False,
                                           add_generation_prompt=True)
    assert prompt == "<|im_start|>user\nCompute 1 + 1.<|im_end|>\n<|im_start|>assistant\n"
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token_id != tokenizer.eos_token_id


@pytest.mark.parametrize("preset,low,high", [("tiny", 0.5e6, 3e6), ("small", 15e6, 25e6)])
def test_presets_have_their_sizes(tokenizer, preset, low, high):
    assert low < parameter_count(build_model(preset, tokenizer)) < high


def test_saved_model_and_tokenizer_load_with_transformers_alone(tokenizer, tmp_path):
    model = build_model("tiny", tokenizer, seed=3)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded_tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    text = "<|im_start|>user\nCompute 2 + 2.<|im_end|>\n" + COMPLETION
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
    assert torch.equal(loaded_tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"], ids)
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, loaded(ids).logits, atol=1e-6, rtol=0)


def test_unknown_preset_and_missing_path_are_clear_errors(tokenizer, tmp_path):
    with pytest.raises(ValueError, match="unknown model preset 'huge'"):
        build_model("huge", tokenizer)
    with pytest.raises(FileNotFoundError, match="no such local directory"):
        load(str(tmp_path / "no-model"))


def test_presets_table_is_what_the_docs_say():
    assert set(PRESETS) == {"micro", "tiny", "small"}


def test_bf16_mixed_precision_keeps_fp32_weights_and_gradients(tokenizer):
    ids = torch.tensor([tokenizer("Compute (3 - 4) + 5.\n<think>\n3 - 4 = -1\n")["input_ids"]])
    full = build_model("tiny", tokenizer, seed=0)
    mixed = mixed_precision(build_model("tiny", tokenizer, seed=0), "bf16")
    logits_full, logits_mixed = full(ids).logits, mixed(ids).logits
    assert logits_full.dtype == torch.float32 and logits_mixed.dtype == torch.bfloat16
    # the same network at lower precision: close, not equal
    assert not torch.equal(logits_full, logits_mixed.float())
    assert torch.allclose(logits_full, logits_mixed.float(), atol=0.1)
    loss = torch.nn.functional.cross_entropy(logits_mixed[0, :-1].float(), ids[0, 1:])
    loss.backward()
    assert all(p.dtype == torch.float32 and p.grad is not None and p.grad.dtype == torch.float32
               for p in mixed.parameters())
    assert mixed_precision(full, "no") is full and full(ids).logits.dtype == torch.float32
    with pytest.raises(ValueError, match="model.mixed_precision 'fp16'"):
        mixed_precision(full, "fp16")


def test_a_copy_of_a_mixed_precision_model_runs_its_own_weights(tokenizer):
    """The KL reference and FSDP's full copy are deep copies of the learner: under bf16 autocast each copy must
    run its own weights in bf16 (a forward wrapped around the original's bound method ran the live policy, so the
    KL to the reference was always 0)."""
    ids = torch.tensor([tokenizer("Compute 1 + 2.\n<think>\n")["input_ids"]])
    learner = mixed_precision(build_model("tiny", tokenizer, seed=0), "bf16")
    reference = copy.deepcopy(learner)
    with torch.no_grad():
        before = reference(ids).logits
        for p in learner.parameters():
            p.add_(0.05)
        assert torch.equal(reference(ids).logits, before)  # the update moved the learner only
        assert not torch.equal(learner(ids).logits, before)
        assert reference(ids).logits.dtype == torch.bfloat16


def test_bf16_on_a_cpu_without_bf16_instructions_is_warned_about_and_nowhere_else():
    """An AVX2-only CPU runs bf16 matrix products about 10x slower than fp32 (BENCHMARKS.md): a run asking for bf16
    there says so; on a GPU, on a CPU with AVX-512 BF16 or AMX, or in fp32, nothing is said."""
    warned = slow_bf16_warning("bf16", "float32", device="cpu", native_bf16=False)
    assert warned.startswith("warning: model.mixed_precision: bf16 on a CPU without bf16 instructions")
    assert "10x slower" in warned and "model.mixed_precision: no" in warned
    both = slow_bf16_warning("bf16", "bfloat16", device="cpu", native_bf16=False)
    assert "model.mixed_precision: bf16 and model.dtype: bfloat16 on a CPU" in both
    assert "model.dtype: bfloat16 on a CPU" in slow_bf16_warning("no", "bfloat16", device="cpu", native_bf16=False)
    assert slow_bf16_warning("bf16", "bfloat16", device="cpu", native_bf16=True) == ""
    assert slow_bf16_warning("bf16", "bfloat16", device="cuda", native_bf16=False) == ""
    assert slow_bf16_warning("no", "float32", device="cpu", native_bf16=False) == ""
    assert isinstance(cpu_has_bf16(), bool)
