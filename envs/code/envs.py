"""The code environments: ``code/function``, ``code/stdio`` (single turn) and ``code/interactive``.

A reply is graded by the last fenced code block in it (```python preferred), run in the sandbox against the
task's tests. Reward 1.0 when every test passes, else 0.0; ``info`` carries the status and the pass fraction.
A sandbox fault is reported as ``info["infra_error"]`` so that the trainer masks the rollout.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar

from resrl import ChatEnv, ParsedAction, Task, ToolCall, ToolCallParseError, ToolSet, Transition, tool
from resrl.core.messages import tool_message
from resrl.core.task import Split
from resrl.core.tools import Injected, ToolError
from resrl.sandbox import AssertTest, CallTest, Job, Limits, Result, StdioTest
from resrl.sandbox.protocol import Sandbox
from resrl.sandbox.shared import shared_sandbox
from resrl_envs.code import humaneval
from resrl_envs.code.problems import Problem, draw_problems

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)```", re.DOTALL)
TOOL_OUTPUT_CHARS = 4000


def extract_code(text: str) -> str | None:
    """The last ```python block of ``text`` (else the last fenced block of any language), or None."""
    blocks = _FENCE.findall(text or "")
    python = [body for lang, body in blocks if lang.lower() in ("python", "py", "python3")]
    chosen = python or [body for _, body in blocks]
    return chosen[-1] if chosen else None


def _fenced(code: str) -> str:
    return f"```python\n{code}```"


_STDIO_MAIN = (
    "import sys\n\ndata = sys.stdin.read().split()\nnums = [int(x) for x in data[1:]]\nresult = solve(nums)\n"
    "print(' '.join(map(str, result)) if isinstance(result, list) else result)\n"
)


def _stdin_of(nums: list[int]) -> str:
    return f"{len(nums)}\n{' '.join(map(str, nums))}\n"


def _stdout_of(value: Any) -> str:
    return " ".join(map(str, value)) if isinstance(value, list) else str(value)


class CodeEnv(ChatEnv):
    """Shared grading: subclasses say how tasks are built; the sandbox comes from ``sandbox`` (a spec:
    ``"local"``, ``"docker"`` or a sandbox-server URL; default ``$RESRL_SANDBOX_URL`` / ``$RESRL_SANDBOX_BACKEND``
    / local)."""

    tags: ClassVar[tuple[str, ...]] = ("code",)
    style: ClassVar[str] = "function"

    def __init__(self, *, sandbox: str | Sandbox | None = None, limits: dict[str, Any] | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self._sandbox_spec = sandbox
        self.limits = Limits.model_validate(limits or {"wall_s": 10.0, "cpu_s": 10})

    @property
    def sandbox(self) -> Sandbox:
        """The sandbox jobs run in (resolved on first use)."""
        if isinstance(self._sandbox_spec, str | None):
            self._sandbox_spec = shared_sandbox(self._sandbox_spec)
        return self._sandbox_spec

    # -- tasks ---------------------------------------------------------------------------------------------
    @classmethod
    def generate_tasks(cls, split: Split, n: int, seed: int) -> list[Task]:
        if split == "eval":
            if cls.style == "stdio":
                raise ValueError("HumanEval is function-style: use code/function or code/interactive for eval")
            return [cls._humaneval_task(p) for p in humaneval.draw(n, seed)]
        return [cls._task(p, split, seed, i) for i, p in enumerate(draw_problems(split, n, seed))]

    @classmethod
    def _prompt(cls, problem: Problem) -> str:
        if cls.style == "stdio":
            return (
                "Write a complete Python program. It reads a count n on the first line and n integers `nums` on "
                f"the second line; it must {problem.statement} and print the result (a list as space-separated "
                "values on one line). Reply with the program in a ```python code block."
            )
        return (
            f"Write a Python function `solve(nums: list[int])` that, given a list of integers nums, must "
            f"{problem.statement}. Reply with the code in a ```python code block."
        )

    @classmethod
    def _task(cls, problem: Problem, split: str, seed: int, i: int) -> Task:
        if cls.style == "stdio":
            tests = [StdioTest(input=_stdin_of(a), output=_stdout_of(v)) for a, v in problem.cases]
            gold = problem.solution + "\n" + _STDIO_MAIN
        else:
            tests = [CallTest(fn="solve", args=[a], expected=v) for a, v in problem.cases]
            gold = problem.solution
        return Task(
            id=f"{cls.style}-{split}-{seed}-{i}-{problem.key}",
            env_id=f"code/{cls.env_name()}",
            messages=[{"role": "user", "content": cls._prompt(problem)}],
            tools=cls.tool_schemas(),
            answer={"tests": [t.model_dump() for t in tests], "gold": gold, "prefix": ""},
            metadata={"family": problem.family, "params": problem.params, "source": "generated"},
            split=split,
        )

    @classmethod
    def _humaneval_task(cls, p: dict[str, Any]) -> Task:
        prompt = (
            "Complete the following Python function. Reply with the whole function (imports included) in a "
            f"```python code block.\n\n```python\n{p['prompt']}```"
        )
        test = AssertTest(code=humaneval.check_program(p))
        return Task(
            id=f"humaneval-{p['task_id'].split('/')[-1]}",
            env_id=f"code/{cls.env_name()}",
            messages=[{"role": "user", "content": prompt}],
            tools=cls.tool_schemas(),
            answer={"tests": [test.model_dump()], "gold": p["prompt"] + p["canonical_solution"], "prefix": p["prompt"]},
            metadata={"source": "humaneval", "task_id": p["task_id"], "entry_point": p["entry_point"]},
            split="eval",
        )

    @classmethod
    def env_name(cls) -> str:
        """The part of the env id after ``code/``."""
        return cls.style

    @classmethod
    def tool_schemas(cls) -> list[dict[str, Any]]:
        """Tools offered to the model (none for single-turn envs)."""
        return []

    # -- grading -------------------------------------------------------------------------------------------
    def grade(self, text: str) -> Transition:
        """Run the code block of ``text`` against the task's tests; the episode ends."""
        code = extract_code(text)
        if code is None:
            return Transition(terminated=True, info={"status": "no_code", "pass_fraction": 0.0})
        answer = self.task.answer
        job = Job(code=answer["prefix"] + code, tests=answer["tests"], limits=self.limits)
        result = self.sandbox.run(job)
        info: dict[str, Any] = {
            "status": result.status,
            "pass_fraction": result.pass_fraction,
            "reward_components": {"tests_passed": result.pass_fraction},
        }
        if result.status == "infra_error":
            info["infra_error"] = result.message
        return Transition(reward=float(result.passed), terminated=True, info=info)

    def _act(self, action: ParsedAction | ToolCallParseError) -> Transition:
        if isinstance(action, ToolCallParseError):
            return Transition(terminated=True, info={"status": "no_code", "pass_fraction": 0.0})
        return self.grade(action.content)

    @classmethod
    def gold_actions(cls, task: Task) -> list[ParsedAction]:
        return [ParsedAction(content="Here is my solution.\n\n" + _fenced(task.answer["gold"]))]


class FunctionEnv(CodeEnv):
    """Write a function; call-based tests (generated tasks) or HumanEval's asserts (split ``eval``)."""

    description = "Write a Python function in one reply; reward 1 when every test passes (HumanEval as eval)."
    style = "function"


class StdioEnv(CodeEnv):
    """Write a program reading stdin and printing the answer; stdin/stdout tests."""

    description = "Write a Python stdin/stdout program in one reply; reward 1 when every test passes."
    style = "stdio"


@tool
def run_python(code: str, sandbox: Annotated[Any, Injected], limits: Annotated[Any, Injected], stdin: str = "") -> str:
    """Run a Python program in the sandbox and return its exit status, stdout and stderr.

    Args:
        code: the complete program to run.
        stdin: text given to the program on standard input.
    """
    result: Result = sandbox.run(Job(code=code, stdin=stdin, limits=limits))
    if result.status == "infra_error":
        raise ToolError(f"the sandbox failed, not your code: {result.message}")
    parts = [f"status: {result.status}" + (f" ({result.message})" if result.message else "")]
    for name, text in (("stdout", result.stdout), ("stderr", result.stderr)):
        if len(text) > TOOL_OUTPUT_CHARS:
            text = text[:TOOL_OUTPUT_CHARS] + f"\n[... {len(text) - TOOL_OUTPUT_CHARS} more characters not shown]"
        parts.append(f"{name}:\n{text}")
    return "\n".join(parts)


class InteractiveEnv(CodeEnv):
    """Multi-turn: try code with the ``run_python`` tool, read the result, then reply with the final code block
    (a turn without tool calls is the submission and is graded)."""

    description = "Write a Python function, testing drafts with a run_python tool first; the final reply is graded."
    multi_turn = True
    style = "function"
    tools = ToolSet([run_python])

    @classmethod
    def env_name(cls) -> str:
        return "interactive"

    @classmethod
    def tool_schemas(cls) -> list[dict[str, Any]]:
        return cls.tools.schemas()

    def _act(self, action: ParsedAction | ToolCallParseError) -> Transition:
        if isinstance(action, ToolCallParseError):
            return Transition([self.error_message(f"Error: {action}")])
        if action.tool_calls:
            results = [self.tools.call(c, sandbox=self.sandbox, limits=self.limits) for c in action.tool_calls]
            infra = [r.content for r in results if r.error == "tool_error" and "sandbox failed" in r.content]
            observation = [tool_message(r.content, name=r.name, tool_call_id=r.call_id) for r in results]
            return Transition(observation, info={"infra_error": infra[0]} if infra else {})
        return self.grade(action.content)

    @classmethod
    def gold_actions(cls, task: Task) -> list[ParsedAction]:
        gold = task.answer["gold"]
        trial = ToolCall(name="run_python", arguments={"code": gold + "\nprint('defined')\n"})
        return [ParsedAction(tool_calls=[trial]), *super().gold_actions(task)]
