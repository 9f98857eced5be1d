# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place that builds ssh command lines to lab machines (and to inventory hosts for the summary)."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

from .hostcmd import run

# Lab machines get fresh host keys on every `up`: never record or check them.
HOST_KEY_OPTIONS = [
    "-o", "StrictHostKeyChecking=no",
    "-o", "UserKnownHostsFile=/dev/null",
    "-o", "IdentitiesOnly=yes",
]
SSH_OPTIONS = [*HOST_KEY_OPTIONS, "-o", "LogLevel=ERROR", "-o", "BatchMode=yes"]
# what the inventory gives Ansible (it adds its own batch and logging options)
INVENTORY_SSH_ARGS = " ".join(HOST_KEY_OPTIONS)


def ssh_argv(address: str, key: str | None, command: list[str] | None = None, user: str = "root",
             connect_timeout: int = 5, tty: bool = False) -> list[str]:
    """``ssh`` argv for ``user@address`` with the lab key; ``command`` runs remotely (a shell without)."""
    argv = ["ssh"]
    if tty:
        argv.append("-t")
    if key:
        argv += ["-i", key]
    argv += [*SSH_OPTIONS, "-o", "ConnectTimeout=%d" % connect_timeout, "%s@%s" % (user, address)]
    return argv + list(command or [])


def ssh_run(address: str, key: str | None, command: str, timeout: float = 30, user: str = "root",
            connect_timeout: int = 5, input_text: str | None = None) -> subprocess.CompletedProcess:
    """Run one remote shell command; never raises for a failed command (see ``returncode``)."""
    return run(ssh_argv(address, key, [command], user=user, connect_timeout=connect_timeout),
               check=False, timeout=timeout, input_text=input_text)


def ensure_key(key_path: str, lab: str) -> str:
    """The lab's ed25519 key pair (private key 0600), made when missing; return the public key."""
    key = Path(key_path)
    if not key.exists() or not key.with_suffix(".pub").exists():
        for path in (key, key.with_suffix(".pub")):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "kubeforge-lab-%s" % lab, "-f", str(key)])
    os.chmod(key, 0o600)
    return key.with_suffix(".pub").read_text(encoding="utf-8")
