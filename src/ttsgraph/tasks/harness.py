"""The HumanEval grading harness: a pass is proven by trusted code, never read off an exit status.

Running the candidate and the official `check(candidate)` in one process lets the candidate end
that process with status 0 before any assert (`os._exit(0)`, `sys.exit(0)`, libc `_exit`, an
`atexit` or `sys.excepthook` hook), return an object whose `__eq__` is always true, or patch
`builtins` that the test relies on. So inside the sandbox two processes run:

- the *judge* (`JUDGE`, the sandbox's main program) never executes model code. It reads a
  per-run secret and the test from its stdin (a pipe the candidate never gets), makes itself
  non-dumpable (so the candidate, same uid, cannot read its memory or file descriptors through
  /proc or ptrace), starts the candidate process, and runs the official `check` itself with a
  stand-in `candidate` that forwards each call. Only when `check` returns does it print
  `PASS_TAG <secret>`: the one thing the host accepts as a pass.
- the *candidate* process (`RUNNER` + the model's code) answers calls over two pipes. Results
  cross as tagged JSON of exact builtin types (None, bool, int, float, complex, str, bytes, list,
  tuple, dict, set, frozenset); anything else, including subclasses, is an error. The judge
  decodes them into fresh builtin values, so an always-equal object cannot arrive, and its
  `builtins` are its own, so patching them in the candidate changes nothing the test uses.

The test's helper functions (HumanEval/32's `poly`, /38's `encode_cyclic`, ...) come from the
dataset's prompt, executed in the judge, not from the model's code; the entry point's own name
there is the stand-in too, since some tests call it by name.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass

PASS_TAG = "ttsgraph-judge-pass"

# Shared by both processes: length-prefixed frames of tagged JSON. Decoding builds only exact
# builtin types; encoding refuses anything else (an `int` subclass with a rigged `__eq__` too).
_WIRE = r'''
import json, os, struct

def _enc(v):
    t = type(v)
    if v is None:
        return ["N"]
    if t is bool:
        return ["b", v]
    if t is int:
        return ["i", format(v, "x")]
    if t is float:
        return ["f", v.hex()]
    if t is complex:
        return ["c", v.real.hex(), v.imag.hex()]
    if t is str:
        return ["s", v]
    if t is bytes:
        return ["y", v.hex()]
    if t in (list, tuple, set, frozenset):
        return [{list: "l", tuple: "t", set: "S", frozenset: "F"}[t], [_enc(x) for x in v]]
    if t is dict:
        return ["d", [[_enc(k), _enc(x)] for k, x in v.items()]]
    raise TypeError("cannot pass a value of type " + t.__qualname__ + " to or from the candidate")

def _dec(v):
    tag = v[0]
    if tag == "N":
        return None
    if tag == "b":
        return bool(v[1] is True)
    if tag == "i":
        return int(str(v[1]), 16)
    if tag == "f":
        return float.fromhex(str(v[1]))
    if tag == "c":
        return complex(float.fromhex(str(v[1])), float.fromhex(str(v[2])))
    if tag == "s":
        return str(v[1])
    if tag == "y":
        return bytes.fromhex(str(v[1]))
    if tag in ("l", "t", "S", "F"):
        items = [_dec(x) for x in v[1]]
        return {"l": list, "t": tuple, "S": set, "F": frozenset}[tag](items)
    if tag == "d":
        return {_dec(k): _dec(x) for k, x in v[1]}
    raise ValueError("unknown value tag " + repr(tag)[:40])

def _send(fd, obj):
    data = json.dumps(obj).encode()
    data = struct.pack(">I", len(data)) + data
    while data:
        data = data[os.write(fd, data):]

def _recv(fd):
    def exactly(n):
        buf = b""
        while len(buf) < n:
            part = os.read(fd, n - len(buf))
            if not part:
                raise EOFError("the candidate process ended")
            buf += part
        return buf
    (n,) = struct.unpack(">I", exactly(4))
    return json.loads(exactly(n))
'''

JUDGE = _WIRE + r'''
import ctypes, subprocess, sys, traceback
secret, spec = sys.stdin.buffer.read().decode().split("\n", 1)
spec = json.loads(spec)
sys.stdin.close()
ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0: no /proc/<pid>/mem, fd or ptrace access
with open("runner.py", "w") as f:
    f.write(spec["runner"])
with open("candidate.py", "w") as f:
    f.write(spec["candidate"])
call_r, call_w = os.pipe()
reply_r, reply_w = os.pipe()
child = subprocess.Popen([sys.executable, "-I", "-S", "-B", "runner.py", str(call_r), str(reply_w), spec["entry"]],
                         stdin=subprocess.DEVNULL, stdout=2, pass_fds=(call_r, reply_w))
os.close(call_r)
os.close(reply_w)
EXCEPTIONS = {n: e for n, e in vars(__builtins__).items() if isinstance(e, type) and issubclass(e, Exception)}

def candidate(*args, **kwargs):
    _send(call_w, ["call", _enc(list(args)), _enc(kwargs)])
    reply = _recv(reply_r)
    if reply[0] == "ok":
        return _dec(reply[1])
    raise EXCEPTIONS.get(str(reply[1]), RuntimeError)("candidate raised " + str(reply[1]) + ": " + str(reply[2]))

scope = {"__name__": "__judge__"}
try:
    exec(compile(spec["prompt"], "prompt.py", "exec"), scope)
    scope[spec["entry"]] = candidate  # some tests call the function by name (HumanEval/33)
    exec(compile(spec["test"], "test.py", "exec"), scope)
    scope["check"](candidate)
except BaseException:
    child.kill()
    child.wait()
    traceback.print_exc()
    os._exit(1)
child.kill()
sys.stdout.write("''' + PASS_TAG + r''' " + secret + "\n")
sys.stdout.flush()
os._exit(0)
'''

RUNNER = _WIRE + r'''
import sys
call_r, reply_w, entry = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
scope = {"__name__": "__main__"}
exec(compile(open("candidate.py").read(), "candidate.py", "exec"), scope)
function = scope[entry]
while True:
    _, args, kwargs = _recv(call_r)
    try:
        reply = ["ok", _enc(function(*_dec(args), **_dec(kwargs)))]
    except Exception as e:
        reply = ["error", type(e).__name__, str(e)[:500]]
    _send(reply_w, reply)
'''


@dataclass(frozen=True)
class JudgeRun:
    """What to give the sandbox for one graded program: the judge as the program, the secret and
    the test on its stdin, and the one stdout line that proves a pass."""

    program: str
    stdin: bytes
    proof: str


def judge_run(prompt: str, candidate: str, test: str, entry: str) -> JudgeRun:
    """Package one HumanEval program with a fresh secret. When the reply only continues the body
    (as a completion model might), the prompt's signature and docstring go in front of it."""
    if not re.search(rf"\bdef\s+{re.escape(entry)}\s*\(", candidate):
        candidate = prompt + candidate
    secret = secrets.token_hex(16)
    spec = {"runner": RUNNER, "candidate": candidate, "prompt": prompt, "test": test, "entry": entry}
    return JudgeRun(JUDGE, (secret + "\n" + json.dumps(spec)).encode(), f"{PASS_TAG} {secret}")
