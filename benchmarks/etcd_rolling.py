# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""etcd rolling benchmark: what each kind of change of the etcd stage costs the cluster's clients, on real lab machines.

A writer loop of numbered keys (tests/etcd_writer.py, lab addresses only) runs during each step and reports writes,
acknowledged, lost (must be 0) and the longest stall; each step's playbook wall time and controller CPU are measured.
The steps, on a lab of --machines trixie machines (etcd 3.5 and cfssl from the Debian archive):

    converge      first converge of 3 members                     noop     a converge that changes nothing
    san           an extra SAN for node2 (served without restart)  rolling  a config value on every member, --repeat times
    kill          the leader's process killed (SIGKILL), 3 s      scale    3 -> 5 members (one join at a time), then 5 -> 3

The molecule scenario `etcd` proves the same behaviours with short writer loops and 3 -> 4 -> 3; this script takes the
longer figures (5 members, repeated rolling changes). Not a test: it prints figures and writes them to
benchmarks/results/etcd-rolling-<date>[-<label>].json.

    python benchmarks/etcd_rolling.py                     # all steps, lab bench-etcd, taken down at the end
    python benchmarks/etcd_rolling.py --steps converge,rolling --repeat 5 --keep-lab

Needs root (the lab). See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import ipaddress
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(REPO / "tests"))

from etcd_writer import Writer, check_endpoints  # noqa: E402
from kfbench.labs import Labs  # noqa: E402

BUILD = REPO / ".build" / "bench" / "etcd"
STEPS = ("converge", "noop", "san", "rolling", "kill", "scale")
THREE = ["node1", "node2", "node3"]
RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def log(message):
    print("[etcd_rolling %s] %s" % (time.strftime("%H:%M:%S"), message), flush=True)


class Bench:
    def __init__(self, lab_inventory, lab):
        self.base = yaml.safe_load(lab_inventory.read_text())
        self.lab = lab
        self.pki = BUILD / "pki"
        self.extra_host_vars = {}
        self.extra_vars = {}
        self.results = []

    def address(self, host):
        return self.base["all"]["hosts"][host]["ansible_host"]

    def inventory(self, members):
        data = copy.deepcopy(self.base)
        children = data["all"].setdefault("children", {})
        children["etcd"] = {"hosts": {h: {} for h in members}}
        children["control_plane"] = {"hosts": {"node1": {}}}
        data["all"]["vars"].update(etcd_ca_dir=str(self.pki), etcd_backup_dir=str(BUILD / "backups"), etcd_cluster_name=self.lab)
        for host, variables in self.extra_host_vars.items():
            data["all"]["hosts"][host].update(variables)
        path = BUILD / ("inventory-%d.yml" % len(members))
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    def playbook(self, name, members, label):
        argv = ["ansible-playbook", "-i", str(self.inventory(members)), str(REPO / "playbooks" / name)]
        if self.extra_vars:
            argv += ["-e", json.dumps(self.extra_vars)]
        before, started = os.times(), time.monotonic()
        proc = subprocess.run(argv, capture_output=True, text=True, check=False, env=dict(os.environ, ANSIBLE_NOCOLOR="1"))
        seconds, after = time.monotonic() - started, os.times()
        (BUILD / ("%s.log" % label.replace(" ", "-"))).write_text(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            raise RuntimeError("%s: %s failed (rc %d):\n%s" % (label, name, proc.returncode, (proc.stdout + proc.stderr)[-3000:]))
        changed = {m.group(1): int(m.group(3)) for m in RECAP.finditer(proc.stdout) if int(m.group(3))}
        cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
        return {"wall_s": round(seconds, 1), "controller_cpu_s": round(cpu, 1), "changed": changed}

    def writer(self, members, label):
        endpoints = ["https://%s:2379" % self.address(h) for h in members]
        check_endpoints(endpoints, str(ipaddress.ip_network(self.address("node1") + "/24", strict=False)))
        admin = self.pki / "node1-admin"
        return Writer(endpoints, str(self.pki / "ca" / "cert.pem"), str(admin / "cert.pem"), str(admin / "key.pem"),
                      "/kubeforge-bench/%s/%d" % (label.replace(" ", "-"), time.time_ns()))

    def step(self, label, members, action):
        """``action()`` (a playbook run or anything else) with the writer loop running against ``members``."""
        writer = self.writer(members, label)
        thread = threading.Thread(target=writer.run, daemon=True)
        thread.start()
        time.sleep(1)
        try:
            figures = action() or {}
        finally:
            time.sleep(1)
            writer.stop_event.set()
            thread.join(10)
        report = writer.report()
        row = dict(step=label, **figures, **{k: report[k] for k in ("writes", "acknowledged", "lost", "longest_stall_s")})
        self.results.append(row)
        log("%s: %s" % (label, ", ".join("%s %s" % item for item in row.items() if item[0] != "step")))
        return row

    def ssh(self, host, command):
        base = self.base["all"]["vars"]
        argv = ["ssh", "-i", base["ansible_ssh_private_key_file"], *base["ansible_ssh_common_args"].split(),
                "root@%s" % self.address(host), command]
        return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout

    def leader(self):
        tls = "--cacert /etc/etcd/pki/current/ca.pem --cert /etc/etcd/pki/current/admin.pem --key /etc/etcd/pki/current/admin-key.pem"
        endpoints = ",".join("https://%s:2379" % self.address(h) for h in THREE)
        status = json.loads(self.ssh("node1", "ETCDCTL_API=3 etcdctl %s --endpoints=%s endpoint status -w json" % (tls, endpoints)))
        members = json.loads(self.ssh("node1", "ETCDCTL_API=3 etcdctl %s --endpoints=%s member list -w json" % (tls, endpoints)))
        leader_id = status[0]["Status"]["leader"]
        return next(m["name"] for m in members["members"] if m["ID"] == leader_id)


def run_steps(bench, steps, repeat):
    if "converge" in steps:
        row = bench.playbook("etcd.yml", THREE, "first converge")
        bench.results.append(dict(step="first converge (3 members)", **row))
        log("first converge: %s" % row)
    if "noop" in steps:
        row = bench.playbook("etcd.yml", THREE, "noop")
        bench.results.append(dict(step="no-op converge (3 members)", **row))
        log("no-op converge: %s" % row)
    if "san" in steps:
        bench.extra_host_vars["node2"] = {"etcd_extra_sans": ["node2.bench.lab.invalid"]}
        bench.step("SAN change (node2)", THREE, lambda: bench.playbook("etcd.yml", THREE, "san"))
    if "rolling" in steps:
        for number in range(repeat):
            bench.extra_vars = {"etcd_config_extra": {"snapshot-count": 20000 + number + 1}}
            bench.step("rolling config change %d" % (number + 1), THREE, lambda: bench.playbook("etcd.yml", THREE, "rolling"))
    if "kill" in steps:
        victim = bench.leader()

        def kill():
            bench.ssh(victim, "kill -9 $(systemctl show etcd -p MainPID --value)")
            time.sleep(3)
            return {"killed": victim}

        bench.step("leader killed", THREE, kill)
        bench.playbook("etcd.yml", THREE, "after kill")  # brings it back if systemd has not already
    if "scale" in steps:
        five = THREE + ["node4", "node5"]
        bench.step("scale 3 -> 5", THREE, lambda: bench.playbook("etcd_scale.yml", five, "scale up"))
        bench.step("scale 5 -> 3", THREE, lambda: bench.playbook("etcd_scale.yml", THREE, "scale down"))


def print_table(rows, load):
    columns = ("step", "wall_s", "controller_cpu_s", "writes", "acknowledged", "lost", "longest_stall_s")
    print("\n| %s |" % " | ".join(columns))
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| %s |" % " | ".join(str(row.get(c, "")) for c in columns))
    print("\nload average at the start: %s (figures taken above 2 are inflated by the others' work)" % load)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default=",".join(STEPS), help="of %s (default all; later steps need converge)" % ",".join(STEPS))
    parser.add_argument("--repeat", type=int, default=3, help="rolling config changes in a row (default 3)")
    parser.add_argument("--lab", default="bench-etcd")
    parser.add_argument("--keep-lab", action="store_true", help="leave the lab up (a later run without converge reuses it)")
    parser.add_argument("--label", default="")
    args = parser.parse_args(argv)
    steps = [s for s in args.steps.split(",") if s]
    unknown = sorted(set(steps) - set(STEPS))
    if unknown:
        parser.error("unknown steps %s (known: %s)" % (unknown, ", ".join(STEPS)))
    BUILD.mkdir(parents=True, exist_ok=True)
    load = Path("/proc/loadavg").read_text().split()[0]
    with Labs(args.keep_lab, "trixie", BUILD, log) as labs:
        inventory, seconds = labs.up(args.lab, 5, 1, fresh="converge" in steps)
        log("lab %s up in %.0f s" % (args.lab, seconds))
        bench = Bench(inventory, args.lab)
        if "converge" in steps and bench.pki.exists():
            subprocess.run(["rm", "-rf", str(bench.pki)], check=True)  # a fresh lab gets a fresh CA
        run_steps(bench, steps, args.repeat)
    print_table(bench.results, load)
    name = "etcd-rolling-%s%s.json" % (datetime.date.today().isoformat(), "-" + args.label if args.label else "")
    out = REPO / "benchmarks" / "results" / name
    out.write_text(json.dumps({"load_at_start": load, "steps": bench.results}, indent=2) + "\n")
    log("figures written to %s" % out.relative_to(REPO))
    return 1 if any(row.get("lost") for row in bench.results) else 0


if __name__ == "__main__":
    sys.exit(main())
