# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""kernel_modules and sysctl_dropin through ansible-playbook on this machine's real kernel.

Nothing on the host changes: kernel_modules runs in check mode without persisting, and sysctl_dropin
runs in a private network namespace (``unshare --net``: net.* keys there are its own) or against a
read-only bind mount of /proc/sys (``unshare --mount``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = str(Path(sys.executable).with_name("ansible-playbook"))


def playbook(tmp_path, text, prefix=(), extra=None):
    (tmp_path / "play.yml").write_text(text)
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=str(REPO / ".build" / "collections"),
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"), ANSIBLE_REMOTE_TEMP=str(tmp_path / "rtmp"))
    argv = list(prefix) + [ANSIBLE_PLAYBOOK, "-i", "localhost,", "-c", "local", "-e", "ansible_python_interpreter=" + sys.executable,
                           "-e", "out=" + str(tmp_path / "out.json"), str(tmp_path / "play.yml")] + list(extra or [])
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)
    out = tmp_path / "out.json"
    return proc, (json.loads(out.read_text()) if out.exists() else None)


SAVE = """
    - name: Save the results for the test
      ansible.builtin.copy:
        content: "{{ results | to_nice_json }}"
        dest: "{{ out }}"
        mode: "0600"
      check_mode: false
      vars:
        results: "RESULTS"
"""


def expected_presence():
    """Independent evidence from /proc of what the running kernel has."""
    proc_modules = Path("/proc/modules")
    loaded = set()
    if proc_modules.exists():
        loaded = {line.split()[0] for line in proc_modules.read_text().splitlines() if line.strip()}
    filesystems = Path("/proc/filesystems").read_text().split()
    return {
        "overlay": "overlay" in loaded or "overlay" in filesystems,
        "br_netfilter": "br_netfilter" in loaded or Path("/proc/sys/net/bridge/bridge-nf-call-iptables").exists(),
        "ip_vs": "ip_vs" in loaded or Path("/proc/net/ip_vs").exists(),
    }, proc_modules.exists(), loaded


def test_kernel_modules_reports_this_kernel(tmp_path):
    text = """
- name: Probe
  hosts: all
  gather_facts: false
  tasks:
    - name: Probe the kernel modules of this machine
      kubeforge.cluster.kernel_modules:
        modules:
          - {name: overlay, required: false}
          - {name: br_netfilter, required: false}
          - {name: ip_vs, required: false, reason: kube-proxy ipvs mode}
        persist: false
      check_mode: true
      register: probe
""" + SAVE.replace("RESULTS", "{{ probe }}")
    proc, result = playbook(tmp_path, text)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    present, module_support, loaded = expected_presence()
    assert result["module_support"] is module_support
    assert result["kernel_release"] == os.uname().release
    for entry in result["modules"]:
        name = entry["name"]
        if present[name]:
            assert entry["status"] == ("loaded" if name in loaded else "builtin"), entry
        elif not module_support:
            assert entry["status"] == "missing", entry
        else:
            assert entry["status"] in ("loadable", "missing"), entry
        if entry["status"] == "missing":
            assert "optional kernel module %s" % name in proc.stdout + proc.stderr
    assert result["persisted"] == []


needs_unshare = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root and unshare")


@needs_unshare
def test_sysctl_dropin_in_private_network_namespace(tmp_path):
    dropin = tmp_path / "sysctl.d" / "99-kubeforge.conf"
    task = """
    - name: {name}
      kubeforge.cluster.sysctl_dropin:
        path: {path}
        settings:
          net.ipv4.ip_forward: 1
          net.ipv4.conf.all.forwarding: 1
      register: {reg}
      {extra}
"""
    text = (
        "- name: Sysctl\n  hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - name: Start from 0\n      ansible.builtin.shell: echo 0 > /proc/sys/net/ipv4/ip_forward\n      changed_when: true\n"
    )
    text += task.format(name="Check mode", path=dropin, reg="check", extra="check_mode: true\n      diff: true")
    text += task.format(name="Apply", path=dropin, reg="apply", extra="")
    text += task.format(name="Re-apply", path=dropin, reg="again", extra="diff: true")
    text += "    - name: Read back\n      ansible.builtin.slurp:\n        src: /proc/sys/net/ipv4/ip_forward\n      register: now\n"
    text += SAVE.replace("RESULTS", "{{ {'check': check, 'apply': apply, 'again': again, 'now': now.content | b64decode | trim} }}")
    proc, result = playbook(tmp_path, text, prefix=["unshare", "--net"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert result["check"]["changed"] is True
    assert result["check"]["applied"]["net.ipv4.ip_forward"] == {"before": "0", "after": "1"}
    assert result["apply"]["changed"] is True and result["apply"]["file_changed"] is True
    assert result["again"]["changed"] is False
    assert result["now"] == "1"
    assert dropin.read_text().splitlines()[1:] == ["net.ipv4.ip_forward = 1", "net.ipv4.conf.all.forwarding = 1"]


@needs_unshare
def test_sysctl_dropin_read_only_proc_sys(tmp_path):
    dropin = tmp_path / "99-kubeforge.conf"
    current = Path("/proc/sys/vm/swappiness").read_text().strip()
    wanted = "33" if current != "33" else "34"
    text = """
- name: Read-only
  hosts: all
  gather_facts: false
  tasks:
    - name: Apply with a read-only /proc/sys
      kubeforge.cluster.sysctl_dropin:
        path: {path}
        settings:
          vm.swappiness: {wanted}
      register: ro
      ignore_errors: true
""".format(path=dropin, wanted=wanted) + SAVE.replace("RESULTS", "{{ ro }}")
    script = "mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys && exec \"$@\""
    proc, result = playbook(tmp_path, text, prefix=["unshare", "--mount", "sh", "-c", script, "sh"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert result["failed"] is True
    assert result["msg"].startswith("cannot set vm.swappiness = %s: /proc/sys/vm/swappiness is read-only here (Read-only file system)" % wanted)
    assert "run the machine with a writable /proc/sys" in result["msg"]
    assert not dropin.exists()
    assert Path("/proc/sys/vm/swappiness").read_text().strip() == current
