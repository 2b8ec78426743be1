"""The harness: runs in the forked job child, after isolation, before and around the program.

Standard library only (it ships into containers with ``executor.py``). It reports over the verdict pipe, each
line prefixed with the per-run token; the executor decides the verdicts.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys

EXIT_OOM = 86
EXIT_ERROR = 1  # what python itself exits with on an uncaught exception


def child_main(mode: str, job: dict, test: dict | None, vfd: int, token: str) -> None:
    """Run in the job child: execute the program (and in-process tests); never returns."""
    write, dumps = os.write, json.dumps  # bound now: user code may patch the modules later

    def report(obj: dict) -> None:
        data = (token + dumps(obj) + "\n").encode()
        while data:
            data = data[write(vfd, data) :]

    try:
        if mode == "checker":
            ns: dict = {"__name__": "checker"}
            exec(compile(test["checker"], "<checker>", "exec"), ns)
            payload = json.loads(sys.stdin.read())
            ok = bool(ns["check"](payload["input"], payload["output"], payload.get("expected")))
            report({"event": "checked", "ok": ok})
            os._exit(0)
        code = compile(job["code"], "solution.py", "exec")
    except SyntaxError as exc:
        sys.stderr.write(f"SyntaxError: {exc}\n")
        sys.stderr.flush()
        os._exit(EXIT_ERROR)
    ns = {"__name__": "__main__" if mode == "stdio" else "solution", "__builtins__": __builtins__}
    if mode == "stdio":
        _exec_program(code, ns)
        os._exit(0)
    try:
        exec(code, ns)
    except BaseException as exc:  # SystemExit too: leaving early must not look like success
        _flush_quietly()
        report({"event": "load_error", "type": type(exc).__name__, "msg": str(exc)[:2000]})
        os._exit(EXIT_OOM if isinstance(exc, MemoryError) else EXIT_ERROR)
    report({"event": "loaded"})
    for i, t in enumerate(job["tests"]):
        if t["kind"] not in ("assert", "call"):
            continue
        try:
            if t["kind"] == "assert":
                exec(compile(t["code"], f"<test {i}>", "exec"), ns)
                report({"event": "test", "i": i, "ok": True})
            else:
                value = ns[t["fn"]](*t.get("args", []), **t.get("kwargs", {}))
                try:
                    encoded = dumps(value)
                except (TypeError, ValueError):
                    encoded = dumps({"__unserializable__": repr(value)[:500]})
                report({"event": "test", "i": i, "value": encoded})
        except BaseException as exc:
            report({"event": "test", "i": i, "ok": False, "type": type(exc).__name__, "msg": str(exc)[:2000]})
    _flush_quietly()
    os._exit(0)


def _exec_program(code, ns: dict) -> None:
    try:
        exec(code, ns)
    except SystemExit as exc:  # python's own rules: None is 0, an int is the status, anything else is printed
        if exc.code is not None and not isinstance(exc.code, int):
            sys.stderr.write(f"{exc.code}\n")
        _flush_quietly()
        os._exit(exc.code & 0xFF if isinstance(exc.code, int) else int(exc.code is not None))
    except MemoryError:
        os._exit(EXIT_OOM)
    except BaseException:
        import traceback

        traceback.print_exc()
        _flush_quietly()
        os._exit(EXIT_ERROR)
    _flush_quietly()


def _flush_quietly() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed or broken stream must not decide the verdict
            stream.flush()
