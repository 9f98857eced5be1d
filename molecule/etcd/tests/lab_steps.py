# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers of the etcd scenario's verify step: inventories per step, playbook runs, the writer loop, machines.

Each step writes a complete inventory next to molecule's own (so the scenario's group_vars apply) with the etcd
group and host variables that step needs, runs a playbook of the collection with ansible-playbook, and returns its
output, recap and wall time. The writer loop (tests/etcd_writer.py) talks only to the lab's addresses.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import testinfra
import yaml

INVENTORY = Path(os.environ["MOLECULE_INVENTORY_FILE"])
EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
PROJECT = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
sys.path.insert(0, str(PROJECT / "tests"))
sys.path.insert(0, str(PROJECT / ".build" / "collections"))

from etcd_writer import Writer, check_endpoints  # noqa: E402

FIGURES = EPHEMERAL / "etcd-figures.json"
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")
_RECAP_RE = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)\s+skipped=(\d+)", re.M)


def base_inventory():
    return yaml.safe_load(INVENTORY.read_text())


def host_address(name):
    hosts = base_inventory()["all"]["hosts"]
    return hosts[name]["ansible_host"]


def lab_network():
    return str(ipaddress.ip_network(host_address("node1") + "/24", strict=False))


def write_inventory(etcd_hosts, host_vars=None, empty_etcd=False, name="step"):
    """A copy of molecule's inventory whose etcd group is ``etcd_hosts`` (in order), plus ``host_vars``."""
    data = copy.deepcopy(base_inventory())
    # molecule writes the groups at the top level of its inventory; replace those
    data["etcd"] = {"hosts": {} if empty_etcd else {h: {} for h in etcd_hosts}}
    data["etcd_spare"] = {"hosts": {h: {} for h in data["all"]["hosts"] if h not in etcd_hosts}}
    for host, variables in (host_vars or {}).items():
        data["all"]["hosts"][host].update(variables)
    path = INVENTORY.parent / ("etcd-%s.yml" % name)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


class Run:
    def __init__(self, rc, output, seconds, cpu):
        output = _ANSI_RE.sub("", output)
        self.rc, self.output, self.seconds, self.cpu = rc, output, seconds, cpu
        self.recap = {m.group(1): {"ok": int(m.group(2)), "changed": int(m.group(3)), "failed": int(m.group(5)),
                                   "skipped": int(m.group(6))} for m in _RECAP_RE.finditer(output)}

    def changed(self):
        """{host: changed count} of the hosts that changed something; the recap must have been found."""
        assert self.recap, "no PLAY RECAP in the output:\n" + self.output[-2000:]
        return {host: entry["changed"] for host, entry in self.recap.items() if entry["changed"]}


def playbook(name, inventory, extra_vars=None, check=False, limit=None, tags=None, diff=False, verbose=False):
    """ansible-playbook PROJECT/playbooks/<name> with this step's inventory; wall and controller CPU measured."""
    path = Path(name) if os.path.isabs(name) else PROJECT / "playbooks" / name
    argv = ["ansible-playbook", "-i", str(inventory), str(path)] + (["-vv"] if verbose else [])
    if extra_vars:
        argv += ["-e", json.dumps(extra_vars)]
    if check or diff:
        argv += ["--check", "--diff"] if check else ["--diff"]
    if limit:
        argv += ["--limit", limit]
    if tags:
        argv += ["--tags", tags]
    before = os.times()
    started = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0"))
    after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return Run(proc.returncode, proc.stdout + proc.stderr, round(time.monotonic() - started, 1), round(cpu, 1))


def machine(name):
    return testinfra.get_host("ansible://%s" % name, ansible_inventory=str(INVENTORY))


def etcd_process(name):
    """(MainPID, ActiveEnterTimestampMonotonic) of the member's etcd unit."""
    out = machine(name).check_output("systemctl show etcd -p MainPID -p ActiveEnterTimestampMonotonic")
    values = dict(line.split("=", 1) for line in out.splitlines())
    return int(values["MainPID"]), int(values["ActiveEnterTimestampMonotonic"])


def member_state(name):
    """What a refused run must leave alone on a member, read in one ssh command: the etcd process (MainPID and start
    time), the installed certificate generation and the config file's checksum."""
    return machine(name).check_output(
        "systemctl show etcd -p MainPID -p ActiveEnterTimestampMonotonic; readlink /etc/etcd/pki/current; md5sum /etc/etcd/etcd.conf.yml")


def pki(name):
    return EPHEMERAL / "etcd-pki" / name


class Writing:
    """The writer loop against the members ``hosts`` for the duration of a ``with`` block."""

    def __init__(self, hosts, label, figures):
        endpoints = ["https://%s:2379" % host_address(h) for h in hosts]
        check_endpoints(endpoints, lab_network())
        # 20 writes a second at most: enough to see a stall of a tenth of a second, and little controller CPU taken
        # from the playbook run it measures (benchmarks/etcd_rolling.py writes every 10 ms)
        self.writer = Writer(endpoints, str(pki("ca") / "cert.pem"), str(pki("node1-admin") / "cert.pem"),
                             str(pki("node1-admin") / "key.pem"), "/kubeforge-writer/%s" % label.replace(" ", "-"), interval=0.05)
        self.label, self.figures = label, figures
        self.thread = threading.Thread(target=self.writer.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        time.sleep(1)
        return self

    def __exit__(self, *exc):
        time.sleep(1)
        self.writer.stop_event.set()
        self.thread.join(10)
        self.result = self.writer.report()
        record(self.figures, self.label, {k: self.result[k] for k in ("writes", "acknowledged", "lost", "longest_stall_s")})
        print("\n%s: writes %d, acknowledged %d, lost %d, longest stall %s s%s" % (
            self.label, self.result["writes"], self.result["acknowledged"], self.result["lost"], self.result["longest_stall_s"],
            "; errors %s" % self.result["errors"] if self.result["errors"] else ""))


def record(figures, label, values):
    figures[label] = values
    FIGURES.write_text(json.dumps(figures, indent=2))
