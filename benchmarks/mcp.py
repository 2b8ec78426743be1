"""MCP-backed env vs native resrl env: steps/s of the same tools, in one run.

    python benchmarks/mcp.py [--episodes 4] [--steps 50] [--repeats 3] [--json out.json]

The tools are a per-episode counter (``add(n)``, ``total()``), written once as ``@resrl.tool`` methods of a
native ``ChatEnv`` and once as an MCP server (the ``mcp`` SDK's MCPServer, this file run with ``--serve``).
Three envs play the same episodes: native; MCP over stdio (a server process per episode); MCP over streamable
HTTP (one server process on 127.0.0.1, a session per episode). Each step is an assistant turn with one Hermes
tool call, parsed by the env's format and answered by the tool. Steps/s counts steps only (episode starts are
timed separately: a stdio episode starts a Python process); the median over ``--repeats`` is printed with the
native/MCP ratio.
"""

import argparse
import json
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

import resrl
from resrl import ChatEnv, Task, ToolSet, Transition, tool
from resrl.core.messages import tool_message, user_message

# this file is named like the SDK: keep its folder off the import path, or `import mcp` would import this file (it is
# imported lazily, by the server and the env bridge, after this line); no `from __future__ import annotations`:
# MCPServer reads the tools' annotations, which name the lazily imported Context
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

console = Console(width=None if sys.stdout.isatty() else 150)
TASKS = [{"id": "bench/0", "prompt": "Count.", "arguments": {"start": 0}, "answer": {}}]
ACTION = '<tool_call>{"name": "add", "arguments": {"n": 1}}</tool_call>'


def serve(http_port: int | None) -> None:
    """The counter as an MCP server (run in a subprocess): stdio, or streamable HTTP on ``http_port``."""
    from mcp.server.mcpserver import Context, MCPServer

    server = MCPServer("bench-counter", log_level="WARNING")
    counters: dict[str, int] = {}

    def key(ctx: Context) -> str:
        return (ctx.headers or {}).get("mcp-session-id", "stdio")

    @server.tool()
    def setup(start: int, ctx: Context) -> str:
        counters[key(ctx)] = start
        return "ready"

    @server.tool()
    def add(n: int, ctx: Context) -> str:
        """Add n to the counter."""
        counters[key(ctx)] = counters.get(key(ctx), 0) + n
        return str(counters[key(ctx)])

    @server.tool()
    def total(ctx: Context) -> str:
        """The counter's value."""
        return str(counters.get(key(ctx), 0))

    if http_port is None:
        server.run()
    else:
        server.run("streamable-http", host="127.0.0.1", port=http_port)


class Counter:
    """The native side's state and tools."""

    def __init__(self, start: int) -> None:
        self.value = start

    @tool
    def add(self, n: int) -> str:
        """Add n to the counter."""
        self.value += n
        return str(self.value)

    @tool
    def total(self) -> str:
        """The counter's value."""
        return str(self.value)


class NativeCounterEnv(ChatEnv):
    """The same tools as a native resrl env."""

    multi_turn = True

    @classmethod
    def generate_tasks(cls, split, n, seed):
        tools = ToolSet.from_object(Counter(0)).schemas()
        return [
            Task(id=f"bench/{i}", env_id="bench/native", messages=[user_message("Count.")], tools=tools)
            for i in range(n)
        ]

    def _start(self, task):
        self.tools = ToolSet.from_object(Counter(0))
        return list(task.messages)

    def _act(self, action):
        if not getattr(action, "tool_calls", None):
            return Transition([], terminated=True)
        results = [self.tools.call(c) for c in action.tool_calls]
        return Transition([tool_message(r.content, name=r.name, tool_call_id=r.call_id) for r in results])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_http_server() -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", "--http-port", str(port)])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, f"http://127.0.0.1:{port}/mcp"
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the MCP benchmark server did not start")


def play(env_id: str, episodes: int, steps: int) -> dict[str, float]:
    """Steps/s and episode-start seconds of ``episodes`` episodes of ``steps`` tool calls each."""
    env = resrl.make(env_id, max_steps=steps + 1)
    task = type(env).generate_tasks("train", 1, 0)[0]
    step_s, start_s = 0.0, []
    try:
        for _ in range(episodes):
            t0 = time.perf_counter()
            _, info = env.reset(options={"task": task})
            start_s.append(time.perf_counter() - t0)
            if info.get("infra_error"):
                raise RuntimeError(info["infra_error"])
            t0 = time.perf_counter()
            for i in range(steps):
                obs, _, _, _, info = env.step(ACTION)
                if info.get("infra_error") or obs[0]["content"] != str(i + 1):
                    raise RuntimeError(f"{env_id}: unexpected step result {obs} {info}")
            step_s += time.perf_counter() - t0
    finally:
        env.close()
    return {"steps_per_s": episodes * steps / step_s, "start_s": statistics.median(start_s)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--steps", type=int, default=50, help="tool calls per episode")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--http-port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.http_port)
        return 0
    proc, url = start_http_server()
    try:
        resrl.register("bench/native", NativeCounterEnv)
        common = {"tasks": TASKS, "reward": lambda transcript, call_tool: 0.0, "setup_tool": "setup"}
        resrl.register_mcp("bench/mcp-stdio", command=[sys.executable, __file__, "--serve"], **common)
        resrl.register_mcp("bench/mcp-http", url=url, **common)
        kinds = {"native": "bench/native", "mcp stdio": "bench/mcp-stdio", "mcp http": "bench/mcp-http"}
        runs: dict[str, list[dict[str, float]]] = {k: [] for k in kinds}
        with Progress(console=console, transient=True) as bar:
            job = bar.add_task("episodes", total=args.repeats * len(kinds))
            for _ in range(args.repeats):  # interleaved, so machine load drifts over every kind alike
                for kind, env_id in kinds.items():
                    runs[kind].append(play(env_id, args.episodes, args.steps))
                    bar.advance(job)
    finally:
        proc.kill()
        proc.wait(10)
    figures = {
        k: {
            "steps_per_s": statistics.median(r["steps_per_s"] for r in v),
            "start_s": statistics.median(r["start_s"] for r in v),
        }
        for k, v in runs.items()
    }
    native = figures["native"]["steps_per_s"]
    table = Table(
        title=f"MCP env vs native env: {args.episodes} episodes x {args.steps} tool calls, median of {args.repeats}"
    )
    for column in ("env", "steps/s", "episode start (s)", "native / this"):
        table.add_column(column, justify="left" if column == "env" else "right")
    for kind, f in figures.items():
        table.add_row(kind, f"{f['steps_per_s']:.0f}", f"{f['start_s']:.3f}", f"{native / f['steps_per_s']:.1f}x")
    console.print(table)
    for kind in ("mcp stdio", "mcp http"):
        print(f"ratio native/{kind.replace(' ', '-')} steps/s: {native / figures[kind]['steps_per_s']:.1f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(figures, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
