"""Running model-written Python without trusting it.

HumanEval grading executes code an LLM wrote. That code gets:

- its own process tree in fresh namespaces (bubblewrap): no network (empty net namespace), its
  own PID namespace (when the sandbox's first process ends, the kernel kills every process left in
  it, so a sleeping or daemonized child cannot outlive the run), no view of the host's other files;
- no capabilities at all (empty bounding, effective, permitted, inheritable and ambient sets,
  no_new_privs) and no way to create a user namespace in which it would have some again;
- a read-only filesystem holding only the system libraries and the Python standard library, plus
  one private writable `/tmp` (also the working directory): a tmpfs with a total size quota;
- resource limits: wall time (the whole process group is killed), address space, processes (so a
  fork bomb hits a wall instead of the host), file size, open files, no core dumps.

RLIMIT_NPROC does not bind root, so when ttsgraph runs as root the sandbox first switches to an
unprivileged uid (a different one per concurrent run, so parallel runs do not share the quota).
As a non-root user the quota is the user's current process count plus the sandbox's allowance.

Without bubblewrap (`bwrap`), util-linux `unshare` builds the same namespaces and a small bootstrap
remounts every mount read-only, then locks those mounts by nesting a second user namespace and drops
every capability (the host's files stay visible, read-only, subject to normal permissions); the
probe that selects it runs that whole bootstrap, so a machine where any step fails gets no sandbox.
With neither, nothing is executed unless the caller opts in with `unsafe_exec=True` (CLI
`--unsafe-exec`): a plain subprocess with the same rlimits and timeout. docs/tasks.md lists exactly
what is and is not guaranteed.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ttsgraph.errors import SandboxError
from ttsgraph.sandbox_scripts import LAUNCHER, UNSHARE_BOOT


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits for one run. The defaults suit a unit-test-sized program."""

    wall_seconds: float = 10.0
    memory_mb: int = 1024
    max_processes: int = 32
    max_file_mb: int = 16
    disk_mb: int = 64  # total size of the writable /tmp (a tmpfs), not only per file
    max_output_bytes: int = 200_000


@dataclass(frozen=True)
class RunResult:
    """What a sandboxed run did. `ok` means exit status 0 within the time limit."""

    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool
    seconds: float
    sandbox: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


_UNSHARE_ARGS = ["unshare", "--user", "--map-root-user", "--net", "--pid", "--fork", "--kill-child",
                 "--mount", "--mount-proc", "--ipc", "--uts"]

_UID_BASE = 61000
_UID_SPAN = 2000
_uid_counter = itertools.count()
_uid_lock = threading.Lock()


def _next_sandbox_uid() -> int:
    with _uid_lock:
        k = next(_uid_counter)
    return _UID_BASE + (os.getpid() * 97 + k) % _UID_SPAN


def _user_task_count(uid: int) -> int:
    """Threads owned by `uid` right now (what RLIMIT_NPROC counts)."""
    count = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid == uid:
                count += len(os.listdir(f"/proc/{entry.name}/task"))
        except OSError:
            continue
    return count


def _world_reachable(path: str) -> bool:
    """Whether any user may execute `path`: every directory on the way is o+x and the file o+x."""
    real = os.path.realpath(path)
    parts = Path(real).parents
    try:
        return all(os.stat(d).st_mode & 0o001 for d in parts) and bool(os.stat(real).st_mode & 0o001)
    except OSError:
        return False


def _sandbox_python(other_user: bool) -> str:
    """The interpreter to run inside: the real one behind a virtualenv (only the standard library is
    needed), or a system python when the sandbox runs as another user who cannot reach it."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [
        str(Path(sys.base_prefix) / "bin" / version),
        str(Path(sys.base_prefix) / "bin" / "python3"),
        os.path.realpath(sys.executable),
    ]
    if other_user:
        candidates = [c for c in candidates if _world_reachable(c)]
        candidates += [f"/usr/bin/{version}", "/usr/bin/python3", f"/usr/local/bin/{version}", "/usr/local/bin/python3"]
        candidates = [c for c in candidates if _world_reachable(c)]
    for c in candidates:
        if os.path.isfile(c) and os.access(c, os.X_OK):
            return os.path.realpath(c)
    raise SandboxError("no Python interpreter that the sandbox user can execute was found")


def _system_binds() -> list[str]:
    """Read-only /usr plus the top-level library and binary directories (symlinks on merged-/usr)."""
    binds = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            binds += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            binds += ["--ro-bind", top, top]
    return binds


def _bwrap_command(workdir: str, python: str, disk_bytes: int) -> list[str]:
    cmd = [
        "bwrap",
        "--unshare-all",  # user, ipc, pid, net, uts, cgroup namespaces
        "--unshare-user",  # required (not only tried), so that nested user namespaces can be disabled
        "--disable-userns",  # the code cannot create user namespaces of its own
        "--cap-drop", "ALL",
        "--die-with-parent",
        "--new-session",
        "--hostname", "sandbox",
        "--clearenv",
        "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin",
        "--setenv", "HOME", "/tmp",
        "--setenv", "TMPDIR", "/tmp",
        "--setenv", "PYTHONDONTWRITEBYTECODE", "1",
    ] + _system_binds()
    # The interpreter's own prefix (pyenv, /opt builds) read-only at the same path.
    prefix = os.path.dirname(os.path.dirname(os.path.realpath(python)))
    if prefix != "/usr" and not prefix.startswith("/usr/"):
        cmd += ["--ro-bind", prefix, prefix]
    cmd += [
        "--proc", "/proc",
        "--dev", "/dev",
        "--size", str(disk_bytes), "--tmpfs", "/tmp",  # the only writable place, with a total quota
        "--ro-bind", os.path.join(workdir, "main.py"), "/tmp/main.py",
        "--remount-ro", "/",  # the root itself (a tmpfs holding the mount points) becomes read-only
        "--remount-ro", "/dev",
        "--chdir", "/tmp",
        python, "-I", "-S", "-B", "/tmp/main.py",
    ]
    return cmd


# Why each sandbox kind failed its probe (the last line it printed), for the refusal message.
_probe_failures: dict[str, str] = {}


def _runs(kind: str, argv: list[str], as_uid: int | None) -> bool:
    """Whether `argv` (a namespace-creating probe) succeeds here, run as `as_uid` when given."""
    try:
        probe = subprocess.run(argv, capture_output=True, timeout=20, cwd="/", user=as_uid, group=as_uid,
                               extra_groups=[] if as_uid is not None else None)
    except (OSError, subprocess.SubprocessError) as e:
        _probe_failures[kind] = str(e)
        return False
    if probe.returncode != 0:
        lines = probe.stderr.decode("utf-8", "replace").strip().splitlines()
        _probe_failures[kind] = lines[-1][:200] if lines else f"exit {probe.returncode}"
    return probe.returncode == 0


@lru_cache(maxsize=None)
def _bwrap_works(as_uid: int | None) -> bool:
    """Probe once whether bubblewrap can create its namespaces here (as `as_uid` when given)."""
    probe = ["bwrap", "--unshare-all", "--unshare-user", "--disable-userns", *_system_binds(), "true"]
    return shutil.which("bwrap") is not None and _runs("bwrap", probe, as_uid)


@lru_cache(maxsize=None)
def _unshare_works(as_uid: int | None) -> bool:
    """Probe once whether the whole unshare fallback holds here: util-linux `unshare` builds the
    namespaces and the bootstrap can lock the mounts and drop every capability (it refuses if not)."""
    if shutil.which("unshare") is None:
        return False
    with tempfile.TemporaryDirectory(prefix="ttsgraph-probe-") as probe_dir:
        Path(probe_dir, "main.py").write_text("pass\n", encoding="utf-8")
        if as_uid is not None:
            os.chmod(probe_dir, 0o755)
        python = _sandbox_python(other_user=as_uid is not None)
        return _runs("unshare", [*_UNSHARE_ARGS, python, "-I", "-S", "-c", UNSHARE_BOOT, probe_dir, str(1 << 20)], as_uid)


def _probe_uid() -> int | None:
    return _UID_BASE if os.geteuid() == 0 else None


def available_sandbox() -> str | None:
    """"bwrap" when bubblewrap works here, else "unshare" when util-linux can build the same
    namespaces, else None. As root, only sandboxes that work as an unprivileged uid qualify, because
    the process limit does not bind root."""
    uid = _probe_uid()
    if _bwrap_works(uid):
        return "bwrap"
    if _unshare_works(uid):
        return "unshare"
    return None


def run_python(
    code: str,
    limits: SandboxLimits = SandboxLimits(),
    *,
    unsafe_exec: bool = False,
    sandbox: str | None = None,
    stdin: bytes = b"",
) -> RunResult:
    """Run a Python program in the sandbox and report its exit status and output.

    `stdin` is the program's standard input (a pipe, closed after it); a harness reads data there
    that must not sit in a file the code under test could open. `sandbox` forces "bwrap" or
    "unshare" (tests use it to check both); by default the best available one is used. Raises
    SandboxError when none is available and `unsafe_exec` is False.
    """
    if sandbox is not None:
        if sandbox not in ("bwrap", "unshare"):
            raise SandboxError(f"unknown sandbox {sandbox!r}; use 'bwrap' or 'unshare'")
        works = _bwrap_works if sandbox == "bwrap" else _unshare_works
        if not works(_probe_uid()):
            why = _probe_failures.get(sandbox, "not installed")
            raise SandboxError(f"the {sandbox} sandbox does not work on this machine: {why}")
        kind: str | None = sandbox
    else:
        kind = available_sandbox()
    if kind is None and not unsafe_exec:
        raise SandboxError(
            "refusing to run model-written code: bubblewrap (bwrap) is not available or cannot create "
            "namespaces here. Install it (Debian: apt-get install bubblewrap) or pass --unsafe-exec "
            "(unsafe_exec=True) to run it unsandboxed with resource limits only."
            + (f" The unshare fallback was refused: {_probe_failures['unshare']}" if "unshare" in _probe_failures else "")
        )
    root = os.geteuid() == 0
    drop_uid = _next_sandbox_uid() if root else None
    python = _sandbox_python(other_user=drop_uid is not None)
    disk_bytes = limits.disk_mb << 20
    with tempfile.TemporaryDirectory(prefix="ttsgraph-sbx-") as host_dir:
        workdir = os.path.join(host_dir, "work")
        os.mkdir(workdir, 0o700)
        Path(workdir, "main.py").write_text(code, encoding="utf-8")
        if drop_uid is not None:
            os.chown(host_dir, drop_uid, drop_uid)
            os.chown(workdir, drop_uid, drop_uid)
            os.chown(os.path.join(workdir, "main.py"), drop_uid, drop_uid)
        nproc = limits.max_processes
        if drop_uid is None:
            nproc += _user_task_count(os.getuid())
        rlimits = {
            "RLIMIT_AS": limits.memory_mb << 20,
            "RLIMIT_FSIZE": limits.max_file_mb << 20,
            "RLIMIT_CORE": 0,
            "RLIMIT_NOFILE": 256,
            "RLIMIT_CPU": int(limits.wall_seconds) + 2,
        }
        rlimits["RLIMIT_NPROC"] = nproc
        if kind == "bwrap":
            target = _bwrap_command(workdir, python, disk_bytes)
        elif kind == "unshare":
            target = [*_UNSHARE_ARGS, python, "-I", "-S", "-c", UNSHARE_BOOT, workdir, str(disk_bytes)]
        else:
            target = [python, "-I", "-S", "-B", os.path.join(workdir, "main.py")]
        launcher = [python, "-I", "-S", "-c", LAUNCHER, json.dumps({"limits": rlimits})] + target
        out_path, err_path = os.path.join(host_dir, "stdout"), os.path.join(host_dir, "stderr")
        inner_tmp = workdir if kind is None else "/tmp"
        start = time.monotonic()
        timed_out = False
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(
                launcher,
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=err,
                cwd=workdir,
                start_new_session=True,
                user=drop_uid,
                group=drop_uid,
                extra_groups=[] if drop_uid is not None else None,
                env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": inner_tmp, "TMPDIR": inner_tmp},
            )
            try:
                proc.communicate(stdin, timeout=limits.wall_seconds)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                _kill_group(proc)
        seconds = time.monotonic() - start
        return RunResult(
            returncode=None if timed_out else proc.returncode,
            stdout=_read_capped(out_path, limits.max_output_bytes),
            stderr=_read_capped(err_path, limits.max_output_bytes),
            timed_out=timed_out,
            seconds=seconds,
            sandbox=kind or "unsafe",
        )


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill the run's whole process group (the sandbox namespace dies with its first process)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _read_capped(path: str, cap: int) -> str:
    with open(path, "rb") as f:
        data = f.read(cap + 1)
    text = data[:cap].decode("utf-8", errors="replace")
    return text + ("\n[output truncated]" if len(data) > cap else "")
