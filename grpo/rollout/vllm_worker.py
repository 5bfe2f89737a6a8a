"""Runs inside vLLM's worker processes when the engine is tensor parallel (`rollout.vllm_tensor_parallel_size`
> 1; vLLM loads it by name as the workers' extension class, see grpo/rollout/vllm_engine.py).

In one process the trainer hands vLLM an iterator of (name, tensor) pairs; across processes the pairs travel
through vLLM's message queue, which turns tuples into lists, so names and tensors come as two lists and are
paired again here before vLLM's own in-place loader takes them (each worker keeps its own slice).
"""


class WeightSync:
    def grpo_reload_weights(self, names: list[str], tensors: list) -> None:
        self.reload_weights(weights_iterator=zip(names, tensors))
