"""The chat templates our real-scale recipes rely on (tests/data/chat_templates/: Qwen2.5-Math, DeepSeek-R1-Distill-
Qwen, Qwen3, verbatim), on a tokenizer with each family's special tokens: every recipe's prompt renders as the model
expects, with the R1 instruction once, the think block opened once, the end of turn the model writes as a stop token
and as the end of SFT targets, one BOS, and the final end-of-turn token trained on even where pad is the EOS."""

from pathlib import Path

import pytest

from grpo.config import PromptConfig
from grpo.data.prompts import R1_INSTRUCTION, end_of_turn, render_prompt, to_examples
from grpo.learner.supervised import IGNORE
from grpo.model import build_model, build_tokenizer
from grpo.rollout.types import stop_token_ids
from grpo.stages.sft import collate, tokenize

TEMPLATES = Path(__file__).with_name("data") / "chat_templates"
PROBLEM = "What is 1 + 1?"
R1 = PromptConfig(template="r1", think_prefix=True)


def family(name: str):
    """Our byte-level tokenizer dressed as the family's: its chat template and special tokens, its EOS and pad."""
    tokenizer = build_tokenizer()
    tokenizer.chat_template = (TEMPLATES / name).read_text()
    if name.startswith("qwen2.5-math"):  # the base model: EOS <|endoftext|>, turns closed by <|im_end|>
        tokenizer.add_special_tokens({"eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>"})
    elif name.startswith("deepseek"):
        tokenizer.add_special_tokens({"bos_token": "<｜begin▁of▁sentence｜>", "eos_token": "<｜end▁of▁sentence｜>",
                                      "pad_token": "<｜end▁of▁sentence｜>"})
        tokenizer.add_tokens(["<｜User｜>", "<｜Assistant｜>"])
    else:  # qwen3: EOS <|im_end|>, pad <|endoftext|>
        tokenizer.add_special_tokens({"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"})
    return tokenizer


def test_qwen25_math_gets_the_instruction_once_from_its_own_system_prompt():
    prompt = render_prompt(PROBLEM, family("qwen2.5-math.jinja"), R1)
    assert prompt == ("<|im_start|>system\nPlease reason step by step, and put your final answer within \\boxed{}."
                      "<|im_end|>\n<|im_start|>user\nWhat is 1 + 1?<|im_end|>\n<|im_start|>assistant\n<think>\n")
    assert prompt.count(R1_INSTRUCTION) == 1


@pytest.mark.parametrize("name", ["deepseek-r1-distill-qwen.jinja", "deepseek-r1-distill-qwen.first-release.jinja"])
def test_r1_distill_prompts_open_the_think_block_once_in_both_revisions(name):
    """The current template ends the generation prompt with <think>\\n itself, the first release did not: either
    way the prompt is the same, with the instruction in the user's turn (DeepSeek's advice: no system prompt)."""
    tokenizer = family(name)
    prompt = render_prompt(PROBLEM, tokenizer, R1)
    assert prompt == f"<｜begin▁of▁sentence｜><｜User｜>{PROBLEM}\n{R1_INSTRUCTION}<｜Assistant｜><think>\n"
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]  # how every engine and the learner tokenize
    assert ids.count(tokenizer.bos_token_id) == 1


def test_qwen3_prompts_open_the_think_block_in_thinking_mode():
    prompt = render_prompt(PROBLEM, family("qwen3.jinja"), R1)
    assert prompt == f"<|im_start|>user\n{PROBLEM}\n{R1_INSTRUCTION}<|im_end|>\n<|im_start|>assistant\n<think>\n"


@pytest.mark.parametrize("name, turn_end", [("qwen2.5-math.jinja", "<|im_end|>"), ("qwen3.jinja", "<|im_end|>"),
                                            ("deepseek-r1-distill-qwen.jinja", "<｜end▁of▁sentence｜>")])
def test_the_end_of_turn_is_a_stop_token_and_ends_sft_targets(name, turn_end):
    """Qwen2.5-Math's base EOS is <|endoftext|>, but its chat turns close with <|im_end|>: sampling must stop there
    and SFT targets must end there, or a chat-prompted model never learns to end its turn."""
    tokenizer = family(name)
    assert end_of_turn(tokenizer) == turn_end
    model = build_model("micro", tokenizer)
    assert tokenizer.convert_tokens_to_ids(turn_end) in stop_token_ids(model, tokenizer)
    (example,) = to_examples([{"problem": PROBLEM, "answer": "2", "solution": "<think>\n1+1=2\n</think>\n2"}],
                             tokenizer, R1)
    assert example.completion == f"1+1=2\n</think>\n2{turn_end}"


@pytest.mark.parametrize("name", ["qwen2.5-math.jinja", "deepseek-r1-distill-qwen.jinja"])
def test_the_final_token_is_trained_on_when_pad_is_the_eos(name):
    """Both families pad with their EOS: the loss mask must come from lengths, not from the pad id, or the end of every
    SFT target (a real token, not padding) would be masked out."""
    tokenizer = family(name)
    examples = to_examples([{"problem": "1+1?", "answer": "2", "solution": "2"},
                            {"problem": "1+1? Think long.", "answer": "2", "solution": "one plus one is 2"}],
                           tokenizer, R1)
    sequences, _ = tokenize(examples, tokenizer, 512)
    batch = collate(sequences, tokenizer.pad_token_id)
    end = tokenizer.convert_tokens_to_ids(end_of_turn(tokenizer) or tokenizer.eos_token)
    for row, (ids, _) in enumerate(sequences):
        assert ids[-1] == end and batch["labels"][row, len(ids) - 1] == end  # in the loss
        assert (batch["labels"][row, len(ids):] == IGNORE).all()  # padding is not


RECIPES = {"qwen2.5-math-1.5b_grpo.yaml": ["qwen2.5-math.jinja"], "qwen2.5-math-1.5b_sft.yaml": ["qwen2.5-math.jinja"],
           "r1-distill-qwen-1.5b_grpo.yaml": ["deepseek-r1-distill-qwen.jinja",
                                              "deepseek-r1-distill-qwen.first-release.jinja"]}


@pytest.mark.parametrize("recipe, template", [(r, t) for r, ts in RECIPES.items() for t in ts])
def test_every_real_scale_recipe_renders_its_models_prompt(recipe, template):
    """Each recipe's prompt settings with its model's real template: accepted, the R1 instruction once, the think
    block opened exactly once (the R1-distill recipe once set think_prefix false, which the current template
    refuses: it opens <think> itself)."""
    from grpo.config import load_config

    config = load_config(Path(__file__).resolve().parents[1] / "configs" / recipe)
    prompt = render_prompt(PROBLEM, family(template), config.prompt)
    assert prompt.count(R1_INSTRUCTION) == 1 and prompt.count("<think>") == 1 and prompt.endswith("<think>\n")
