# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The kubeforge lab: real Debian machines with systemd as PID 1, booted with systemd-nspawn.

One cached debootstrap base per distribution, an overlayfs upper directory per machine, one
network namespace per machine with a veth into the lab's bridge, NAT to the Debian mirror,
sshd with a generated key and an Ansible inventory. Runs as root; stdlib only.

    python3 tools/lab.py up [--machines 3] [--distro bookworm] [--lab kubeforge] [--inventory PATH]
    python3 tools/lab.py status [--lab kubeforge]
    python3 tools/lab.py ssh node1 [-- systemctl is-system-running]
    python3 tools/lab.py down [--lab kubeforge]
    python3 tools/lab.py summary --inventory inventories/lab/hosts.yml   # = tools/lab_summary.py

This file is only the entry point; the lab is the package ``tools/kflab/`` (see its __init__ for
which module owns what, and docs/lab.md).
"""

from __future__ import annotations

import sys
from pathlib import Path

TOOLS_DIR = str(Path(__file__).resolve().parent)
if TOOLS_DIR not in sys.path:
    sys.path.insert(0, TOOLS_DIR)

from kflab.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
