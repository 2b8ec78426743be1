"""A policy that writes given text: replays gold demonstrations through the collector, and drives the
template golden tests with known turns."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch

from resrl.rollout.policy import Generation, SamplingParams, per_prompt


class ScriptedPolicy:
    """``respond(prompt_text) -> turn_text`` decides each turn; the turn is tokenized as the tokenizer
    would (plus the stop token), and every token's log-prob is 0.0 (it is certain)."""

    def __init__(self, tokenizer: Any, respond: Callable[[str], str]) -> None:
        self.tokenizer = tokenizer
        self.respond = respond
        self.prompts_seen: list[list[int]] = []

    def generate(
        self, prompts: list[list[int]], sampling: SamplingParams | Sequence[SamplingParams]
    ) -> list[Generation]:
        """One scripted turn per prompt, cut at ``max_new_tokens`` like a sampled one."""
        out = []
        for prompt, params in zip(prompts, per_prompt(sampling, len(prompts)), strict=True):
            self.prompts_seen.append(list(prompt))
            text = self.respond(self.tokenizer.decode(prompt, skip_special_tokens=False))
            ids = list(self.tokenizer.encode(text, add_special_tokens=False))
            stop = params.stop_ids[0] if params.stop_ids else self.tokenizer.eos_token_id
            ids.append(int(stop))
            reason = "stop" if len(ids) <= params.max_new_tokens else "length"
            ids = ids[: params.max_new_tokens]
            out.append(Generation(token_ids=ids, logprobs=[0.0] * len(ids), finish_reason=reason))
        return out

    def update_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        """A script has no weights: nothing to load."""
        del named_tensors


class GoldPolicy:
    """Plays each task's gold solution (``ChatEnv.gold_actions``) through the real collector: every turn is the
    chat template's own rendering of the gold assistant message (what a model of that family would generate,
    end-of-turn token included), so a collection is a token-exactness and format pre-flight check for a
    tokenizer. ``resrl rollout --policy gold:PATH`` uses it.

    The collector tells it which task each opening prompt belongs to (:meth:`begin_episodes`). Tool-call ids are
    9 alphanumerics (accepted by every template we know); a turn with several calls that the template refuses
    to render together (Llama 3.1 takes one call per turn) is played as one turn per call. Where the template
    does not render calls back as a model writes them (Llama 3.2's writes strings unquoted), a turn is the tool
    format's own text and the end-of-turn token instead.
    """

    def __init__(self, tokenizer: Any, *, stop_ids: list[int] | None = None) -> None:
        self.tokenizer = tokenizer
        self.stop_ids = list(stop_ids or [])
        self.codec: Any = None
        self.format: Any = None
        self.structured = True
        self._games: dict[tuple[int, ...], _Game] = {}
        self._lengths: set[int] = set()
        self._env_classes: dict[str, Any] = {}

    shares_weights = False

    @classmethod
    def from_spec(cls, target: str, **kwargs: Any) -> GoldPolicy:
        """``gold:PATH``: gold play with the tokenizer at ``PATH``."""
        if kwargs:
            raise ValueError(f"the gold policy takes no options (got {', '.join(sorted(kwargs))})")
        return cls.from_pretrained(target)

    @classmethod
    def from_pretrained(cls, path: str) -> GoldPolicy:
        """The tokenizer (and ``generation_config`` stop tokens) of a checkpoint or tokenizer folder."""
        from transformers import AutoTokenizer

        from resrl.rollout.chat import generation_stop_ids

        return cls(AutoTokenizer.from_pretrained(path), stop_ids=generation_stop_ids(path))

    def begin_episodes(
        self, codec: Any, items: list[tuple[list[int], Any, list[dict]]], fmt: Any, structured: bool
    ) -> None:
        """Learn the opening prompt, task and tools of each episode about to run, the codec and tool format."""
        self.codec, self.format, self.structured = codec, fmt, structured
        for prompt, task, tools in items:
            key = tuple(prompt)
            if key not in self._games:
                self._games[key] = _Game(self._turns(task, tools))
                self._lengths.add(len(key))

    def _turns(self, task: Any, tools: list[dict]) -> list[list[int]]:
        from resrl.core.formats import mistral_call_id
        from resrl.core.messages import chat_template_message
        from resrl.core.registry import make
        from resrl.rollout.chat import TemplateError

        if task.env_id not in self._env_classes:
            self._env_classes[task.env_id] = type(make(task.env_id))
        turns = []
        for t, action in enumerate(self._env_classes[task.env_id].gold_actions(task)):
            calls = [
                c.model_copy(update={"id": mistral_call_id(task.id, t, i)}) for i, c in enumerate(action.tool_calls)
            ]
            if not self.structured:
                text = self.format.render(action.content, calls)
                ids = list(self.tokenizer.encode(text, add_special_tokens=False))
                turns.append([*ids, self.codec.end_of_turn_id])
                continue
            try:
                turns.append(self.codec.assistant_ids(chat_template_message(action.content, calls), tools))
            except TemplateError:
                if len(calls) < 2:
                    raise
                for i, call in enumerate(calls):  # one call per turn, the content with the first
                    message = chat_template_message(action.content if i == 0 else "", [call])
                    turns.append(self.codec.assistant_ids(message, tools))
        return turns

    def _game(self, prompt: list[int]) -> _Game:
        for n in sorted(self._lengths, reverse=True):
            game = self._games.get(tuple(prompt[:n]))
            if game is not None:
                return game
        raise ValueError("the gold policy was given a prompt of no episode it was told about (begin_episodes)")

    def generate(
        self, prompts: list[list[int]], sampling: SamplingParams | Sequence[SamplingParams]
    ) -> list[Generation]:
        """The next gold turn of each prompt's episode, cut at ``max_new_tokens`` like a sampled one."""
        out = []
        for prompt, params in zip(prompts, per_prompt(sampling, len(prompts)), strict=True):
            game = self._game(prompt)
            k = game.turn_of(prompt)
            if k < len(game.turns):
                ids = list(game.turns[k])
            else:  # the gold turns are spent but the env goes on: end politely
                ids = self.codec.assistant_ids({"role": "assistant", "content": "Done."})
            game.after.setdefault(k, tuple(prompt) + tuple(ids))
            reason = "stop" if len(ids) <= params.max_new_tokens else "length"
            ids = ids[: params.max_new_tokens]
            out.append(Generation(token_ids=ids, logprobs=[0.0] * len(ids), finish_reason=reason))
        return out

    def update_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Gold play has no weights: nothing to load."""
        del named_tensors


class _Game:
    """One task's gold turns, and the sequence each turn left (to tell which turn a prompt is at)."""

    def __init__(self, turns: list[list[int]]) -> None:
        self.turns = turns
        self.after: dict[int, tuple[int, ...]] = {}

    def turn_of(self, prompt: list[int]) -> int:
        for k in sorted(self.after, reverse=True):
            seq = self.after[k]
            if len(prompt) >= len(seq) and tuple(prompt[: len(seq)]) == seq:
                return k + 1
        return 0
