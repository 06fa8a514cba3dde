"""The two small programs the sandbox runs before model-written code, kept apart from `sandbox.py`.

They are Python source run with `python -I -S -c`, not imported: each must work with nothing but
the standard library, inside a namespace where the rest of ttsgraph is not reachable. Keeping them
here lets `sandbox.py` read as the policy (which sandbox, which limits) and these as the mechanism.
"""

from __future__ import annotations

# Applied by a tiny launcher right before exec'ing the sandbox, so the limits are inherited by
# everything inside it. A launcher (instead of subprocess's preexec_fn) is safe in threaded hosts.
LAUNCHER = r"""
import json, os, resource, sys
spec = json.loads(sys.argv[1])
for name, value in spec["limits"].items():
    resource.setrlimit(getattr(resource, name), (value, value))
os.execvp(sys.argv[2], sys.argv[2:])
"""

# Fallback without bubblewrap, run inside `unshare --user --map-root-user --mount ...` (where it is root
# of a user namespace it owns): put a size-limited tmpfs on /tmp holding a copy of the program, remount
# every other mount read-only (keeping the flags the kernel locks), then nest a second user and mount
# namespace (after capping user namespaces at that one, so the code cannot create any to regain
# capabilities or mount an unlimited tmpfs). Mounts copied into a namespace owned by a less privileged
# user namespace are locked by the kernel (no umount, no read-write remount); the bootstrap checks
# that while it is still root there. Last it
# becomes uid 1000 there with an empty bounding, effective, permitted, inheritable and ambient set and
# no_new_privs, verifies that from /proc/self/status, and execs the program. Any step that fails
# ends the run with exit 125 and a "sandbox:" line on stderr, before model code runs.
UNSHARE_BOOT = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
FLAGS = {"nosuid": 2, "nodev": 4, "noexec": 8, "noatime": 1024, "nodiratime": 2048,
         "relatime": 1 << 21, "strictatime": 1 << 24}
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND = 1, 2, 4, 32, 4096
CLONE_NEWNS, CLONE_NEWUSER = 0x20000, 0x10000000
PSEUDO = {"proc", "sysfs", "cgroup", "cgroup2", "devpts", "securityfs", "debugfs", "tracefs",
          "bpf", "pstore", "configfs", "fusectl", "binfmt_misc", "hugetlbfs", "autofs", "efivarfs"}
work, disk_bytes = sys.argv[1], int(sys.argv[2])
def refuse(what):
    sys.stderr.write("sandbox: " + what + "\n")
    os._exit(125)
def check(ret, what):
    if ret != 0:
        refuse(what + ": " + os.strerror(ctypes.get_errno()))
def mount(src, dst, fstype, flags, data):
    if libc.mount(src, dst.encode(), fstype, flags, data) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), dst)
def write(path, text):
    try:
        with open(path, "w") as f:
            f.write(text)
    except OSError as e:
        refuse("cannot write " + path + ": " + e.strerror)
program = open(os.path.join(work, "main.py"), "rb").read()  # before /tmp is covered
try:
    mount(b"tmpfs", "/tmp", b"tmpfs", MS_NOSUID | MS_NODEV,
          ("size=%d,nr_inodes=%d,mode=0700" % (disk_bytes, 4096)).encode())
except OSError as e:
    refuse("cannot mount the private /tmp: " + e.strerror)
with open("/tmp/main.py", "wb") as f:
    f.write(program)
failed = []
for line in open("/proc/self/mountinfo"):
    left, _, right = line.partition(" - ")
    fields, fstype = left.split(), right.split()[0]
    point = fields[4].encode().decode("unicode_escape")
    options = fields[5].split(",")
    if point == "/tmp" or fstype in PSEUDO or "ro" in options:
        continue
    flags = MS_REMOUNT | MS_BIND | MS_RDONLY
    for option in options:
        flags |= FLAGS.get(option, 0)
    try:
        mount(None, point, None, flags, None)
    except OSError as e:
        failed.append(point + " (" + e.strerror + ")")
if failed:
    refuse("cannot make read-only: " + ", ".join(failed))
write("/proc/sys/user/max_user_namespaces", "1")  # the nested one below; the code gets none
check(libc.unshare(CLONE_NEWUSER | CLONE_NEWNS), "cannot nest a user namespace to lock the mounts")
write("/proc/self/setgroups", "deny")
write("/proc/self/uid_map", "1000 0 1")
write("/proc/self/gid_map", "1000 0 1")
# Still root of the nested namespace here: prove the copies are locked before giving up that power.
if libc.umount2(b"/tmp", 2) == 0 or libc.mount(None, b"/", None, MS_REMOUNT | MS_BIND, None) == 0:
    refuse("the mounts are not locked")
check(libc.prctl(38, 1, 0, 0, 0), "cannot set no_new_privs")  # PR_SET_NO_NEW_PRIVS
last_cap = int(open("/proc/sys/kernel/cap_last_cap").read())
for cap in range(last_cap + 1):
    check(libc.prctl(24, cap, 0, 0, 0), "cannot drop capability %d" % cap)  # PR_CAPBSET_DROP
check(libc.prctl(47, 4, 0, 0, 0), "cannot clear ambient capabilities")  # PR_CAP_AMBIENT_CLEAR_ALL
check(libc.setresgid(1000, 1000, 1000), "cannot set the sandbox gid")
check(libc.setresuid(1000, 1000, 1000), "cannot set the sandbox uid")
header, data = (ctypes.c_uint32 * 2)(0x20080522, 0), (ctypes.c_uint32 * 6)()
check(libc.capset(header, data), "cannot clear capabilities")
caps = [l.split() for l in open("/proc/self/status") if l.startswith("Cap")]
if any(int(value, 16) for _, value in caps):
    refuse("capabilities remain: " + " ".join(name + value for name, value in caps))
os.chdir("/tmp")
os.execv(sys.executable, [sys.executable, "-I", "-S", "-B", "/tmp/main.py"])
"""

__all__ = ["LAUNCHER", "UNSHARE_BOOT"]
