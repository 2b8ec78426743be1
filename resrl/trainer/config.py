"""The training configuration: one YAML file, flat sections, dotted ``key=value`` overrides.

``load_config("run.yaml", ["algo.scheme=nsr", "train.steps=20"])`` reads the file, applies the overrides (values
parsed as YAML scalars, so ``true``, ``3`` and ``1e-5`` get their natural types) and validates the result.
Unknown keys and bad values raise :class:`ConfigError` naming the dotted key and what was expected.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from resrl.algos import AlgoConfig


class ConfigError(ValueError):
    """The configuration cannot be used; the message names each bad key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class LoraConfig(_Section):
    """Optional LoRA adapters (peft); only the adapters train."""

    r: int = Field(8, ge=1)
    alpha: int = Field(16, ge=1)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])


class ModelConfig(_Section):
    """The policy model: a Hugging Face checkpoint folder."""

    path: str
    lora: LoraConfig | None = None
    gradient_checkpointing: bool = False
    hidden_layer: int = Field(-2, description="decoder layer whose output ResRL reads (negative: from the end)")
    device: str = Field(
        "auto",
        pattern=r"^(auto|cpu|cuda(:\d+)?)$",
        description="the trainer's model and batches: auto (cuda:LOCAL_RANK with CUDA, else cpu), cpu, cuda[:N]",
    )


class RolloutConfig(_Section):
    """How episodes are sampled."""

    backend: str = Field("hf", description="a policy backend: hf, vllm, or another in resrl.rollout.backends")
    n: int = Field(8, ge=1, description="samples per task (the group size)")
    max_turns: int = Field(4, ge=1)
    max_tokens: int = Field(512, ge=8, description="prompt + all turns")
    max_new_tokens_per_turn: int = Field(96, ge=1)
    temperature: float = Field(1.0, gt=0.0)
    tool_format: Literal["auto", "hermes", "pythonic", "llama3_json", "mistral", "openai"] = Field(
        "auto", description="auto: the tool-call format the tokenizer's chat template renders"
    )
    chat_template_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="options for every chat-template rendering, e.g. {enable_thinking: false}"
    )
    engine_kwargs: dict[str, Any] = Field(default_factory=dict, description="extra vllm.LLM arguments")
    servers: list[str] = Field(
        default_factory=list,
        description="backend=servers: URLs of vLLM OpenAI servers (http://host:port), run with VLLM_SERVER_DEV_MODE=1",
    )
    sync: Literal["auto", "reload", "nccl"] = Field(
        "auto", description="backend=servers weight sync: auto (nccl with CUDA and NCCL-ready servers), reload, nccl"
    )
    sync_timeout_s: float = Field(120.0, gt=0.0, description="per server and sync; a server past it leaves rotation")
    sync_dir: str | None = Field(
        None, description="sync=reload: checkpoint folder the servers can read (default: OUT_DIR/weights_sync)"
    )

    @model_validator(mode="after")
    def _servers_for_servers(self) -> RolloutConfig:
        if self.backend == "servers" and not self.servers:
            raise ValueError("rollout.backend=servers needs rollout.servers: [URL, ...] (vLLM OpenAI servers)")
        if self.servers and self.backend != "servers":
            raise ValueError(f"rollout.servers is used only with rollout.backend=servers (got {self.backend!r})")
        bad = [u for u in self.servers if not u.startswith(("http://", "https://"))]
        if bad:
            raise ValueError(f"rollout.servers URLs must start with http:// or https:// (got {', '.join(bad)})")
        return self

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        from resrl.rollout.backends import backend_class

        cls_ = backend_class(value)  # unknown names raise, listing the known ones
        if not hasattr(cls_, "for_trainer"):
            raise ValueError(f"policy backend {value!r} cannot sample for the trainer (it has no for_trainer)")
        return value


class DataConfig(_Section):
    """Which environments and how many tasks of each split."""

    envs: list[str] = Field(min_length=1)
    train_tasks: int = Field(64, ge=1, description="train tasks per environment")
    test_tasks: int = Field(16, ge=1, description="test tasks per environment")
    seed: int = 0
    env_kwargs: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="constructor kwargs per env id, e.g. {fc/multi/x: {reward_mode: fraction}}"
    )
    env_servers: list[str] = Field(
        default_factory=list,
        description="base URLs of `resrl serve env` replicas to run episodes on (sticky sessions); empty: in process",
    )

    @field_validator("env_servers")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        bad = [u for u in value if not u.startswith(("http://", "https://"))]
        if bad:
            raise ValueError(f"env server URLs must start with http:// or https:// (got {', '.join(bad)})")
        return value

    @model_validator(mode="after")
    def _servers_take_no_kwargs(self) -> DataConfig:
        if self.env_servers and self.env_kwargs:
            raise ValueError("env_kwargs apply to in-process envs only; configure them on the env servers instead")
        return self


class OptimConfig(_Section):
    """AdamW and the PPO schedule."""

    lr: float = Field(1e-5, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    grad_clip: float | None = Field(1.0, gt=0.0)
    ppo_epochs: int = Field(1, ge=1)
    mini_batch_size: int = Field(16, ge=1, description="trajectories per optimizer step")
    micro_batch_size: int = Field(8, ge=1, description="trajectories per forward/backward")

    @model_validator(mode="after")
    def _micro_fits(self) -> OptimConfig:
        if self.micro_batch_size > self.mini_batch_size:
            raise ValueError("micro_batch_size must not exceed mini_batch_size")
        return self


class TrainLoopConfig(_Section):
    """Steps, evaluation, checkpoints and outputs."""

    steps: int = Field(10, ge=0)
    tasks_per_step: int = Field(4, ge=1, description="groups collected per step")
    eval_every: int = Field(5, ge=0, description="0: only before the first and after the last step")
    eval_k: int = Field(4, ge=1, description="samples per test task for Avg@k / Pass@k")
    eval_at_start: bool = Field(True, description="evaluate the starting weights before the first step")
    filter_groups: bool = Field(
        False, description="train only on groups with both successes and failures (DAPO-style dynamic sampling)"
    )
    eval_temperature: float = Field(1.0, gt=0.0)
    save_every: int = Field(0, ge=0, description="0: only at the end")
    out_dir: str = "runs/resrl"
    seed: int = 0
    parallel: Literal["auto", "ddp", "fsdp"] = Field(
        "auto", description="under torchrun: ddp (whole model per rank) or fsdp (FSDP2 shards); auto: ddp, none alone"
    )
    async_steps: Literal[0, 1] = Field(
        0,
        description="1: collect step t+1's rollouts while step t trains (one step stale, corrected by algo.tis_cap)",
    )
    plots: bool = True
    tensorboard: bool = True


class SFTConfig(_Section):
    """Supervised warm-up on gold demonstrations before RL."""

    enabled: bool = False
    envs: list[str] = Field(default_factory=list, description="defaults to data.envs")
    tasks: int = Field(64, ge=1, description="train tasks per environment")
    epochs: int = Field(1, ge=1)
    batch_size: int = Field(8, ge=1)
    lr: float = Field(1e-3, gt=0.0)


class Config(_Section):
    """A whole training run."""

    model: ModelConfig
    data: DataConfig
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    algo: AlgoConfig = Field(default_factory=AlgoConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    train: TrainLoopConfig = Field(default_factory=TrainLoopConfig)
    sft: SFTConfig = Field(default_factory=SFTConfig)


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set ``section.key=value`` pairs into a raw config dict (a copy); values are read as YAML scalars."""
    out = yaml.safe_load(yaml.safe_dump(raw)) or {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} must look like section.key=value")
        parts = key.strip().split(".")
        node = out
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {part!r} is a value, not a section")
            node = child
        node[parts[-1]] = yaml.safe_load(value) if value.strip() else ""
    return out


def _field_names(loc: tuple[Any, ...]) -> list[str]:
    model: Any = Config
    for part in loc[:-1]:
        fields = getattr(model, "model_fields", {})
        if part not in fields:
            return []
        model = fields[part].annotation
        model = next((a for a in getattr(model, "__args__", ()) if hasattr(a, "model_fields")), model)
    return list(getattr(model, "model_fields", {}))


def _explain(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        key = ".".join(str(p) for p in loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            close = difflib.get_close_matches(str(loc[-1]), _field_names(loc), n=1)
            hint = f"; did you mean {'.'.join([*map(str, loc[:-1]), close[0]])}?" if close else ""
            lines.append(f"  {key}: unknown key{hint}")
        else:
            got = f" (got {err['input']!r})" if err["type"] != "missing" else ""
            lines.append(f"  {key}: {err['msg']}{got}")
    return "invalid config:\n" + "\n".join(lines)


def validate_config(raw: dict[str, Any]) -> Config:
    """Validate a raw dict into a :class:`Config`, or raise :class:`ConfigError` with readable lines."""
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_explain(exc)) from None


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> Config:
    """Read a YAML config (or start from nothing when ``path`` is None), apply overrides and validate."""
    raw: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"config file {p} does not exist")
        try:
            raw = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: not valid YAML: {exc}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{p}: the top level must be a mapping of sections")
    return validate_config(apply_overrides(raw, overrides or []))
