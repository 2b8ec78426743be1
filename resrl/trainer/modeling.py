"""Loading the policy model (optionally with LoRA) and exporting its weights for a rollout engine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from resrl.models.hf_api import enable_activation_checkpointing
from resrl.trainer.config import ModelConfig


def load_model(cfg: ModelConfig, adapter_dir: Path | None = None) -> tuple[Any, Any]:
    """The float32 causal LM and tokenizer of ``cfg.path``, LoRA-wrapped if configured.

    ``adapter_dir`` is a checkpoint's ``model/`` folder: full weights when training without LoRA, the adapter
    otherwise (then the base weights still come from ``cfg.path``).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = Path(cfg.path)
    if not base.is_dir():
        raise FileNotFoundError(f"model.path {cfg.path!r} is not a folder with a Hugging Face checkpoint")
    weights = adapter_dir if adapter_dir is not None and cfg.lora is None else base
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(str(weights), dtype=torch.float32)
    if cfg.gradient_checkpointing:
        enable_activation_checkpointing(model)
    if cfg.lora is not None:
        from peft import LoraConfig, PeftModel, get_peft_model

        if adapter_dir is not None:
            model = PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=True)
        else:
            model = get_peft_model(
                model,
                LoraConfig(
                    r=cfg.lora.r,
                    lora_alpha=cfg.lora.alpha,
                    lora_dropout=cfg.lora.dropout,
                    target_modules=cfg.lora.target_modules,
                    task_type="CAUSAL_LM",
                ),
            )
    model.eval()
    return model, tokenizer


def trainable_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The parameters the optimizer updates (all, or only the LoRA adapters)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    return params


def export_weights(model: torch.nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """``(name, tensor)`` pairs under the base model's own names, LoRA merged in, for an inference engine."""
    if hasattr(model, "merge_adapter"):
        model.merge_adapter()
        try:
            for name, tensor in model.get_base_model().state_dict().items():
                if "lora_" in name:
                    continue
                yield name.replace(".base_layer", ""), tensor.detach().clone()
        finally:
            model.unmerge_adapter()
    else:
        from resrl.trainer.distributed import full_tensor

        for name, tensor in model.state_dict().items():  # FSDP shards are gathered (a collective)
            yield name, full_tensor(tensor).detach()
