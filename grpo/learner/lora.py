"""LoRA through PEFT: train low-rank adapters, keep the base weights frozen (grpo.lora, sft.lora, distill.sft.lora).

What changes under `grpo.lora.rank > 0` (grpo/learner/policy.py holds the wrapper):
- only the adapters train (the optimizer holds state for them alone);
- the reference model of the KL term is the same network with its adapters switched off (no second copy);
- the engine gets *merged* weights, W + (alpha / r) B A under the base model's own names, so vLLM and the
  transformers engine sample from exactly the policy the learner scores (no LoRA support needed in the engine);
- a checkpoint holds the merged model (loadable like any other), plus `lora_base.pt` (the frozen weights) and
  `lora_adapter.pt` (the adapters), from which `--resume` rebuilds the adapted model bit for bit;
- at the end of the stage the adapters are merged into the model for good, so `final/` and every later stage
  see a plain model.
"""

from __future__ import annotations

import torch

from grpo.config import ConfigError, LoraConfig
from grpo.model import parameter_count


def wrap(model, cfg: LoraConfig, section: str = "grpo.lora"):
    """`model` with adapters on `cfg.targets` (PEFT injects them into `model` itself); B starts at zero, so the
    adapted model computes exactly what `model` did. `section`: the config keys, for the error message."""
    from peft import LoraConfig as PeftLoraConfig  # peft: imported only when LoRA is on
    from peft import get_peft_model

    check_targets(model, cfg, section)
    peft_config = PeftLoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                                 target_modules=list(cfg.targets), bias="none")
    return get_peft_model(model, peft_config)


def check_targets(model, cfg: LoraConfig, section: str) -> None:
    """Refuse LoRA targets the model has no layers of (nothing to check with LoRA off)."""
    if not cfg.rank:
        return
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [t for t in cfg.targets if t not in names]
    if missing:
        raise ConfigError(f"{section}.targets: the model has no layers named {', '.join(missing)}")


@torch.no_grad()
def merged_state_dict(model) -> dict[str, torch.Tensor]:
    """The adapted model's weights as one plain model's state dict: W + delta for adapted layers, under the base
    model's names; the model itself is not changed (merging in place and back would drift by rounding)."""
    from peft.tuners.lora import LoraLayer  # peft: imported only when LoRA is on

    base = model.get_base_model()
    deltas = {f"{name}.weight": module.get_delta_weight(module.active_adapters[0])
              for name, module in base.named_modules() if isinstance(module, LoraLayer)}
    merged = {}
    for name, tensor in base.state_dict().items():
        if ".lora_" in name:
            continue
        plain = name.replace(".base_layer.", ".")
        merged[plain] = tensor + deltas[plain].to(tensor.dtype) if plain in deltas else tensor
    return merged


@torch.no_grad()
def base_state_dict(model) -> dict[str, torch.Tensor]:
    """The frozen weights under the base model's names."""
    return {name.replace(".base_layer.", "."): t.clone() for name, t in model.get_base_model().state_dict().items()
            if ".lora_" not in name}


def adapter_state_dict(model) -> dict[str, torch.Tensor]:
    from peft import get_peft_model_state_dict  # peft: imported only when LoRA is on

    return {k: v.clone() for k, v in get_peft_model_state_dict(model).items()}


def load_adapter_state_dict(model, state: dict[str, torch.Tensor]) -> None:
    from peft import set_peft_model_state_dict  # peft: imported only when LoRA is on

    result = set_peft_model_state_dict(model, state)
    unexpected = getattr(result, "unexpected_keys", [])
    if unexpected:
        raise ValueError(f"the checkpoint's adapters do not fit this model: {unexpected[:3]}")


class AdaptersOff:
    """The frozen reference under LoRA: the same network, called with its adapters switched off."""

    def __init__(self, model):
        self.model = model

    def __call__(self, **inputs):
        with self.model.disable_adapter():
            return self.model(**inputs)

    @property
    def config(self):
        return self.model.config

    def get_output_embeddings(self):
        """The head, which LoRA leaves alone unless it targets it: chunked logprobs (grpo/learner/logprobs.py)
        then run for the reference as for the policy."""
        return self.model.get_output_embeddings()


def trainable_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def describe(model, cfg: LoraConfig) -> str:
    """One line on an adapted model: rank, targets, and how much of it trains."""
    total, trainable = parameter_count(model), trainable_parameters(model)
    return (f"LoRA rank {cfg.rank} on {', '.join(cfg.targets)}: {trainable:,} trainable parameters "
            f"({100 * trainable / total:.1f}% of {total:,})")
