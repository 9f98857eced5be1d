# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab as the apiserver_proxy tests see it: ssh to its machines, the stage playbook with extra inventories,
and the figures the tests print (also written to .build/figures/molecule-apiserver_proxy.json)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

SCENARIO = Path(__file__).resolve().parent.parent
# molecule prunes its ephemeral directory at the end; the figures stay here
FIGURES = SCENARIO.parent.parent / ".build" / "figures" / "molecule-apiserver_proxy.json"
RECAP_RE = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE)


class Lab:
    def __init__(self):
        self.inventory_file = Path(os.environ["MOLECULE_INVENTORY_FILE"])
        self.ephemeral = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
        data = yaml.safe_load(self.inventory_file.read_text())
        self.hostvars = data["all"]["hosts"]
        self.groups = {name: sorted((group or {}).get("hosts") or {}) for name, group in data.items() if name != "all"}
        self.control_dir = tempfile.mkdtemp(prefix="kf-ssh-")
        self.figures = {}

    # --- machines ---------------------------------------------------------------------------------------------
    def address(self, name):
        return self.hostvars[name]["ansible_host"]

    def ssh(self, name, command, timeout=120, check=True):
        vars_ = self.hostvars[name]
        argv = ["ssh", "-i", vars_["ansible_private_key_file"], "-p", str(vars_.get("ansible_port", 22)),
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                "-o", "BatchMode=yes", "-o", "ControlMaster=auto", "-o", "ControlPersist=120s",
                "-o", "ControlPath=%s/%%h" % self.control_dir, "%s@%s" % (vars_["ansible_user"], vars_["ansible_host"]), command]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise AssertionError("%s: %s failed (rc %d): %s%s" % (name, command, proc.returncode, proc.stdout, proc.stderr))
        return proc.stdout

    def on_all(self, names, command, timeout=120):
        """``{name: stdout}``, the command run on every machine at once."""
        with ThreadPoolExecutor(max_workers=len(names)) as pool:
            outputs = list(pool.map(lambda n: self.ssh(n, command, timeout=timeout), names))
        return dict(zip(names, outputs))

    def main_pid(self, name, unit="kube-apiserver-proxy"):
        return int(self.ssh(name, "systemctl show --property=MainPID --value %s" % unit).strip() or 0)

    def proxy_processes(self, names):
        """``{name: {"master": pid, "exe": path, "workers": [pids]}}`` of the proxy unit on each machine, at once."""
        outputs = self.on_all(names, "pid=$(systemctl show --property=MainPID --value kube-apiserver-proxy); echo $pid; "
                                     "[ $pid -gt 0 ] && readlink /proc/$pid/exe && pgrep -P $pid; true")
        result = {}
        for name, out in outputs.items():
            lines = out.split()
            result[name] = {"master": int(lines[0]), "exe": lines[1] if len(lines) > 1 else "",
                            "workers": sorted(int(pid) for pid in lines[2:])}
        return result

    def client(self, name, arguments, timeout=120):
        return self.ssh(name, "python3 /usr/local/bin/apiserver_proxy_client.py %s" % arguments, timeout=timeout)

    def spread(self, names, requests=30):
        """Requests through each machine's own 127.0.0.1:6443 at once: ``{name: {"counts": {...}, "errors": [...]}}``."""
        outputs = self.on_all(names, "python3 /usr/local/bin/apiserver_proxy_client.py count --requests %d" % requests)
        return {name: json.loads(out) for name, out in outputs.items()}

    def sha(self, names, path):
        """``{name: sha256 of path}`` on each machine, at once ('' when missing)."""
        return {name: out.split(" ")[0] for name, out in self.on_all(names, "sha256sum %s 2>/dev/null || true" % path).items()}

    # --- the stage playbook ---------------------------------------------------------------------------------------
    def write_inventory(self, filename, data):
        path = self.ephemeral / filename
        path.write_text(yaml.safe_dump(data))
        return str(path)

    def converge(self, *extra, inventories=(), timeout=900, playbook="converge.yml"):
        """ansible-playbook of the stage (or another ``playbook`` of the scenario) with the molecule inventory
        (+ ``inventories``); ``(rc, output, recap)``."""
        program = str(Path(sys.executable).with_name("ansible-playbook"))
        argv = [program, "-i", str(self.inventory_file.parent)]
        for inventory in inventories:
            argv += ["-i", inventory]
        argv += [str(SCENARIO / playbook), *extra]
        env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
        started = time.monotonic()
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, check=False)
        output = proc.stdout + proc.stderr
        recap = {host: {"ok": int(ok), "changed": int(changed), "unreachable": int(unreachable), "failed": int(failed)}
                 for host, ok, changed, unreachable, failed in RECAP_RE.findall(output)}
        print("\n[ansible-playbook %s %s: rc %d in %.1f s]" % (playbook, " ".join(extra), proc.returncode, time.monotonic() - started))
        return proc.returncode, output, recap

    # --- figures --------------------------------------------------------------------------------------------
    def figure(self, key, value):
        self.figures[key] = value
        print("FIGURE %s: %s" % (key, json.dumps(value, sort_keys=True)))
        FIGURES.parent.mkdir(parents=True, exist_ok=True)
        FIGURES.write_text(json.dumps(self.figures, indent=2, sort_keys=True))


@pytest.fixture(scope="session")
def lab():
    return Lab()
