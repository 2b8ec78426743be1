"""The training loop (``resrl train``), checkpoints, logs and plots, SFT warm-up, and the CPU demo.

Heavy modules (torch, transformers) load on first use: ``from resrl.trainer import Trainer`` imports the loop.
"""

from resrl.trainer.config import Config, ConfigError, load_config, validate_config


def __getattr__(name: str):
    if name == "Trainer":
        from resrl.trainer.loop import Trainer

        return Trainer
    if name == "sft_warmup":
        from resrl.trainer.sft import sft_warmup

        return sft_warmup
    raise AttributeError(f"module 'resrl.trainer' has no attribute {name!r}")


__all__ = ["Config", "ConfigError", "Trainer", "load_config", "sft_warmup", "validate_config"]
