"""The sandbox must contain hostile code: no network, no writes outside its temp dir, no survivors
past the time limit, a bounded number of processes; and HumanEval's reference solutions must pass."""

from __future__ import annotations

import os
import re
import socket
import textwrap
import time
import uuid

import pytest

from ttsgraph import sandbox
from ttsgraph.errors import SandboxError
from ttsgraph.sandbox import SandboxLimits, run_python

pytestmark = [pytest.mark.sandbox]


def _processes_with(marker: str) -> list[int]:
    """PIDs whose command line contains `marker` (how we find what a sandboxed run left behind)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    found.append(int(entry))
        except OSError:
            continue
    return found


def _works(kind: str) -> bool:
    return (sandbox._bwrap_works if kind == "bwrap" else sandbox._unshare_works)(sandbox._probe_uid())


@pytest.fixture(params=["bwrap", "unshare"])
def kind(request, missing_sandbox):
    """Run each test under bubblewrap and under the unshare fallback (a missing one skips, or
    fails where it is expected: tests/conftest.py `missing_sandbox`)."""
    if not _works(request.param):
        missing_sandbox(request.param, sandbox._probe_failures.get(request.param, "not installed"))
    return request.param


def test_the_preferred_sandbox_is_bubblewrap_then_unshare(kind):
    preferred = "bwrap" if _works("bwrap") else "unshare"
    assert sandbox.available_sandbox() == preferred


def test_a_missing_sandbox_skips_here_and_fails_where_it_is_expected(missing_sandbox, monkeypatch):
    monkeypatch.delenv("TTSGRAPH_EXPECT_SANDBOXES", raising=False)
    monkeypatch.setenv("CI", "true")  # what CI sets
    for kind in ("bwrap", "unshare", "any"):
        with pytest.raises(pytest.fail.Exception, match=f"the {kind} sandbox is expected"):
            missing_sandbox(kind, "no namespaces")
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="does not work here: no namespaces"):
        missing_sandbox("bwrap", "no namespaces")
    monkeypatch.setenv("TTSGRAPH_EXPECT_SANDBOXES", "unshare")
    with pytest.raises(pytest.skip.Exception):
        missing_sandbox("bwrap", "no namespaces")
    with pytest.raises(pytest.fail.Exception):
        missing_sandbox("unshare", "no namespaces")


def test_ordinary_code_runs_and_reports_failures(kind):
    ok = run_python("print(sum(range(10)))", sandbox=kind)
    assert ok.ok and ok.stdout.strip() == "45" and ok.sandbox == kind
    bad = run_python("assert 1 == 2, 'boom'", sandbox=kind)
    assert not bad.ok and bad.returncode != 0 and "boom" in bad.stderr


def test_no_network_not_even_the_hosts_loopback(kind):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    code = textwrap.dedent(
        f"""
        import socket
        results = []
        for host in ("127.0.0.1", "1.1.1.1", "pypi.org"):
            try:
                socket.create_connection((host, {port} if host == "127.0.0.1" else 443), timeout=2)
                results.append(host + ":connected")
            except OSError as e:
                results.append(host + ":blocked")
        print(" ".join(results))
        """
    )
    result = run_python(code, sandbox=kind)
    server.setblocking(False)
    with pytest.raises(BlockingIOError):
        server.accept()  # the host's listener never saw a connection
    server.close()
    assert result.ok, result.stderr
    assert result.stdout.split() == ["127.0.0.1:blocked", "1.1.1.1:blocked", "pypi.org:blocked"]


def test_cannot_write_outside_its_temp_dir(tmp_path, kind):
    target = tmp_path / "escape.txt"
    code = textwrap.dedent(
        f"""
        import os
        outcomes = {{}}
        for path in ["/usr/escape.txt", "/escape.txt", "/etc/escape.txt", "/dev/escape.txt", {str(target)!r}, "/proc/sys/kernel/hostname"]:
            try:
                with open(path, "w") as f:
                    f.write("x")
                outcomes[path] = "written"
            except OSError as e:
                outcomes[path] = type(e).__name__
        with open("/tmp/inside.txt", "w") as f:
            f.write("fine")
        outcomes["inside"] = open("/tmp/inside.txt").read()
        outcomes["etc_visible"] = os.path.exists("/etc/passwd")
        outcomes["home_visible"] = os.path.exists(os.path.expanduser("~root"))
        print(outcomes)
        """
    )
    result = run_python(code, sandbox=kind)
    assert result.ok, result.stderr
    outcomes = eval(result.stdout)  # noqa: S307 - the dict printed by our own program above
    assert "written" not in outcomes.values()
    assert outcomes["inside"] == "fine"
    if kind == "bwrap":
        assert outcomes["etc_visible"] is False  # host configuration is not even visible
    assert not target.exists()
    assert not os.path.exists("/usr/escape.txt") and not os.path.exists("/escape.txt")


def test_infinite_loop_is_killed_at_the_time_limit(kind):
    start = time.monotonic()
    result = run_python("while True:\n    pass\n", SandboxLimits(wall_seconds=1.5), sandbox=kind)
    elapsed = time.monotonic() - start
    assert result.timed_out and not result.ok and result.returncode is None
    assert 1.4 <= elapsed < 6


def test_sleeping_and_daemonized_children_do_not_survive(kind):
    marker = f"ttsgraph-test-{uuid.uuid4().hex}"
    code = textwrap.dedent(
        f"""
        import os, subprocess, sys, time
        # a plain child, a child in its own session (daemon style), both sleeping for a minute
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)  # {marker}"])
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)  # {marker}"], start_new_session=True)
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(60)  # {marker}"])
            os._exit(0)
        time.sleep(0.5)
        print("parent exits")
        """
    )
    result = run_python(code, SandboxLimits(wall_seconds=5), sandbox=kind)
    assert result.ok and "parent exits" in result.stdout, result.stderr
    time.sleep(0.3)
    assert _processes_with(marker) == []
    # and the same when the parent itself hangs and is killed at the limit
    hang = code.replace('print("parent exits")', "time.sleep(60)")
    result = run_python(hang, SandboxLimits(wall_seconds=2), sandbox=kind)
    assert result.timed_out
    time.sleep(0.3)
    assert _processes_with(marker) == []


def test_fork_bomb_hits_the_process_limit_and_is_cleaned_up(kind):
    marker = f"ttsgraph-bomb-{uuid.uuid4().hex}"
    code = textwrap.dedent(
        f"""
        import os, time
        MARK = "{marker}"
        made = 0
        try:
            while True:
                if os.fork() == 0:
                    os.execvp("python3", ["python3", "-c", "import time; time.sleep(60)  # " + MARK])
                made += 1
        except OSError as e:
            print("limited after", made, flush=True)
        time.sleep(60)
        """
    )
    start = time.monotonic()
    result = run_python(code, SandboxLimits(wall_seconds=3, max_processes=16), sandbox=kind)
    assert result.timed_out and time.monotonic() - start < 10
    assert "limited after" in result.stdout
    made = int(result.stdout.split("limited after")[1].split()[0])
    assert made <= 16
    time.sleep(0.3)
    assert _processes_with(marker) == []


def test_memory_limit(kind):
    result = run_python("x = bytearray(3 * 1024 ** 3)\nprint('allocated')", SandboxLimits(memory_mb=256), sandbox=kind)
    assert not result.ok and "allocated" not in result.stdout and "MemoryError" in result.stderr


def test_refuses_to_run_without_a_sandbox_unless_told(monkeypatch):
    monkeypatch.setattr(sandbox, "available_sandbox", lambda: None)
    with pytest.raises(SandboxError, match="unsafe-exec"):
        run_python("print('hi')")
    result = run_python("print('hi')", unsafe_exec=True)
    assert result.ok and result.stdout.strip() == "hi" and result.sandbox == "unsafe"
    looping = run_python("while True: pass", SandboxLimits(wall_seconds=1), unsafe_exec=True)
    assert looping.timed_out  # the time limit still applies


def _humaneval(kind: str | None = None):
    from ttsgraph.tasks.humaneval import HumanEvalTask

    task = HumanEvalTask(sandbox=kind)
    return task, {i.id: i for i in task.items("search") + task.items("test")}


def test_humaneval_canonical_solutions_all_pass_and_shuffled_ones_fail(kind):
    task, by_id = _humaneval(kind)
    items = sorted(by_id.values(), key=lambda i: int(i.id.split("/")[1]))
    assert len(items) == 164
    workers = max(2, os.cpu_count() or 2)
    grades = task.grade_many([(i, task.gold_text(i)) for i in items], workers=workers)
    failed = [(i.id, g.detail) for i, g in zip(items, grades) if not g.correct]
    assert not failed, failed[:3]
    rotated = items[1:] + items[:1]
    sample = list(zip(items, rotated))[:40]
    wrong = task.grade_many([(i, task.gold_text(j)) for i, j in sample], workers=workers)
    assert sum(g.correct for g in wrong) <= 2


# Wrong solutions of HumanEval/2 (truncate_number: 3.5 -> 0.5, 1.33 -> 0.33, 123.456 -> 0.456)
# that a harness trusting the exit status, `==` or `builtins` graded as passing.
_WRONG = "def truncate_number(number):\n    return 0.5 if number == 3.5 else 7.0\n"
BYPASSES = {
    "os._exit": "import os\nos._exit(0)\n" + _WRONG,
    "sys.exit": "import sys\nsys.exit(0)\n" + _WRONG,
    "ctypes _exit": "import ctypes\nctypes.CDLL(None)._exit(0)\n" + _WRONG,
    "atexit": "import atexit, os\natexit.register(lambda: os._exit(0))\n" + _WRONG,
    "excepthook": "import os, sys\nsys.excepthook = lambda *a: os._exit(0)\n" + _WRONG,
    "exit inside the call": "import os\ndef truncate_number(number):\n    os._exit(0)\n",
    "always equal": (
        "class Anything:\n    __eq__ = lambda self, other: True\n    __sub__ = lambda self, other: 0.0\n"
        "def truncate_number(number):\n    return Anything()\n"
    ),
    "always-equal float subclass": (
        "class Anything(float):\n    def __eq__(self, other):\n        return True\n"
        "    def __sub__(self, other):\n        return 0.0\n"
        "def truncate_number(number):\n    return Anything(9)\n"
    ),
    "builtins patched": "import builtins\nbuiltins.abs = lambda x: 0\n" + _WRONG,
    "forged proof line": "import os, sys\nprint('ttsgraph-judge-pass ' + 'f' * 32)\nsys.stdout.flush()\nos._exit(0)\n" + _WRONG,
}


@pytest.mark.parametrize("name", list(BYPASSES))
def test_humaneval_bypasses_are_graded_wrong(kind, name):
    task, by_id = _humaneval(kind)
    grade = task.grade(by_id["humaneval/2"], "```python\n" + BYPASSES[name] + "```")
    assert grade.extracted is not None
    assert not grade.correct, grade.detail
    assert grade.detail != "all tests passed"


def test_humaneval_judge_secret_is_out_of_the_candidates_reach(kind):
    from ttsgraph.sandbox import run_python
    from ttsgraph.tasks.harness import judge_run

    _, by_id = _humaneval(kind)
    item = by_id["humaneval/2"]
    snoop = textwrap.dedent(
        """
        import glob, os, sys
        seen = []
        paths = glob.glob("/proc/[0-9]*/cmdline") + glob.glob("/proc/[0-9]*/environ") + glob.glob("/tmp/*")
        paths += [f"/proc/{os.getppid()}/{name}" for name in ("fd/0", "fd/1", "mem", "environ")]
        for path in paths:
            try:
                with open(path, "rb") as f:
                    seen.append(f.read(1 << 20))
            except OSError as e:
                sys.stderr.write(f"denied {path} {e.errno}\\n")
        sys.stderr.write(repr(b"".join(seen)) + "\\n" + repr(os.environ) + repr(sys.argv) + "\\n")
        def truncate_number(number):
            return number % 1.0
        """
    )
    run = judge_run(item.question, snoop, item.meta["test"], item.meta["entry_point"])
    secret = run.proof.split()[-1]
    result = run_python(run.program, sandbox=kind, stdin=run.stdin)
    assert result.stdout.strip() == run.proof, result.stderr  # a correct solution still passes
    for private in ("fd/0", "fd/1", "mem", "environ"):  # the judge's stdin, stdout, memory
        assert re.search(rf"denied /proc/\d+/{private} 13", result.stderr), private
    assert secret not in result.stderr


def test_humaneval_grades_partial_and_completion_style_replies(kind):
    from ttsgraph.tasks import load_task

    task = load_task("humaneval", sandbox=kind)
    item = next(i for i in task.items("search") + task.items("test") if i.id == "humaneval/0")
    body_only = item.answer  # a completion model continuing the prompt: only the body
    assert task.grade(item, body_only).correct
    wrong = "```python\ndef has_close_elements(numbers, threshold):\n    return True\n```"
    grade = task.grade(item, wrong)
    assert not grade.correct and "exit" in grade.detail
    assert task.grade(item, "I am not able to write code.").extracted is None


def test_code_has_no_capabilities_and_no_new_privileges(kind):
    code = "print(''.join(l for l in open('/proc/self/status') if l.startswith(('Cap', 'NoNewPrivs'))))"
    result = run_python(code, sandbox=kind)
    assert result.ok, result.stderr
    fields = dict(line.split(":") for line in result.stdout.split("\n") if ":" in line)
    for name in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(fields[name].strip(), 16) == 0, (name, fields[name])
    assert fields["NoNewPrivs"].strip() == "1"


_MOUNT_ATTACKS = textwrap.dedent(
    """
    import ctypes, os
    libc = ctypes.CDLL(None, use_errno=True)
    MS_RDONLY, MS_REMOUNT, MS_BIND = 1, 32, 4096
    def attempt():
        out = {}
        out["remount_root_rw"] = libc.mount(None, b"/", None, MS_REMOUNT | MS_BIND, None)
        out["umount_tmp"] = libc.umount2(b"/tmp", 0)
        out["umount_tmp_lazy"] = libc.umount2(b"/tmp", 2)
        out["mount_tmpfs_usr"] = libc.mount(b"x", b"/usr", b"tmpfs", 0, None)
        return out
    results = {"as_is": attempt()}
    # A fresh user + mount namespace gives the code every capability again, over copies of the mounts.
    if libc.unshare(0x10000000 | 0x20000) == 0:
        uid, gid = os.getuid(), os.getgid()
        for name, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"), ("gid_map", f"0 {gid} 1")):
            try:
                with open(f"/proc/self/{name}", "w") as f:
                    f.write(text)
            except OSError:
                pass
        results["nested"] = attempt()
    else:
        results["nested"] = "refused"
    print(results)
    """
)


def test_mounts_cannot_be_remounted_or_unmounted_and_no_namespace_regains_capabilities(kind):
    result = run_python(_MOUNT_ATTACKS, sandbox=kind)
    assert result.ok, result.stderr
    results = eval(result.stdout)  # noqa: S307 - the dict printed by our own program above
    assert results["as_is"] == {"remount_root_rw": -1, "umount_tmp": -1, "umount_tmp_lazy": -1, "mount_tmpfs_usr": -1}
    assert results["nested"] == "refused"  # no user namespace of its own: no capabilities to regain


def test_host_directories_stay_unwritable_after_mount_attacks(tmp_path, kind):
    os.chmod(tmp_path, 0o777)  # even a world-writable host directory
    target = tmp_path / "escape.txt"
    code = _MOUNT_ATTACKS + textwrap.dedent(
        f"""
        for path in ({str(target)!r}, "/usr/escape.txt", "/var/tmp/escape.txt", "/dev/shm/escape.txt"):
            try:
                open(path, "w").write("x")
                print("written", path)
            except OSError:
                pass
        """
    )
    result = run_python(code, sandbox=kind)
    assert result.ok, result.stderr
    assert "written" not in result.stdout
    for path in (target, "/usr/escape.txt", "/var/tmp/escape.txt", "/dev/shm/escape.txt"):
        assert not os.path.exists(path)


def test_total_disk_quota_on_the_writable_space(kind):
    # Many files each under the per-file limit: only a total quota stops them.
    code = textwrap.dedent(
        """
        import os
        written = 0
        chunk = b"x" * (1 << 20)
        try:
            for k in range(200):
                with open(f"/tmp/f{k}", "wb") as f:
                    for _ in range(4):
                        f.write(chunk)
                        written += len(chunk)
        except OSError as e:
            print("stopped", e.errno)
        print("written", written >> 20)
        """
    )
    result = run_python(code, SandboxLimits(disk_mb=32), sandbox=kind)
    assert result.ok, result.stderr
    assert "stopped 28" in result.stdout  # ENOSPC
    assert int(result.stdout.split("written")[1]) <= 32


def test_unshare_fallback_is_refused_with_its_reason_when_the_bootstrap_cannot_hold(monkeypatch):
    # Simulate a machine where the mounts cannot be locked: the bootstrap refuses, so does the probe.
    refusing = "import sys\nsys.stderr.write('sandbox: the mounts are not locked\\n')\nsys.exit(125)\n"
    monkeypatch.setattr(sandbox, "UNSHARE_BOOT", refusing)
    monkeypatch.setattr(sandbox, "_bwrap_works", lambda uid: False)
    sandbox._unshare_works.cache_clear()
    try:
        assert sandbox.available_sandbox() is None
        with pytest.raises(SandboxError, match="unshare fallback was refused: sandbox: the mounts are not locked"):
            run_python("print('hi')")
        with pytest.raises(SandboxError, match="unshare sandbox does not work on this machine: sandbox: the mounts"):
            run_python("print('hi')", sandbox="unshare")
    finally:
        sandbox._unshare_works.cache_clear()
        sandbox._probe_failures.pop("unshare", None)


def test_humaneval_unsafe_exec_still_needs_the_judges_proof(monkeypatch):
    monkeypatch.setattr(sandbox, "available_sandbox", lambda: None)
    from ttsgraph.tasks.humaneval import HumanEvalTask

    task = HumanEvalTask(unsafe_exec=True)
    item = next(i for i in task.items("search") + task.items("test") if i.id == "humaneval/2")
    assert task.grade(item, task.gold_text(item)).correct
    assert not task.grade(item, "```python\n" + BYPASSES["os._exit"] + "```").correct
