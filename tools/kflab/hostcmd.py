# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host plumbing every part uses: running commands, progress lines, atomic writes, locks, mounts."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from .errors import LabError

HOST_TOOLS = {  # command: Debian package
    "debootstrap": "debootstrap", "systemd-nspawn": "systemd-container", "ip": "iproute2",
    "iptables": "iptables", "ssh": "openssh-client", "ssh-keygen": "openssh-client", "mount": "mount",
}


def progress(lab: str, message: str) -> None:
    print("[lab %s %s] %s" % (lab, time.strftime("%H:%M:%S"), message), flush=True)


def run(argv: list[str], check: bool = True, timeout: float | None = None, env: dict | None = None,
        input_text: str | None = None) -> subprocess.CompletedProcess:
    """Run ``argv`` with C locale output; ``check`` turns a failure into a LabError naming the command."""
    full_env = dict(os.environ, LANG="C", LC_ALL="C", LANGUAGE="C")
    if env:
        full_env.update(env)
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=timeout, env=full_env,
                              input=input_text, stdin=None if input_text is not None else subprocess.DEVNULL)
    except FileNotFoundError as exc:
        raise LabError("%s is not installed (%s): run `make deps` or "
                       "`apt-get install debootstrap systemd-container iproute2 iptables`" % (argv[0], exc)) from exc
    except subprocess.TimeoutExpired as exc:
        if check:
            raise LabError("%s timed out after %ss" % (shlex.join(argv), timeout)) from exc
        return subprocess.CompletedProcess(argv, 124, "", "timeout")
    if check and proc.returncode != 0:
        raise LabError("%s failed (rc=%d): %s" % (shlex.join(argv), proc.returncode, (proc.stderr or proc.stdout).strip()))
    return proc


def write_atomic(path: Path, content: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=str(path.parent), prefix=".%s." % path.name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def file_lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    # released when the last descriptor closes (no LOCK_UN: a child given the descriptor keeps it)
    with open(path, "a", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield handle


def mounts_under(prefix: str) -> list[str]:
    result = []
    with open("/proc/self/mounts", encoding="utf-8") as handle:
        for line in handle:
            target = line.split()[1].replace("\\040", " ")
            if target == prefix or target.startswith(prefix.rstrip("/") + "/"):
                result.append(target)
    return result


def safe_rmtree(path: Path) -> None:
    """Remove ``path`` after unmounting whatever is mounted below it (debootstrap mounts /proc, /sys,
    /dev/pts in its target); refuse when a mount stays, so a host file system is never walked."""
    for mount in sorted(mounts_under(str(path)), key=lambda p: p.count("/"), reverse=True):
        run(["umount", "-l", mount], check=False)
    left = mounts_under(str(path))
    if left:
        raise LabError("cannot remove %s: still mounted below it: %s" % (path, ", ".join(left)))
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def require_tools() -> None:
    missing = sorted({package for command, package in HOST_TOOLS.items() if shutil.which(command) is None})
    if missing:
        raise LabError("the lab needs %s on this host: run `make deps` or `apt-get install %s`"
                       % (", ".join(missing), " ".join(missing)))


def require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces, overlay mounts, systemd-nspawn): run it as root")
