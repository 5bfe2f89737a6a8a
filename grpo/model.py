"""Models and tokenizers: a tiny one built from scratch here, or any causal LM by path.

The built-in tokenizer is character-level (Qwen2's byte-level scheme with no merges: every byte is one token),
with a Qwen-style chat template and the tokens
the pipeline uses: `<think>` and `</think>` (ordinary added tokens, so decoding keeps them for the verifier),
`<|im_start|>`, `<|im_end|>` (end of turn, the EOS) and `<|endoftext|>` / `<pad>`. The model is a Qwen2
causal LM (an architecture transformers and vLLM both load) sized by a preset. Both are written with
`save_pretrained`, so `AutoModelForCausalLM.from_pretrained(dir)` and `AutoTokenizer.from_pretrained(dir)`
load them like any hub model.
"""

from __future__ import annotations

import types

import torch
from tokenizers import pre_tokenizers
from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen2Config, Qwen2ForCausalLM, Qwen2Tokenizer

from grpo.hub import NotFound, model_dir

THINK, END_THINK = "<think>", "</think>"
IM_START, IM_END, EOT, PAD = "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<pad>"
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# hidden, layers, heads, kv heads, MLP width: micro ~0.30M parameters (a distillation student, under a quarter
# of tiny), tiny ~1.4M, small ~19M. Head sizes are 32 and 64:
# vLLM's CPU attention kernels support only some head sizes (32, 64, 80, 96, 112, 128, ...).
PRESETS = {
    "tiny": dict(hidden_size=160, num_hidden_layers=4, num_attention_heads=5, num_key_value_heads=5,
                 intermediate_size=480),
    "micro": dict(hidden_size=96, num_hidden_layers=3, num_attention_heads=3, num_key_value_heads=3,
                  intermediate_size=192),
    "small": dict(hidden_size=512, num_hidden_layers=6, num_attention_heads=8, num_key_value_heads=4,
                  intermediate_size=1536),
}


def build_tokenizer() -> Qwen2Tokenizer:
    """Qwen2's byte-level tokenizer with no merges: every byte is one token (character-level for ASCII).

    Built as a `Qwen2Tokenizer` on purpose: transformers picks that class for a Qwen2 model directory whatever
    the tokenizer config says, and rebuilds its pipeline from the vocabulary and merges, so only a tokenizer
    of exactly this shape loads back with identical behaviour (and vLLM loads it the same way)."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {EOT: 0, **{char: i + 1 for i, char in enumerate(alphabet)}}
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=[], unk_token=None, eos_token=IM_END, pad_token=PAD,
                               bos_token=None, clean_up_tokenization_spaces=False)
    tokenizer.add_special_tokens({"additional_special_tokens": [IM_START, IM_END, PAD]})
    tokenizer.add_tokens([THINK, END_THINK])  # whole tokens, but not "special": decoding keeps them
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_model(preset: str, tokenizer, *, max_position_embeddings: int = 512, seed: int = 0) -> Qwen2ForCausalLM:
    """A freshly initialised Qwen2 model of the preset's size for this tokenizer."""
    if preset not in PRESETS:
        raise ValueError(f"unknown model preset {preset!r} (known: {', '.join(PRESETS)})")
    config = Qwen2Config(vocab_size=len(tokenizer), max_position_embeddings=max_position_embeddings,
                         tie_word_embeddings=True, rope_theta=10000.0, bos_token_id=None,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         **PRESETS[preset])
    torch.manual_seed(seed)
    return Qwen2ForCausalLM(config).to(run_device())


def run_device() -> torch.device:
    """Where models train and sample in this process: the current GPU when one is visible (under `accelerate
    launch`, each process's own: accelerate sets it before any model is built), else the CPU. Models are placed
    there when built or loaded (`build_model`, `load`); batches follow their model (`device_of`). To stay on the
    CPU on a GPU machine: CUDA_VISIBLE_DEVICES="" (the GPU path is written but has not run yet)."""
    return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")


def device_of(model) -> torch.device:
    return next(model.parameters()).device


def load(path: str, dtype: str = "float32", revision: str = "", *, key: str = "model.path"):
    """(model, tokenizer) from a local directory or a hub id (at `revision`; grpo/hub.py resolves it, through the
    Hugging Face cache); an error naming `key`, the id and the case when it cannot be found or loaded."""
    directory = model_dir(path, revision, key=key)
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory)
        model = AutoModelForCausalLM.from_pretrained(directory, dtype=getattr(torch, dtype))
    except (OSError, ValueError) as e:
        raise NotFound(f"{key} {path!r} ({directory}) could not be loaded: {e}") from e
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.to(run_device()), tokenizer


def parameter_count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def cpu_has_bf16() -> bool:
    """Does this CPU have bf16 matrix instructions (AVX-512 BF16 or AMX on x86, what oneDNN uses for bf16 GEMMs)?
    Without them (an AVX2-only CPU) torch's bf16 matrix products run at about a tenth of fp32's speed."""
    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    checks.append(getattr(getattr(torch.ops, "mkldnn", None), "_is_mkldnn_bf16_supported", None))
    for check in checks:
        try:
            if check is not None and check():
                return True
        except Exception:  # noqa: BLE001 - a private probe that this torch build lacks says nothing
            continue
    return False


def slow_bf16_warning(mixed_precision: str, dtype: str, *, device: str, native_bf16: bool) -> str:
    """The line a run prints when its config asks for bf16 on a CPU without bf16 instructions, else "". Such a
    CPU still runs bf16 (emulated), about 10x slower than fp32: measured in BENCHMARKS.md, "bf16 on a CPU
    without bf16 instructions"; a GPU, or a CPU with AVX-512 BF16 or AMX, gets no warning."""
    asked = [k for k, on in (("model.mixed_precision: bf16", mixed_precision == "bf16"),
                             ("model.dtype: bfloat16", dtype == "bfloat16")) if on]
    if not asked or device != "cpu" or native_bf16:
        return ""
    return (f"warning: {' and '.join(asked)} on a CPU without bf16 instructions (no AVX-512 BF16, no AMX): its bf16 "
            "matrix products run about 10x slower than fp32 here; model.mixed_precision: no and model.dtype: "
            "float32 are faster on this machine")


def mixed_precision(model, mode: str):
    """`model` with its forward pass under bf16 autocast when `mode` is "bf16" (weights, gradients and optimizer
    state stay in their dtype, fp32 by default; matrix products and activations are bf16); unchanged for "no".
    The forward is wrapped on the model object, so everything that calls it (SFT, the GRPO learner, the
    transformers engine's sampling and greedy evaluation) runs at the same precision; vLLM samples in the
    weights' dtype. Logits come out in bf16; the losses upcast them to fp32."""
    if mode == "no":
        return model
    if mode != "bf16":
        raise ValueError(f"model.mixed_precision {mode!r}: must be no or bf16")
    # a method bound to the model, not a closure over it: `copy.deepcopy` (the KL reference, FSDP's full copy) then
    # binds the copy's forward to the copy; a wrapped `model.forward` would keep running the original's weights
    model.forward = types.MethodType(_autocast_forward, model)
    return model


def _autocast_forward(self, *args, **kwargs):
    with torch.autocast(device_of(self).type, dtype=torch.bfloat16):  # the device the model is on at the call
        return type(self).forward(self, *args, **kwargs)
