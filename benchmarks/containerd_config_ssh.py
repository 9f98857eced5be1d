# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The kubeforge.cluster.containerd_config task over ssh on a lab node: remote calls and wall time per task.

Needs a lab machine with containerd installed, for example::

    python tools/lab.py up --lab cfg-bench --machines 1 --inventory /tmp/cfg-bench.yml
    python tools/lab.py ssh --lab cfg-bench node1 -- apt-get install -y containerd
    python benchmarks/containerd_config_ssh.py --inventory /tmp/cfg-bench.yml [--runs 10]

Three kinds of task, ``--runs`` of each, on a ~300-line version 2 file (containerd 1.7's default plus an
nvidia runtime) at a scratch path on the node (the node's own config.toml is not touched):
``changed`` (the sandbox image alternates), ``unchanged`` (a converged file) and ``check`` (check mode,
a change predicted). Wall time per task comes from a small callback (task start to result, so
ansible-playbook's own start-up is not included). Remote calls are counted in a second, ``-vvv`` run:
every ``SSH: EXEC`` is one round trip over the connection (a module run, a mkdir/chmod/rm of a temp dir, or
the sftp of a ``PUT`` file transfer, which is also counted on its own), plus the modules executed by name. Prints a table; ``--json`` also
writes the figures. Without a usable inventory it says so and exits 0 (``make benchmarks`` runs it).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "tests" / "integration" / "fixtures" / "containerd" / "v2-default-1.7.toml"
SCRATCH = "/root/kubeforge-bench/config.toml"
NVIDIA = '''
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]
        privileged_without_host_devices = false
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia.options]
          BinaryName = "/usr/bin/nvidia-container-runtime"
          SystemdCgroup = false
'''
IMAGES = ("registry.example.internal:5000/pause:3.10", "registry.example.internal:5000/pause:3.9")

TIMER = '''
from __future__ import annotations
import json, os, time
from ansible.plugins.callback import CallbackBase

class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "kf_task_timer"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.start = {}
        self.rows = []

    def v2_playbook_on_task_start(self, task, is_conditional):
        self.start[task._uuid] = time.monotonic()

    def _done(self, result, status):
        task = result._task
        self.rows.append({"task": task.get_name(), "status": status, "changed": bool(result._result.get("changed")),
                          "seconds": time.monotonic() - self.start[task._uuid]})

    def v2_runner_on_ok(self, result):
        self._done(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._done(result, "failed")

    def v2_playbook_on_stats(self, stats):
        with open(os.environ["KF_TIMER_OUT"], "w") as handle:
            json.dump(self.rows, handle)
'''


def playbook(runs, host):
    tasks = [
        {"name": "prepare: scratch directory", "ansible.builtin.file": {"path": os.path.dirname(SCRATCH), "state": "directory", "mode": "0755"}},
        {"name": "prepare: seed the file", "ansible.builtin.copy": {"src": "{{ seed }}", "dest": SCRATCH, "mode": "0644"}},
    ]

    def task(kind, index, image, check=False):
        entry = {
            "name": "%s %d" % (kind, index),
            "kubeforge.cluster.containerd_config": {
                "path": SCRATCH, "sandbox_image": image, "systemd_cgroup": True,
                "registry_config_path": "/etc/containerd/certs.d", "backup": False},
        }
        if check:
            entry["check_mode"] = True
        return entry

    for index in range(runs):
        tasks.append(task("changed", index, IMAGES[index % 2]))
    for index in range(runs):
        tasks.append(task("unchanged", index, IMAGES[(runs - 1) % 2]))
    for index in range(runs):
        tasks.append(task("check", index, IMAGES[runs % 2], check=True))
    tasks.append({"name": "cleanup: scratch directory", "ansible.builtin.file": {"path": os.path.dirname(SCRATCH), "state": "absent"}})
    return [{"name": "containerd_config over ssh", "hosts": host, "gather_facts": False, "tasks": tasks}]


def run_playbook(workdir, inventory, extra_env, verbose, collections=None):
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
               ANSIBLE_COLLECTIONS_PATH=collections or str(REPO / ".build" / "collections"), ANSIBLE_NOCOLOR="1", **extra_env)
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", inventory, str(workdir / "bench.yml"),
            "-e", "seed=%s" % (workdir / "seed.toml")]
    if verbose:
        argv.append("-vvv")
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False, timeout=1800)
    if proc.returncode != 0:
        sys.exit("ansible-playbook failed (rc=%d):\n%s\n%s" % (proc.returncode, proc.stdout[-4000:], proc.stderr[-2000:]))
    return proc.stdout


_TASK_RE = re.compile(r"^TASK \[(.*?)\] \*+", re.MULTILINE)
_MODULE_RE = re.compile(r"Using module file .*/([A-Za-z0-9_]+)\.py")


def count_calls(verbose_output):
    """{task name: {"exec": n, "put": n, "modules": [...]}} from a -vvv run."""
    counts = {}
    marks = list(_TASK_RE.finditer(verbose_output))
    for mark, following in zip(marks, marks[1:] + [None]):
        chunk = verbose_output[mark.end():following.start() if following else len(verbose_output)]
        counts[mark.group(1)] = {
            "exec": len(re.findall(r"SSH: EXEC ", chunk)),
            "put": len(re.findall(r"\) PUT |> PUT ", chunk)),
            "modules": _MODULE_RE.findall(chunk),
        }
    return counts


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", default=os.environ.get("KF_BENCH_INVENTORY"), help="a lab inventory (or $KF_BENCH_INVENTORY)")
    parser.add_argument("--host", default="node1")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--collections", help="ANSIBLE_COLLECTIONS_PATH holding another kubeforge.cluster to measure (e.g. an older commit)")
    args = parser.parse_args()
    if not args.inventory or not Path(args.inventory).exists():
        print("no lab inventory at %s: bring a lab node up first (see the docstring); nothing measured" % args.inventory)
        return
    import yaml

    with tempfile.TemporaryDirectory(prefix="kf-bench-") as tmp:
        workdir = Path(tmp)
        (workdir / "seed.toml").write_text(FIXTURE.read_text() + NVIDIA)
        (workdir / "bench.yml").write_text(yaml.safe_dump(playbook(args.runs, args.host), sort_keys=False))
        callbacks = workdir / "callbacks"
        callbacks.mkdir()
        (callbacks / "kf_task_timer.py").write_text(TIMER)
        timer_out = workdir / "timer.json"
        timer_env = {"ANSIBLE_CALLBACK_PLUGINS": str(callbacks), "ANSIBLE_CALLBACKS_ENABLED": "kf_task_timer",
                     "KF_TIMER_OUT": str(timer_out)}
        run_playbook(workdir, args.inventory, timer_env, verbose=False, collections=args.collections)
        rows = json.loads(timer_out.read_text())
        calls = count_calls(run_playbook(workdir, args.inventory, {}, verbose=True, collections=args.collections))

    lines = (FIXTURE.read_text() + NVIDIA).count("\n")
    figures = {"runs": args.runs, "file_lines": lines, "kinds": {}}
    print("containerd_config over ssh, %d tasks of each kind, %d-line file, host %s" % (args.runs, lines, args.host))
    print("%-10s %8s %8s %8s %12s %9s  %s" % ("kind", "median", "mean", "p90", "remote calls", "of them put", "modules per task"))
    for kind in ("changed", "unchanged", "check"):
        mine = [r for r in rows if r["task"].startswith(kind + " ")]
        if kind != "changed":
            assert not any(r["changed"] for r in mine) if kind == "unchanged" else all(r["changed"] for r in mine), mine
        else:
            assert all(r["changed"] for r in mine), mine
        seconds = sorted(r["seconds"] * 1000 for r in mine)
        counted = [calls[name] for name in calls if name.startswith(kind + " ")]
        execs = statistics.median(c["exec"] for c in counted)
        puts = statistics.median(c["put"] for c in counted)
        modules = counted[len(counted) // 2]["modules"]
        figures["kinds"][kind] = {"median_ms": statistics.median(seconds), "mean_ms": statistics.mean(seconds),
                                  "p90_ms": seconds[int(len(seconds) * 0.9) - 1] if len(seconds) > 1 else seconds[0],
                                  "remote_calls": execs, "transfers": puts, "modules": modules}
        f = figures["kinds"][kind]
        row = (kind, f["median_ms"], f["mean_ms"], f["p90_ms"], execs, puts, ",".join(modules))
        print("%-10s %6.0fms %6.0fms %6.0fms %12g %11g  %s" % row)
    print("(remote calls = ssh/sftp round trips of the task; timings include the host's other load)")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
