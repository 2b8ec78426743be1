"""Namespaces and the private root of the executor. Standard library only (it ships with ``executor.py``).

The executor calls :func:`enter_netns` and :func:`build_root` once at start-up, as root; every job child then
only needs ``chroot(root)`` and ``chdir("/work")``: the per-job cost of the filesystem isolation is one syscall.

The root is a small tmpfs, read-only once built, holding: the interpreter binary and its dynamic loader, the
stdlib (its ``site-packages`` masked), the directories of the shared libraries the interpreter uses,
``/etc/ld.so.cache``, the device nodes ``/dev/null``, ``/dev/zero``, ``/dev/random``, ``/dev/urandom``, and three
writable mounts the executor empties after every job: ``/work`` (a bind of the slot's work directory), ``/tmp``
and ``/dev/shm`` (tmpfs). No ``/proc``, ``/sys``, ``/etc`` beyond the loader cache, no home, no checkout.
"""

from __future__ import annotations

import ctypes
import os
import stat
import struct
import sys
import sysconfig

CLONE_NEWNET = 0x40000000
CLONE_NEWNS = 0x00020000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
DEVICES = ("null", "zero", "random", "urandom")
SCRATCH = ("tmp", "dev/shm")  # writable tmpfs mounts inside the root, emptied after every job
WORK = "/work"
_libc = ctypes.CDLL(None, use_errno=True)


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount(src: str | None, dst: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    """mount(2); ``OSError`` on failure."""
    enc = [None if s is None else s.encode() for s in (src, dst, fstype, data)]
    _check(_libc.mount(enc[0], enc[1], enc[2], flags, enc[3]), f"mount {src} on {dst}")


def enter_netns() -> str | None:
    """Move this process into a new, empty network namespace (only ``lo``, down); None, or why not."""
    if _libc.unshare(CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        return f"unshare(CLONE_NEWNET) failed: {os.strerror(err)} (needs root or CAP_SYS_ADMIN)"
    return None


def _elf_interpreter(path: str) -> str | None:
    """The dynamic loader an ELF binary names (PT_INTERP), or None (static, or not 64-bit little-endian)."""
    with open(path, "rb") as fh:
        head = fh.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
            return None
        phoff, phentsize, phnum = struct.unpack_from("<Q", head, 32)[0], *struct.unpack_from("<HH", head, 54)
        for i in range(phnum):
            fh.seek(phoff + i * phentsize)
            p_type, _, p_offset = struct.unpack("<IIQ", fh.read(16))
            if p_type == 3:  # PT_INTERP
                fh.seek(phoff + i * phentsize + 32)
                (size,) = struct.unpack("<Q", fh.read(8))
                fh.seek(p_offset)
                return fh.read(size).rstrip(b"\0").decode()
    return None


def _mapped_library_dirs() -> set[str]:
    """Directories of the shared objects this interpreter has loaded (libc, libpython, lib-dynload, ...)."""
    dirs = set()
    with open("/proc/self/maps") as fh:
        for line in fh:
            fields = line.split(None, 5)
            path = fields[5].strip() if len(fields) == 6 else ""
            if path.startswith("/") and ".so" in os.path.basename(path):
                dirs.add(os.path.dirname(path))
    return dirs


def interpreter_paths() -> tuple[str, list[str], list[str]]:
    """(the real interpreter binary, what to expose read-only, what to mask with an empty directory)."""
    exe = os.path.realpath(sys.executable)
    base = {"base": sys.base_prefix, "platbase": sys.base_prefix, "installed_base": sys.base_prefix}
    paths = sysconfig.get_paths(vars=base)
    stdlib = [paths["stdlib"], paths["platstdlib"], *(p for p in sys.path if p.startswith(sys.base_prefix))]
    expose = [exe, *stdlib, *_mapped_library_dirs(), "/etc/ld.so.cache"]
    loader = _elf_interpreter(exe)
    if loader:
        expose.append(loader)
    triplet = sysconfig.get_config_var("MULTIARCH")
    if triplet:  # where the loader looks for libraries a job's imports load later (libffi, libssl, ...)
        expose += [f"/lib/{triplet}", f"/usr/lib/{triplet}"]
    mask = [p for p in (paths["purelib"], paths["platlib"]) if any(p.startswith(s + os.sep) for s in stdlib)]
    return exe, [p for p in dict.fromkeys(expose) if os.path.exists(p)], list(dict.fromkeys(mask))


def _mirror(root: str, path: str, hops: int = 0) -> str:
    """Recreate in ``root`` the directories and symlinks that lead to host ``path``; return its real path."""
    if hops > 16:
        raise OSError(f"too many symlinks under {path}")
    cur = "/"
    parts = [p for p in path.split("/") if p]
    for i, name in enumerate(parts):
        nxt = os.path.join(cur, name)
        inside = root + nxt
        if os.path.islink(nxt):
            target = os.readlink(nxt)
            if not os.path.lexists(inside):
                os.symlink(target, inside)
            resolved = os.path.normpath(os.path.join(cur, target))
            return _mirror(root, os.path.join(resolved, *parts[i + 1 :]), hops + 1)
        if i < len(parts) - 1 or os.path.isdir(nxt):
            os.makedirs(inside, mode=0o755, exist_ok=True)
        elif not os.path.exists(inside):
            open(inside, "w").close()  # the mount point of a file
        cur = nxt
    return cur


def _bind_readonly(src: str, dst: str, nodev: bool = True) -> None:
    mount(src, dst, None, MS_BIND | MS_REC)
    flags = MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | (MS_NODEV if nodev else 0)
    mount(None, dst, None, flags)


def build_root(root: str, work: str, scratch_mb: int = 256) -> str:
    """Enter a private mount namespace and build the job root at ``root`` (see the module docstring); returns
    the interpreter binary (jobs see it at the same path).

    ``OSError`` when the kernel refuses (no CAP_SYS_ADMIN, a seccomp or AppArmor profile that forbids mounts).
    """
    _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing we mount propagates back to the host
    os.makedirs(root, mode=0o755, exist_ok=True)
    mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=4m")
    exe, expose, mask = interpreter_paths()
    bound: list[str] = []
    for path in sorted(expose, key=len):  # parents first; a path under an exposed directory is already there
        if any(path == b or path.startswith(b + os.sep) for b in bound):
            continue
        real = _mirror(root, path)
        if any(real == b or real.startswith(b + os.sep) for b in bound):
            continue
        _bind_readonly(real, root + real)
        bound.append(real)
    for path in mask:
        if os.path.isdir(path):
            mount("tmpfs", root + path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV, "size=4k,mode=555")
    for name in DEVICES:
        os.makedirs(root + "/dev", mode=0o755, exist_ok=True)
        open(f"{root}/dev/{name}", "w").close()
        _bind_readonly(f"/dev/{name}", f"{root}/dev/{name}", nodev=False)  # device nodes stay writable
    for name in SCRATCH:
        os.makedirs(f"{root}/{name}", mode=0o755, exist_ok=True)
        mount("tmpfs", f"{root}/{name}", "tmpfs", MS_NOSUID | MS_NODEV, f"mode=1777,size={scratch_mb}m")
    os.makedirs(root + WORK, mode=0o755)
    mount(work, root + WORK, None, MS_BIND)
    mount(None, root + WORK, None, MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV)
    mount(None, root, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    return exe


def read_job_files(work: str, names: list[str], cap: int) -> dict[str, str]:
    """Base64 of the regular files ``names`` (relative to the job's work directory) once the job has ended;
    a name that is missing, not a regular file, or leads outside the work directory (a symlink to a host file)
    is left out, and so is everything past ``cap`` bytes in all."""
    import base64

    out, total = {}, 0
    for name in names:
        path = os.path.normpath(os.path.join(work, name))
        if not path.startswith(work + os.sep) or not os.path.realpath(path).startswith(work + os.sep):
            continue
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                continue
            data = fh.read(cap - total + 1)
        if total + len(data) > cap:
            break
        total += len(data)
        out[name] = base64.b64encode(data).decode()
    return out


def unmount(path: str) -> None:
    """Detach a mount (best effort: the namespace goes away with the executor anyway)."""
    _libc.umount2(path.encode(), MNT_DETACH)
