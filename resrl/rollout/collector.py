"""The multi-turn collector: tasks × n samples → token-exact trajectories.

Every episode is an explicit state machine:

    GENERATE ──(policy tokens; stop token or turn limit)──► STEP ──(env.step in a worker thread)──► OBSERVE
       ▲                                                                                             │
       └──────────────── turn suffix + observation delta appended (mask 0) ◄─────────────────────────┘

and DONE with a ``finish_reason``: ``stop`` (env terminated), ``max_turns`` (our turn cap or the env's
truncation), ``length`` (token budget or a turn cut at ``max_new_tokens_per_turn``), ``timeout`` or
``error``. Faults that are ours (env crash, env-reported ``infra_error``, timeout, engine failure, a chat
template or tokenizer raising on one episode's messages) set ``infra_error`` so the trainer drops the episode
instead of scoring it 0; the other episodes of the batch complete. A template that cannot be used at all is
refused when the collector is built, before any episode.

Assistant turns are recorded in ``messages`` as the chat template expects them: the turn's text parsed by the
tool-call format into content and structured ``tool_calls`` (with the ids the env answered), so the template
renders the recorded conversation natively.

With a policy that offers a :class:`~resrl.rollout.policy.GenerationStream` (``hf``, ``vllm``), episodes run at
their own pace: an episode whose turn ended steps its env and rejoins the running batch while the others keep
decoding (continuous batching). Otherwise (``openai``) they advance in lock-step rounds, one batched call each.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from resrl.core.formats import AUTO, ToolCallParseError, get_format
from resrl.core.messages import Message, chat_template_message
from resrl.core.task import Task
from resrl.rollout.chat import ChatCodec, generation_stop_ids, renders_calls_faithfully, resolve_tool_format
from resrl.rollout.env_router import EnvRouter
from resrl.rollout.episode import Episode, answer_ids
from resrl.rollout.policy import Generation, Policy, SamplingParams
from resrl.rollout.seeding import derive_seed
from resrl.rollout.trajectory import Trajectory

log = logging.getLogger("resrl.rollout")

EnvFactory = Callable[[], Any]
CLOSE_TIMEOUT = 10.0  # seconds to wait for envs to close at the end of a collection


class Collector:
    """Runs episodes of ``env`` with ``policy`` and returns :class:`Trajectory` records.

    ``env`` is an env id for :func:`resrl.make`, a factory returning any env with gymnasium ``reset``/``step``,
    plain or ``async`` (such as ``RemoteEnv`` / ``AsyncRemoteEnv``), or None: each task then runs in the env
    its ``env_id`` names (an :class:`~resrl.rollout.env_router.EnvRouter`: in process with ``env_kwargs`` per
    env id, or on the ``env_servers`` replicas), so one collection batches tasks of several envs.

    ``tool_format`` is ``"auto"`` (the format the tokenizer's chat template renders; the resolved name is
    :attr:`tool_format`, so pass it to a factory's envs) or a format name. ``chat_template_kwargs`` go to every
    rendering (``{"enable_thinking": False}`` for Qwen3). Stop tokens are the template's end-of-turn token, the
    policy model's ``generation_config`` ``eos_token_id`` list and the tokenizer's eos.

    ``max_tokens`` caps the response (all turns, observations included); ``episode_timeout`` is wall-clock
    seconds per episode; env calls run in ``env_workers`` threads so slow or remote envs overlap.

    ``overlap_env``: with continuous batching, whether the engine keeps decoding while env steps run. Then the
    moment an episode rejoins depends on how fast its env answered, so sampling is not reproducible from the
    seed. The default overlaps only for ``async`` (remote) envs; for sync envs the engine waits for the steps
    its last step triggered, which keeps a seeded collection reproducible.

    Seeds: every generation request carries ``derive_seed(collect seed, env id, task id, group, sample, turn)``,
    so with a backend that honours per-request seeds (``hf``, OpenAI-style servers) an episode's tokens do not
    depend on which other episodes share the batch, nor on how many ranks split the groups. The collect seed is
    :meth:`collect`'s ``seed``; without one, ``derive_seed(seed, k)`` for the collector's ``k``-th collection
    (a new collector with the same ``seed`` repeats its collections); with neither, requests are unseeded and
    the backend draws from its own RNG (for ``hf``, torch's global one).

    After :meth:`collect`, ``timings`` holds the seconds spent inside the engine (``generate_s``), the rest of
    the loop (``env_s``: env steps, templating, bookkeeping) and the number of engine calls.
    """

    def __init__(
        self,
        policy: Policy,
        env: str | EnvFactory | None = None,
        *,
        tool_format: str = AUTO,
        max_turns: int = 8,
        max_tokens: int = 2048,
        max_new_tokens_per_turn: int = 256,
        temperature: float = 1.0,
        episode_timeout: float = 300.0,
        env_workers: int = 16,
        chat_template: str | None = None,
        chat_template_kwargs: dict[str, Any] | None = None,
        seed: int | None = None,
        overlap_env: bool | None = None,
        progress: bool = True,
        env_kwargs: dict[str, dict[str, Any]] | None = None,
        env_servers: list[str] | None = None,
    ) -> None:
        if max_turns < 1 or max_tokens < 1 or max_new_tokens_per_turn < 1:
            raise ValueError("max_turns, max_tokens and max_new_tokens_per_turn must be positive")
        self.policy = policy
        # Up front: a template that cannot be used raises TemplateError here, naming itself and the cause.
        self.codec = ChatCodec(
            policy.tokenizer,
            stop_ids=_policy_stop_ids(policy),
            chat_template=chat_template,
            template_kwargs=chat_template_kwargs,
        )
        self.tool_format = resolve_tool_format(self.codec, tool_format)
        self.format = get_format(self.tool_format)
        # structured tool_calls in the recorded messages only where the template renders them back as written
        self.structured_calls = self.tool_format != "openai" and renders_calls_faithfully(self.codec, self.tool_format)
        if (env_kwargs or env_servers) and env is not None:
            raise ValueError("env_kwargs and env_servers apply only with env=None (each task routed to its env)")
        router = EnvRouter(self.tool_format, env_kwargs, env_servers or ())
        if env is None:
            self.env_factory: Callable[[Task], Any] = router
        elif isinstance(env, str):
            env_id = env
            self.env_factory = lambda task: router({"env_id": env_id})
        else:
            self.env_factory = lambda task: env()
        self.max_turns = max_turns
        self.max_tokens = max_tokens
        self.max_new_tokens_per_turn = max_new_tokens_per_turn
        self.temperature = temperature
        self.episode_timeout = episode_timeout
        self.env_workers = env_workers
        self.seed = seed
        self.overlap_env = overlap_env
        self.progress = progress
        self._collects = 0
        self._collect_seed: int | None = None
        self.timings: dict[str, float] = {"generate_s": 0.0, "env_s": 0.0, "engine_calls": 0}

    # -- public --------------------------------------------------------------------------------------------
    def collect(self, tasks: list[Task], n: int = 1, *, seed: int | None = None) -> list[Trajectory]:
        """``n`` episodes per task (one group per task); trajectories in task order, then sample order.

        ``seed`` seeds this collection's sampling (the trainer passes one per step); see the class docstring.
        """
        if n < 1:
            raise ValueError("n must be at least 1")
        self._collects += 1
        if seed is None and self.seed is not None:
            seed = derive_seed(self.seed, self._collects)
        self._collect_seed = seed
        start = time.monotonic()
        seen: dict[tuple[str, str], int] = {}
        episodes = []
        for t in tasks:
            group = seen[t.env_id, t.id] = seen.get((t.env_id, t.id), -1) + 1
            episodes += [
                Episode(task=t, sample=k, group=group, deadline=start + self.episode_timeout, env_id=t.env_id)
                for k in range(n)
            ]
        bar = _progress_bar(len(episodes), self.progress)
        self.timings = {"generate_s": 0.0, "env_s": 0.0, "engine_calls": 0}
        self._loop = asyncio.new_event_loop()
        loop_thread = threading.Thread(target=self._loop.run_forever, name="resrl-env-loop", daemon=True)
        loop_thread.start()
        pool = ThreadPoolExecutor(max_workers=self.env_workers, thread_name_prefix="resrl-env")
        try:
            self._reset_all(episodes, pool)
            begin = getattr(self.policy, "begin_episodes", None)
            if callable(begin):  # a scripted policy learns which task each opening prompt belongs to
                live = [e for e in episodes if e.finish_reason is None]
                begin(self.codec, [(e.prompt_ids, e.task, e.tools) for e in live], self.format, self.structured_calls)
            self._bar_done = 0
            self._update_bar(bar, episodes)
            opener = getattr(self.policy, "open_stream", None)
            stream = opener(seed) if callable(opener) else None
            if stream is not None:
                try:
                    self._run_stream(stream, episodes, pool, bar)
                finally:  # the engine must not keep a failed collection's requests and sessions
                    for i in range(len(episodes)):
                        stream.abort(i)
                        stream.release(i)
            else:
                self._run_rounds(episodes, pool, bar)
            closing = [pool.submit(self._close, e.env) for e in episodes]
            wait(closing, timeout=CLOSE_TIMEOUT)
        finally:
            # A hung env call must not hang the collector: its thread is abandoned, not joined.
            pool.shutdown(wait=False, cancel_futures=True)
            self._loop.call_soon_threadsafe(self._loop.stop)
            loop_thread.join(timeout=CLOSE_TIMEOUT)
            if not loop_thread.is_alive():
                self._loop.close()
        bar.close()
        trajectories = [e.record(self.temperature, self.tool_format) for e in episodes]
        n_tok = sum(t.n_policy_tokens for t in trajectories)
        log.info(
            "collected %d episodes (%d policy tokens) in %.1fs (in the engine %.1fs, env steps and templating "
            "%.1fs, %d engine calls); %d infra errors",
            len(trajectories),
            n_tok,
            time.monotonic() - start,
            self.timings["generate_s"],
            self.timings["env_s"],
            self.timings["engine_calls"],
            sum(t.infra_error is not None for t in trajectories),
        )
        return trajectories

    # -- states --------------------------------------------------------------------------------------------
    def _reset_all(self, episodes: list[Episode], pool: ThreadPoolExecutor) -> None:
        futures = [pool.submit(self._reset_one, e) for e in episodes]
        for e, fut in zip(episodes, futures, strict=True):
            self._wait(e, fut, "reset")

    def _reset_one(self, e: Episode) -> None:
        e.env = self.env_factory(e.task)
        observation, info = self._call(e.env.reset, seed=e.sample, options={"task": e.task})
        e.tools = list(info.get("tools") or e.task.tools)
        e.env_id = info.get("env_id") or e.env_id
        e.messages = list(observation)
        try:
            e.prompt_ids = self.codec.prompt_ids(e.messages, e.tools)
        except Exception as exc:  # this episode's messages broke the template or tokenizer: ours, not the model's
            self._template_failed(e, exc)

    def _sampling(self, e: Episode) -> SamplingParams | None:
        """This turn's sampling, or None (and the episode finished) when the token budget is spent."""
        budget = min(self.max_new_tokens_per_turn, self.max_tokens - len(e.response_ids))
        if budget <= 0:
            e.finish("length")
            return None
        seed = None
        if self._collect_seed is not None:  # what identifies this request, never its place in the batch
            seed = derive_seed(self._collect_seed, e.task.env_id, e.task.id, e.group, e.sample, e.turns)
        return SamplingParams(
            temperature=self.temperature, max_new_tokens=budget, stop_ids=self.codec.stop_ids, seed=seed
        )

    def _take(self, e: Episode, g: Generation) -> None:
        """GENERATE → STEP: record the turn's tokens."""
        e.extend(list(g.token_ids), policy_logprobs=list(g.logprobs))
        e.messages.append(self._assistant_message(self.codec.decode_turn(list(g.token_ids))))
        if g.finish_reason == "length" or not g.token_ids or g.token_ids[-1] not in self.codec.stop_ids:
            e.finish("length")

    def _observe(self, e: Episode, fut: Future) -> None:
        """STEP → OBSERVE → GENERATE (or DONE): apply the env step's outcome."""
        result = self._wait(e, fut, "step")
        if result is None:
            return
        observation, reward, terminated, truncated, info = result
        e.turns += 1
        e.reward += float(reward)
        e.components.update(info.get("reward_components") or {})
        if info.get("infra_error"):
            e.finish("error", f"env reported an infrastructure error: {info['infra_error']}")
        elif terminated:
            e.finish("stop")
        elif truncated or e.turns >= self.max_turns:
            e.finish("max_turns")
        else:
            observation = list(observation)
            answer_ids(e.messages[-1], observation)
            e.messages += observation
            try:
                between = self.codec.turn_suffix(e.tools) + self.codec.observation_ids(observation, e.tools)
            except Exception as exc:  # this episode's messages broke the template or tokenizer
                self._template_failed(e, exc)
                return
            if len(e.response_ids) + len(between) >= self.max_tokens:
                e.finish("length")
            else:
                e.extend(between)
        if e.finish_reason is None and time.monotonic() > e.deadline:
            e.finish("timeout", f"episode exceeded {self.episode_timeout:.0f}s")

    def _assistant_message(self, text: str) -> Message:
        """A generated turn as the template expects it: content and structured calls where the format reads
        calls, the raw text otherwise (the env reads the raw text either way)."""
        try:
            parsed = self.format.parse(text) if self.structured_calls else None
        except ToolCallParseError:
            parsed = None
        if parsed is None or not parsed.tool_calls:
            return {"role": "assistant", "content": self.codec.message_content(text), "raw_text": text}
        message = chat_template_message(parsed.content, parsed.tool_calls)
        message["raw_text"] = text  # what the model wrote, which the env is given
        return message

    def _template_failed(self, e: Episode, exc: Exception) -> None:
        log.warning("chat template failed for task %s: %s: %s", e.task.id, type(exc).__name__, exc)
        e.finish("error", f"chat template or tokenizer failed: {type(exc).__name__}: {exc}")

    def _start_step(self, e: Episode, pool: ThreadPoolExecutor) -> Future:
        last = e.messages[-1]
        action = last.get("raw_text", last["content"])
        if getattr(e.env, "fast_step", False) is True and not inspect.iscoroutinefunction(e.env.step):
            # the env promises a step of pure computation (see ChatEnv.fast_step): a thread hop costs more
            done: Future = Future()
            try:
                done.set_result(e.env.step(action))
            except Exception as exc:  # reported like a failed step in a worker
                done.set_exception(exc)
            return done
        return pool.submit(self._call, e.env.step, action)

    def _generation_failed(self, episodes: list[Episode], exc: Exception) -> None:
        # the engine failed, not the model: every episode it held is unusable
        log.error("generation failed for %d episodes: %s: %s", len(episodes), type(exc).__name__, exc)
        for e in episodes:
            e.finish("error", f"generation failed: {type(exc).__name__}: {exc}")

    # -- drivers -------------------------------------------------------------------------------------------
    def _run_rounds(self, episodes: list[Episode], pool: ThreadPoolExecutor, bar: Any) -> None:
        """Lock-step: one batched generation for every active episode, then every env step, and again."""
        while active := [e for e in episodes if e.finish_reason is None]:
            t0 = time.monotonic()
            ready = [(e, sp) for e in active if (sp := self._sampling(e)) is not None]
            engine_s = 0.0
            if ready:
                self.timings["engine_calls"] += 1
                t1 = time.monotonic()
                try:
                    generations = self.policy.generate(
                        [e.prompt_ids + e.response_ids for e, _ in ready], [sp for _, sp in ready]
                    )
                except Exception as exc:
                    self._generation_failed([e for e, _ in ready], exc)
                    generations = []
                engine_s = time.monotonic() - t1
                for (e, _), g in zip(ready, generations, strict=False):
                    self._take(e, g)
            stepping = [(e, self._start_step(e, pool)) for e in active if e.finish_reason is None]
            for e, fut in stepping:
                self._observe(e, fut)
            self._account(t0, engine_s)
            self._update_bar(bar, episodes)

    def _run_stream(self, stream: Any, episodes: list[Episode], pool: ThreadPoolExecutor, bar: Any) -> None:
        """Continuous batching: each episode goes back to the engine as soon as its env step returns."""
        live = [e for e in episodes if e.finish_reason is None]
        overlap = self.overlap_env
        if overlap is None:
            overlap = any(inspect.iscoroutinefunction(getattr(e.env, "step", None)) for e in live)
        generating: dict[int, Episode] = {}
        stepping: dict[Future, int] = {}

        def submit(i: int) -> None:
            e = episodes[i]
            if (sp := self._sampling(e)) is not None:
                stream.add(i, e.prompt_ids + e.response_ids, sp)
                generating[i] = e

        for i, e in enumerate(episodes):
            if e.finish_reason is None:
                submit(i)
        while generating or stepping:
            t0 = time.monotonic()
            engine_s = 0.0
            if generating:
                self.timings["engine_calls"] += 1
                try:
                    finished = stream.step()
                except Exception as exc:
                    self._generation_failed(list(generating.values()), exc)
                    finished = []
                    generating.clear()
                engine_s = time.monotonic() - t0
                for i, g in finished:
                    e = generating.pop(i)
                    self._take(e, g)
                    if e.finish_reason is None:
                        stepping[self._start_step(e, pool)] = i
                    else:
                        stream.release(i)
            if overlap and generating:
                ready = [f for f in stepping if f.done()]
            elif overlap and stepping:
                timeout = max(0.0, min(episodes[i].deadline for i in stepping.values()) - time.monotonic())
                wait(stepping, timeout=timeout, return_when=FIRST_COMPLETED)
                now = time.monotonic()
                ready = [f for f, i in stepping.items() if f.done() or episodes[i].deadline <= now]
            else:
                ready = list(stepping)
            for fut in sorted(ready, key=stepping.__getitem__):  # episode order: reproducible admission
                i = stepping.pop(fut)
                self._observe(episodes[i], fut)
                if episodes[i].finish_reason is None:
                    submit(i)
                if episodes[i].finish_reason is not None:  # the env ended it, or no token budget is left
                    stream.release(i)
            now = time.monotonic()
            for i in [i for i, e in generating.items() if now > e.deadline]:
                stream.abort(i)
                generating.pop(i).finish("timeout", f"episode exceeded {self.episode_timeout:.0f}s")
            self._account(t0, engine_s)
            self._update_bar(bar, episodes)

    def _account(self, start: float, engine_s: float) -> None:
        """Split a loop iteration's time: inside the engine, and the rest (env steps, templating, bookkeeping)."""
        self.timings["generate_s"] += engine_s
        self.timings["env_s"] += time.monotonic() - start - engine_s

    def _update_bar(self, bar: Any, episodes: list[Episode]) -> None:
        done = sum(e.finish_reason is not None for e in episodes)
        if done > self._bar_done:
            bar.update(done - self._bar_done)
            self._bar_done = done

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call an env method from a worker thread; an ``async`` env's coroutine runs on the collector's loop
        (one loop for every episode, so async HTTP clients stay on the loop they were first used on)."""
        result = fn(*args, **kwargs)
        if inspect.isawaitable(result):
            return asyncio.run_coroutine_threadsafe(_awaited(result), self._loop).result()
        return result

    def _close(self, env: Any) -> None:
        try:
            if env is not None:
                self._call(env.close)
        except Exception as exc:  # closing is best effort; the episode is already recorded
            log.debug("env close failed: %s", exc)

    def _wait(self, e: Episode, fut: Future, what: str) -> Any:
        """The future's result, or None with the episode finished as an infrastructure failure."""
        try:
            return fut.result(timeout=max(0.0, e.deadline - time.monotonic()))
        except FutureTimeout:
            e.finish("timeout", f"env {what} did not return within the {self.episode_timeout:.0f}s episode timeout")
        except Exception as exc:  # the env crashed: our fault, not the model's
            log.warning("env %s failed for task %s: %s: %s", what, e.task.id, type(exc).__name__, exc)
            e.finish("error", f"env {what} raised {type(exc).__name__}: {exc}")
        return None


def _policy_stop_ids(policy: Policy) -> list[int]:
    """Stop tokens the policy's model declares (its ``generation_config``), if it has any."""
    declared = getattr(policy, "stop_ids", None)
    if declared:
        return list(declared)
    model = getattr(policy, "model", None)
    if model is not None and not isinstance(model, str):
        return generation_stop_ids(model)
    path = getattr(policy.tokenizer, "name_or_path", "")
    return generation_stop_ids(path) if path else []


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def _progress_bar(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="episodes", unit="ep", disable=not enabled, leave=False)
