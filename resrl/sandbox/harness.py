"""The harness: runs in the forked job processes, after isolation, before and around the program.

Standard library only (it ships into containers with ``executor.py``). Three kinds of process:

- the **program** process (:func:`run_program`, :func:`serve_program`) runs the untrusted code. It is forked from
  the executor's zygote, which never held a job, so no test, expected value or token is in its memory. For
  assert and call tests it serves the program's namespace over a socket: calls, attribute reads, values;
- the **test** process (:func:`run_tests`) runs the trusted test code. Names the program defines are proxies:
  calling one runs it in the program process and brings back a plain value (None, bool, int, float, complex,
  str, bytes and lists, tuples, sets, frozensets, dicts of them), decoded here; any other object stays an opaque
  handle that can be called or have attributes read, compares equal only to itself and has no truth value, so
  an object with a rigged ``__eq__`` or ``__bool__`` cannot pass a test. Only this process holds the verdict
  pipe and its per-run token;
- the **checker** process (:func:`run_checker`) runs a trusted checker on the program's output.

The executor decides the verdicts from the test process's reports.
"""

from __future__ import annotations

import builtins
import contextlib
import ctypes
import io
import json
import marshal
import os
import socket
import sys
from json.encoder import encode_basestring_ascii as _quote

EXIT_OOM = 86
EXIT_ERROR = 1  # what python itself exits with on an uncaught exception
PR_SET_DUMPABLE = 4
_PLAIN = (type(None), bool, int, float, str)
_libc = ctypes.CDLL(None)  # loaded once in the executor, not per test process


def _flush_quietly() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed or broken stream must not decide the verdict
            stream.flush()


def _compile(code: str, name: str):
    try:
        return compile(code, name, "exec")
    except SyntaxError as exc:
        sys.stderr.write(f"SyntaxError: {exc}\n")
        _flush_quietly()
        os._exit(EXIT_ERROR)


# -- the value codec both sides speak ----------------------------------------------------------------------
# Values travel as a JSON tree of tagged nodes: ["v", plain], ["list" | "tuple" | "set" | "frozenset", [nodes]],
# ["dict", [[key node, value node], ...]], ["bytes", hex], ["complex", re, im], ["h", id, type name]. The program
# process writes that JSON itself (:func:`dump`) rather than through the json module: it is a fresh fork, and
# every object it touches costs it a copied page (json.dumps and json.loads cost ~70 each, as many as a call's
# own work). The test process reads it with ``json.loads``, safe on any input, and :func:`decode`. What the test
# process sends the program is trusted: plain arguments go as ``marshal`` (one C call to read; never used for
# data from the program), arguments holding handles as a tagged tree.
def dump(value, handles: dict[int, object] | None) -> str:
    """The tagged tree of ``value`` as JSON text; an object that is not a plain value becomes a handle (kept
    in ``handles``), or ``TypeError`` when ``handles`` is None (the test side sends plain values and the
    program's own handles only)."""
    out: list[str] = []
    _dump(value, out, handles)
    return "".join(out)


def _dump(value, out: list[str], handles: dict[int, object] | None) -> None:
    kind = type(value)
    if kind is str:
        out.append('["v",' + _quote(value) + "]")
    elif kind is int:
        out.append('["v",' + int.__repr__(value) + "]")
    elif value is None or kind is bool:
        out.append(_CONSTANTS[value])
    elif kind is float:
        out.append('["v",' + _float(value) + "]")
    elif kind is list or kind is tuple or kind is set or kind is frozenset:
        out.append('["' + kind.__name__ + '",[')
        sep = ""
        for v in value:
            out.append(sep)
            _dump(v, out, handles)
            sep = ","
        out.append("]]")
    elif kind is dict:
        out.append('["dict",[')
        sep = "["
        for k, v in value.items():
            out.append(sep)
            _dump(k, out, handles)
            out.append(",")
            _dump(v, out, handles)
            out.append("]")
            sep = ",["
        out.append("]]")
    elif kind is bytes:
        out.append('["bytes","' + value.hex() + '"]')
    elif kind is complex:
        out.append('["complex",' + _float(value.real) + "," + _float(value.imag) + "]")
    elif kind is Handle:
        out.append('["h",' + str(value._id) + "," + _quote(value._type) + "]")
    elif handles is None:
        raise TypeError(f"a test can pass the program plain values and its own objects only, not {kind.__name__}")
    else:
        handles[id(value)] = value
        out.append('["h",' + str(id(value)) + "," + _quote(kind.__name__[:100]) + "]")


_CONSTANTS = {None: '["v",null]', True: '["v",true]', False: '["v",false]'}


def _float(x: float) -> str:
    """A float as the json module writes it (which its reader takes back): NaN and the infinities by name."""
    if x != x:
        return "NaN"
    if x in (_INF, -_INF):
        return "Infinity" if x > 0 else "-Infinity"
    return float.__repr__(x)


_INF = float("inf")


_SCALARS = frozenset({type(None), bool, int, float, str, bytes, complex})
_CONTAINERS = frozenset({list, tuple, set, frozenset})


def _plain(value) -> bool:
    """Whether ``value`` is a plain value holding no handle (then it can travel as ``marshal``)."""
    kind = type(value)
    if kind in _SCALARS:
        return True
    if kind in _CONTAINERS:
        for v in value:  # noqa: SIM110 - a loop with the scalars inline: this runs on every call a test makes
            if type(v) not in _SCALARS and not _plain(v):
                return False
        return True
    if kind is dict:
        return _plain(tuple(value)) and _plain(tuple(value.values()))
    return False


def decode(node, handles: dict[int, object] | None, channel: Channel | None):
    """The value of a tagged tree; handles resolve in ``handles`` (program side) or to :class:`Handle`."""
    tag = node[0]
    if tag == "v":
        if type(node[1]) not in _PLAIN:
            raise TypeError("malformed value")
        return node[1]
    if tag in ("list", "tuple", "set", "frozenset"):
        return getattr(builtins, tag)(decode(v, handles, channel) for v in node[1])
    if tag == "dict":
        return {decode(k, handles, channel): decode(v, handles, channel) for k, v in node[1]}
    if tag == "bytes":
        return bytes.fromhex(node[1])
    if tag == "complex":
        return complex(float(node[1]), float(node[2]))
    if tag == "h":
        if handles is not None:
            return handles[node[1]]
        return Handle(channel, int(node[1]), str(node[2]))
    raise TypeError(f"malformed value tag {tag!r}")


# -- the test side ------------------------------------------------------------------------------------------
class ProgramDied(BaseException):  # not an Exception: a test's ``except Exception`` must not hide it
    """The program process ended or broke the protocol while a test was using it."""


class ProgramError(Exception):
    """The program raised an exception that is not a builtin one (its type name and message)."""


_scan = json.JSONDecoder().scan_once  # the C scanner without json.loads's wrappers (a third of its cost)


def _read_json(line: bytes) -> dict:
    """One reply line of the program as a JSON object; ``ValueError`` for anything else (json's own reader:
    safe on any input)."""
    try:
        text = line.decode().strip()
        reply, end = _scan(text, 0)
    except (UnicodeDecodeError, StopIteration, RecursionError) as exc:
        raise ValueError("no reply") from exc
    if not isinstance(reply, dict) or end != len(text):
        raise ValueError("no reply")
    return reply


class Channel:
    """The test process's end of the program socket: a request out (a 4-byte length and ``marshal``), one JSON
    line back."""

    def __init__(self, fd: int) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0, fd)  # no syscalls to find out what it is
        self.pending = bytearray()  # what came after the last line read
        self.dead = False

    def _readline(self) -> bytes:
        """The next line from the program (b"" once it hung up); its own buffer: a makefile reader refills
        through socket.py's Python readinto, once per reply."""
        start = 0
        while (end := self.pending.find(b"\n", start)) < 0:
            chunk = self.sock.recv(65536)
            if not chunk:
                line = bytes(self.pending)
                self.pending.clear()
                return line
            start = len(self.pending)  # a long line is searched once, not again with every chunk
            self.pending += chunk
        line = bytes(self.pending[: end + 1])
        del self.pending[: end + 1]
        return line

    def ask(self, request: tuple):
        if self.dead:
            raise ProgramDied("the program process is gone")
        body = marshal.dumps(request)  # outside the try: an argument nested too deep is the test's error
        try:
            self.sock.sendall(len(body).to_bytes(4, "big") + body)
            reply = _read_json(self._readline())
        except (OSError, ValueError) as exc:
            self.dead = True
            raise ProgramDied(f"the program process ended or broke the protocol ({type(exc).__name__})") from None
        if "error" in reply:
            name, msg = str(reply["error"][0]), str(reply["error"][1])
            cls = getattr(builtins, name, None)
            error: Exception = ProgramError(f"{name}: {msg}")
            # never StopIteration: raised inside `map` or a generator it ends the iteration, so that
            # `all(map(check, cases))` would hold without one case checked
            if (isinstance(cls, type) and issubclass(cls, Exception) and cls.__module__ == "builtins"
                    and not issubclass(cls, (StopIteration, StopAsyncIteration))):  # fmt: skip
                with contextlib.suppress(Exception):  # some (UnicodeDecodeError) take more than a message
                    error = cls(msg)
            raise error
        try:
            return decode(reply["value"], None, self)
        except (KeyError, TypeError, ValueError, IndexError, RecursionError) as exc:
            self.dead = True
            raise ProgramDied(f"the program sent a malformed value ({type(exc).__name__})") from None


class Handle:
    """An object that lives in the program process."""

    __slots__ = ("_channel", "_id", "_type")

    def __init__(self, channel: Channel | None, ref: int, type_name: str) -> None:
        self._channel, self._id, self._type = channel, ref, type_name

    def __call__(self, *args, **kwargs):
        if _plain(args) and (not kwargs or _plain(kwargs)):  # the common case: one marshal.loads to read
            return self._channel.ask(("call", self._id, args, kwargs, False))
        return self._channel.ask(("call", self._id, dump(list(args), None), dump(dict(kwargs), None), True))

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return self._channel.ask(("getattr", self._id, name))

    def __bool__(self) -> bool:
        raise TypeError(f"a {self._type} object of the program has no truth value in a test; compare plain values")

    def __repr__(self) -> str:
        return f"<program {self._type} object>"


def reporter(vfd: int, token: str):
    """A function that writes one report line, prefixed with the run's token, to the verdict pipe ``vfd``."""
    write, dumps = os.write, json.dumps

    def report(obj: dict) -> None:
        data = (token + dumps(obj) + "\n").encode()
        while data:
            data = data[write(vfd, data) :]

    return report


def run_test_list(tests: list[dict], chan_fd: int, report) -> None:
    """Run each assert / call test against the program process on socket ``chan_fd``, reporting through
    ``report``; the socket is closed on return (the long-lived test process reuses the descriptor number)."""
    dumps = json.dumps
    channel = Channel(chan_fd)
    try:
        _run_tests_on(tests, channel, report, dumps)
    finally:
        channel.dead = True  # a handle a test kept must not reach the next job's program
        channel.sock.close()


def _run_tests_on(tests: list[dict], channel: Channel, report, dumps) -> None:
    try:
        names = channel.ask(("start",))  # the program loads only now, after the prctl
        if not isinstance(names, dict):
            raise ProgramDied("the program sent no namespace")
    except (ProgramDied, ProgramError, Exception) as exc:  # its load failed: the program's own exception
        kind = exc.args[0].split(":", 1)[0] if isinstance(exc, ProgramError) else type(exc).__name__
        msg = exc.args[0].split(": ", 1)[-1] if isinstance(exc, ProgramError) else str(exc)
        report({"event": "load_error", "type": kind, "msg": msg[:2000]})
        return
    # One namespace for all tests, as before, without the program's names that shadow a builtin: a program's
    # own `abs`, `len` or `isinstance` would decide what the tests that use them see. Call tests reach any of
    # the program's functions by name.
    shadowing = builtins.__dict__
    ns = {"__name__": "__test__", "__builtins__": builtins, **{k: v for k, v in names.items() if k not in shadowing}}
    for i, t in enumerate(tests):
        if t["kind"] not in ("assert", "call"):
            continue
        try:
            if t["kind"] == "assert":
                exec(_compiled(t["code"], i), ns)
                report({"event": "test", "i": i, "ok": True})
            else:
                fn = names[t["fn"]] if t["fn"] in names else ns[t["fn"]]
                value = fn(*t.get("args", []), **t.get("kwargs", {}))
                try:
                    encoded = dumps(value)
                except (TypeError, ValueError):
                    encoded = dumps({"__unserializable__": repr(value)[:500]})
                report({"event": "test", "i": i, "value": encoded})
        except BaseException as exc:  # ProgramDied too: that test failed, the executor says why
            report({"event": "test", "i": i, "ok": False, "type": type(exc).__name__, "msg": str(exc)[:2000]})


_COMPILED: dict[tuple[str, int], object] = {}


def _compiled(code: str, i: int):
    """The code object of test ``i``: the long-lived test process compiles each test source once (RL runs the
    same task's tests for every sample of a group). A pure function of the trusted source, so no job's program
    can put anything in it."""
    key = (code, i)
    compiled = _COMPILED.get(key)
    if compiled is None:
        if len(_COMPILED) >= 1024:
            _COMPILED.clear()
        compiled = _COMPILED[key] = compile(code, f"<test {i}>", "exec")
    return compiled


def run_tests(tests: list[dict], chan_fd: int, vfd: int, token: str) -> None:
    """A test process of its own for one job (executors without a dedicated uid); never returns."""
    _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)  # the program (same uid) can neither trace nor read us
    del sys.path[0]  # the work directory: a module the program left there must not be what a test imports
    run_test_list(tests, chan_fd, reporter(vfd, token))
    _flush_quietly()
    os._exit(0)  # the program process is killed next; its output was written through


# -- the program side ---------------------------------------------------------------------------------------
_STREAMS: tuple[io.TextIOWrapper, io.TextIOWrapper] | None = None


def _program_streams() -> tuple[io.TextIOWrapper, io.TextIOWrapper]:
    # it is killed once the tests end: nothing it prints may wait in a buffer
    return tuple(io.TextIOWrapper(io.FileIO(fd, "w", closefd=False), encoding="utf-8", errors="backslashreplace",
                                  write_through=True) for fd in (1, 2))  # fmt: skip


def prepare_program_streams() -> None:
    """Build the standard streams of the programs that serve tests once, here (the executor, before it forks
    the zygote), instead of in each program process, where building them copies ~50 pages."""
    global _STREAMS
    _STREAMS = _program_streams()


def serve_program(code: str, chan_fd: int) -> None:
    """The program process of assert / call tests: load the program when the test process says so, then
    answer its requests until it hangs up; never returns. Lean on purpose: it is a fresh fork, and every
    object it touches costs a copied page (raw reads and writes on the socket, no json module, see ``dump``)."""
    sys.stdout, sys.stderr = _STREAMS or _program_streams()
    read, write, pending = os.read, os.write, bytearray()

    def request():  # the next request of the test process, or None once it hung up
        while len(pending) < 4 or len(pending) < 4 + int.from_bytes(pending[:4], "big"):
            chunk = read(chan_fd, 65536)
            if not chunk:
                return None
            pending.extend(chunk)
        end = 4 + int.from_bytes(pending[:4], "big")
        body = bytes(pending[4:end])
        del pending[:end]
        return marshal.loads(body)

    handles: dict[int, object] = {}
    if request() is None:  # ("start",): the test process is ready and cannot be traced
        os._exit(0)
    ns: dict = {"__name__": "solution", "__builtins__": builtins}

    def answer(compute) -> bytes:
        try:
            return ('{"value":' + dump(compute(), handles) + "}\n").encode()
        except BaseException as exc:  # SystemExit too: leaving early must not look like success
            try:
                message = _quote(str(exc)[:2000])
            except BaseException:  # a str() that raises: the type still says what happened
                message = '""'
            return ('{"error":[' + _quote(type(exc).__name__) + "," + message + "]}\n").encode()

    def load() -> dict:
        try:
            compiled = compile(code, "solution.py", "exec")
        except SyntaxError as exc:  # shown like python shows it
            sys.stderr.write(f"SyntaxError: {exc}\n")
            raise
        exec(compiled, ns)
        return {k: v for k, v in ns.items() if not k.startswith("__")}

    def serve(req: tuple):
        target = handles[req[1]]
        if req[0] == "call":
            args, kwargs = req[2], req[3]
            if req[4]:  # arguments holding handles: a tagged tree
                args, kwargs = decode(json.loads(args), handles, None), decode(json.loads(kwargs), handles, None)
            return target(*args, **kwargs)
        return getattr(target, str(req[2]))

    reply = answer(load)
    while True:
        try:
            while reply:
                reply = reply[write(chan_fd, reply) :]
            req = request()
        except OSError:
            os._exit(0)
        if req is None:
            os._exit(0)
        reply = answer(lambda req=req: serve(req))


def run_program(code: str) -> None:
    """The program process of stdio tests (and of jobs without tests); never returns."""
    compiled = _compile(code, "solution.py")
    ns = {"__name__": "__main__", "__builtins__": builtins}
    try:
        exec(compiled, ns)
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
    os._exit(0)


def run_checker(checker: str, vfd: int, token: str) -> None:
    """The checker process: ``check(input, output, expected)`` on the JSON payload on stdin; never returns."""
    del sys.path[0]  # the work directory (see run_tests)
    ns: dict = {"__name__": "checker"}
    exec(_compile(checker, "<checker>"), ns)
    payload = json.loads(sys.stdin.read())
    ok = bool(ns["check"](payload["input"], payload["output"], payload.get("expected")))
    os.write(vfd, (token + json.dumps({"event": "checked", "ok": ok}) + "\n").encode())
    os._exit(0)
