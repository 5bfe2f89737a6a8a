"""LoRA in the GRPO stage (grpo/learner/lora.py): merged weights are exactly PEFT's merge, only the adapters train, the
frozen weights move only by a low-rank update, the reference is the adapter-free network, and a crash mid-run
resumes to the same metrics and final weights."""

import copy
import json

import pytest
import torch
from crashes import crash_then_resume, logged, weights

from grpo import train
from grpo.config import ConfigError, LoraConfig, load_config
from grpo.learner.lora import AdaptersOff, adapter_state_dict, merged_state_dict, wrap
from grpo.model import build_model, build_tokenizer
from grpo.stages.grpo import CHECKPOINTS

SMALL = ["task.train_size=300", "task.heldout_size=8", "rollout.max_new_tokens=40", "grpo.prompts_per_step=4",
         "grpo.group_size=4", "grpo.eval_size=8", "grpo.eval_every=0", "grpo.lr=1e-2", "reward.format_weight=0.5",
         "grpo.warmup_steps=0", "rollout.engine=hf", "grpo.lora.rank=4", "grpo.kl_coef=0.05"]
TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _adapted(rank=4, seed=0):
    tokenizer = build_tokenizer()
    model = build_model("tiny", tokenizer, seed=seed)
    plain = copy.deepcopy(model)
    peft_model = wrap(model, LoraConfig(rank=rank, alpha=8.0))
    torch.manual_seed(seed)
    with torch.no_grad():  # B starts at zero; give the adapters something to say
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    return tokenizer, plain, model, peft_model


def test_merged_weights_are_peft_merge_and_compute_the_adapted_model():
    tokenizer, plain, model, peft_model = _adapted()
    ids = torch.tensor([tokenizer("Compute 1 + 2.\n<think>\n")["input_ids"]])
    with torch.no_grad():
        adapted_logits = model(ids).logits
        merged = merged_state_dict(peft_model)
        plain_now = plain.state_dict()
        assert merged.keys() == plain_now.keys()
        reloaded = copy.deepcopy(plain)
        reloaded.load_state_dict(merged)
        assert torch.allclose(reloaded(ids).logits, adapted_logits, atol=1e-5)
        # PEFT's own merge gives the same tensors, and computing them left the adapted model as it was
        expected = copy.deepcopy(peft_model).merge_and_unload().state_dict()
        assert all(torch.equal(merged[k], expected[k]) for k in expected)
        assert torch.equal(model(ids).logits, adapted_logits)
        # the reference is the network with its adapters off: the starting model's numbers
        assert torch.allclose(AdaptersOff(peft_model)(input_ids=ids).logits, plain(ids).logits, atol=1e-6)
        assert not torch.allclose(adapted_logits, plain(ids).logits, atol=1e-3)


def test_the_reference_scores_through_the_head_in_chunks():
    """The adapter-free reference exposes the head, so chunked logprobs (no full logits) run for it too, and
    give what the full path gives."""
    from grpo.learner.logprobs import output_head, token_logprobs

    tokenizer, plain, model, peft_model = _adapted()
    reference = AdaptersOff(peft_model)
    assert output_head(reference) is plain.get_output_embeddings() or \
        torch.equal(output_head(reference).weight, plain.get_output_embeddings().weight)
    ids = torch.tensor([tokenizer("Compute 1 + 2.\n<think>\n")["input_ids"]])
    with torch.no_grad():
        full = token_logprobs(reference, ids, torch.ones_like(ids), 0.9)[0]
        chunked = token_logprobs(reference, ids, torch.ones_like(ids), 0.9, chunk_tokens=4)[0]
        plain_full = token_logprobs(plain, ids, torch.ones_like(ids), 0.9)[0]
    torch.testing.assert_close(chunked, full, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(full, plain_full, atol=1e-5, rtol=1e-5)


def test_only_the_adapters_train():
    _, plain, model, peft_model = _adapted(rank=2)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    assert {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in trainable} == set(TARGETS)
    saved = {k.removeprefix("base_model.model.") for k in adapter_state_dict(peft_model)}
    assert saved == {n.replace(".default", "") for n in trainable}
    # rank 2 on 4 layers of the tiny model: a few percent of its weights
    total = sum(p.numel() for p in plain.parameters())
    assert sum(p.numel() for n, p in model.named_parameters() if n in trainable) < 0.1 * total


def test_a_lora_grpo_run_moves_weights_by_a_low_rank_update_and_resumes_exactly(tmp_path, base, monkeypatch):
    args = ["run.stages=[grpo]", f"model.path={base}", "grpo.steps=4", "grpo.save_every=2", *SMALL]
    straight = tmp_path / "straight"
    assert train.main([f"run.dir={straight}", *args]) == 0
    start, final = weights(base), weights(straight / "final")
    assert final.keys() == start.keys()  # final/ is a plain model: the adapters are merged into it
    moved = [k for k in final if not torch.equal(final[k], start[k])]
    assert moved and all(k.rsplit(".", 2)[-2] in TARGETS for k in moved)  # embeddings and norms are frozen
    for k in moved:
        assert torch.linalg.matrix_rank(final[k] - start[k], atol=1e-6) <= 4  # W + (alpha/r) B A, r = 4
    checkpoint = straight / CHECKPOINTS / "step_2"
    assert {"lora_base.pt", "lora_adapter.pt", "model.safetensors"} <= {p.name for p in checkpoint.iterdir()}
    assert not (checkpoint / "reference.pt").exists()  # the reference is the base with adapters off
    rows = [json.loads(line) for line in (straight / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "loss/kl" in r]
    assert steps[0]["rollout/logprob_gap"] < 1e-3 and steps[-1]["loss/kl"] > 0  # moved away from the reference

    crashed = tmp_path / "crashed"
    crash_then_resume(monkeypatch, crashed, args, crash_at=3, checkpoint="step_2")  # step 3, after step 2's save
    resumed = weights(crashed / "final")
    assert all(torch.equal(final[k], resumed[k]) for k in final)
    assert logged(straight) == logged(crashed)


def test_a_lora_cold_start_moves_weights_by_a_low_rank_update(tmp_path, base):
    """sft.lora on a pretrained model (model.path): only the adapters train, checkpoints and final/ are plain
    merged models, and every moved weight is a target projection moved by a rank <= r update."""
    run_dir = tmp_path / "run"
    assert train.main([f"run.dir={run_dir}", "run.stages=[sft]", f"model.path={base}", "sft.steps=6",
                       "sft.warmup_steps=0", "sft.lr=1e-2", "sft.eval_every=0", "sft.eval_size=2",
                       "sft.max_new_tokens=8", "sft.save_every=3", "sft.lora.rank=4", "task.train_size=200",
                       "task.heldout_size=2"]) == 0
    start, final = weights(base), weights(run_dir / "final")
    assert final.keys() == start.keys()  # merged: loadable as any model
    moved = [k for k in final if not torch.equal(final[k], start[k])]
    assert moved and all(k.rsplit(".", 2)[-2] in TARGETS for k in moved)
    for k in moved:
        assert torch.linalg.matrix_rank(final[k] - start[k], atol=1e-6) <= 4
    assert weights(run_dir / "checkpoints" / "sft" / "step_3").keys() == start.keys()
    assert any(json.loads(line).get("loss/sft") for line in (run_dir / "metrics.jsonl").read_text().splitlines())


def test_full_grpo_after_a_lora_cold_start_trains_every_weight(tmp_path, base):
    """[sft, grpo] with sft.lora only: the merged cold-start model comes out trainable, so GRPO moves weights
    LoRA never touches (embeddings, norms)."""
    run_dir = tmp_path / "run"
    assert train.main([f"run.dir={run_dir}", "run.stages=[sft,grpo]", f"model.path={base}", "sft.steps=3",
                       "sft.warmup_steps=0", "sft.eval_every=0", "sft.eval_size=2", "sft.max_new_tokens=8",
                       "sft.lora.rank=4", "task.train_size=200", "task.heldout_size=2", "grpo.steps=2",
                       "grpo.warmup_steps=0", "grpo.lr=1e-3", "grpo.prompts_per_step=4", "grpo.group_size=4",
                       "grpo.eval_every=0", "grpo.eval_size=2", "rollout.engine=hf", "rollout.max_new_tokens=40",
                       "reward.format_weight=0.5"]) == 0
    start, final = weights(base), weights(run_dir / "final")
    assert any(not torch.equal(final[k], start[k]) for k in final if k.rsplit(".", 2)[-2] not in TARGETS)


@pytest.mark.parametrize("override, key", [("grpo.lora.rank=-1", "grpo.lora.rank"),
                                           ("grpo.lora.dropout=1.0", "grpo.lora.alpha"),
                                           ("grpo.lora.targets=[]", "grpo.lora.targets"),
                                           ("grpo.lora.ranks=4", "grpo.lora.ranks"),
                                           ("sft.lora.rank=-2", "sft.lora.rank"),
                                           ("distill.sft.lora.targets=[]", "distill.sft.lora.targets"),
                                           ("sft.lora.rank=2", "sft.lora.rank needs a pretrained model")])
def test_lora_config_errors_name_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(None, ["grpo.lora.rank=4", "distill.sft.lora.rank=2", override])


def test_a_target_the_model_lacks_is_named():
    tokenizer = build_tokenizer()
    with pytest.raises(ValueError, match="grpo.lora.targets: the model has no layers named c_attn"):
        wrap(build_model("tiny", tokenizer), LoraConfig(rank=2, targets=["q_proj", "c_attn"]))
