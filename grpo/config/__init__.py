"""Typed config: the schema (every key, its default and meaning), loading (YAML + `section.key=value`), and the
checks that refuse impossible combinations. Imports nothing of the project but the pure math (grpo.algo), whose
registries name the valid estimators and aggregations.

`from grpo.config import Config, load_config, ...` keeps working: the names below are re-exported.
"""

from grpo.config.load import load_config, to_dict, to_yaml
from grpo.config.schema import (
    BUILT_IN,
    LINEAR_PROJECTIONS,
    PRESET_NAMES,
    STAGES,
    SUITE_NAMES,
    Config,
    ConfigError,
    DataConfig,
    DistillConfig,
    EvalConfig,
    FilterConfig,
    GenerateConfig,
    GRPOConfig,
    LoraConfig,
    ModelConfig,
    PromptConfig,
    RewardConfig,
    RolloutConfig,
    RunConfig,
    SFTConfig,
    TaskConfig,
)

__all__ = ["BUILT_IN", "LINEAR_PROJECTIONS", "PRESET_NAMES", "STAGES", "SUITE_NAMES", "Config", "ConfigError",
           "DataConfig", "DistillConfig", "EvalConfig", "FilterConfig", "GenerateConfig", "GRPOConfig", "LoraConfig",
           "ModelConfig", "PromptConfig", "RewardConfig", "RolloutConfig", "RunConfig", "SFTConfig", "TaskConfig",
           "load_config", "to_dict", "to_yaml"]
