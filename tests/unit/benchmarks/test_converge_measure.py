# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""benchmarks/converge.py's measuring parts, on localhost (no lab): the launcher, the callback plugin,
the ssh counting wrapper, the /proc readings and the report."""

from __future__ import annotations

import configparser
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "benchmarks"))

import converge  # noqa: E402
from kfbench import measure, procfs, report  # noqa: E402

PLAYBOOK = """
- hosts: node1
  connection: local
  gather_facts: false
  tasks:
    - name: An ok task
      ansible.builtin.command: "true"
      changed_when: false
    - name: A changed task
      ansible.builtin.copy:
        content: "x\\n"
        dest: "{{ target }}"
        mode: "0644"
    - name: A skipped task
      ansible.builtin.command: "false"
      when: false
    - name: A process left running in the background (an orphan, like an ssh ControlMaster)
      ansible.builtin.shell: "(sleep 300 </dev/null >/dev/null 2>&1 & echo $! > {{ target }}.pid)"
      changed_when: false

- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: A task on the controller itself (as the etcd PKI play), not a node
      ansible.builtin.command: "true"
      changed_when: false
"""


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("measure")
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK.replace("{{ target }}", str(tmp_path / "file")))
    run = measure.Run("noop", playbook, Path("node1,"), tmp_path / "logs" / "run.log",
                      env={"ANSIBLE_PYTHON_INTERPRETER": sys.executable,
                           "ANSIBLE_CONFIG": str(measure.ansible_cfg({}, tmp_path / "cfg"))})
    return measure.measure(run), tmp_path


def test_one_run_counts_outcomes_per_host(measured):
    figures, _tmp = measured
    assert figures["rc"] == 0, Path(figures["log"]).read_text()
    assert figures["hosts"] == {"node1": {"executed": 3, "ok": 2, "changed": 1, "skipped": 1, "failed": 0, "unreachable": 0}}
    assert figures["tasks_per_node"]["executed"] == {"mean": 3, "max": 3}
    # the controller's own play is kept apart: it is not a node and does not dilute the per-node figures
    assert figures["controller_tasks"] == {"localhost": {"executed": 1, "ok": 1, "changed": 0, "skipped": 0, "failed": 0,
                                                         "unreachable": 0}}
    assert figures["controller_cpu_per_node"] == pytest.approx(figures["controller_cpu"], abs=0.01)
    names = {task["name"]: task for task in figures["tasks"]}
    assert names["A changed task"]["changed"] == 1 and names["A skipped task"]["skipped"] == 1
    assert all(task["hosts"] == 1 and task["host_seconds"] > 0 for task in figures["tasks"])


def test_controller_cpu_and_memory_are_those_of_ansible(measured):
    figures, _tmp = measured
    # ansible-playbook's start alone costs well over 0.2 s of CPU; the launcher's own share is subtracted
    assert 0.2 < figures["controller_cpu"] < 120
    assert 0 < figures["controller_main_cpu"] <= figures["controller_cpu"]  # the main process alone, workers excluded
    assert figures["peak_pss_mb"] > 20 and figures["max_rss_mb"] > 20
    assert figures["ssh_invocations"] == 0  # a local connection opens none


def test_the_launcher_reaps_orphans_of_the_run(measured):
    figures, tmp = measured
    orphan = int((tmp / "file.pid").read_text())
    assert figures["leftover_processes"] >= 1  # the sleep was re-parented to the launcher, stopped and reaped
    assert not Path("/proc/%d" % orphan).exists() or not Path("/proc/%d/cmdline" % orphan).read_bytes().startswith(b"sleep")


def _wrapper(tmp_path, *args):
    log = tmp_path / "ssh.log"
    env = dict(os.environ, KUBEFORGE_BENCH_SSH_LOG=str(log), KUBEFORGE_BENCH_SSH="true")
    subprocess.run([str(measure.SSH_WRAPPER), *args], env=env, check=True)
    return log.read_text().split()


def test_ssh_wrapper_tells_new_connections_from_multiplexed_ones(tmp_path):
    master = tmp_path / "cp"
    assert _wrapper(tmp_path, "-o", 'ControlPath="%s"' % master, "node1", "true") == ["new"]
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(master))
        assert _wrapper(tmp_path, "-o", 'ControlPath="%s"' % master, "node1", "true") == ["new", "mux"]
    assert _wrapper(tmp_path, "node1", "true") == ["new", "mux", "new"]  # no ControlPath: a connection of its own


def test_generated_ansible_cfg_keeps_the_repository_settings(tmp_path):
    path = measure.ansible_cfg({"defaults.internal_poll_interval": "0.05", "ssh_connection.pipelining": "False"}, tmp_path)
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(path)
    assert parser.get("defaults", "internal_poll_interval") == "0.05"
    assert parser.get("ssh_connection", "pipelining") == "False"
    assert parser.get("defaults", "collections_path") == str(REPO / ".build" / "collections")
    assert "ControlPersist" in parser.get("ssh_connection", "ssh_args")


def test_host_and_process_cpu_readings_grow():
    host = procfs.host_cpu_seconds()
    own = {procfs.netns_inode("self")}
    before = procfs.netns_cpu_seconds(own)
    sum(i * i for i in range(2_000_000))
    assert procfs.netns_cpu_seconds(own) > before
    assert procfs.host_cpu_seconds() > host


def _run(kind, wall, cpu, changed=0, executed=40):
    return {"kind": kind, "rc": 0, "wall": wall, "controller_cpu": cpu, "controller_cpu_per_node": cpu / 3, "lab_cpu": 1.0,
            "host_cpu": 2.0, "host_cpu_per_node": 0.7, "load_before": [1.0, 1.0, 1.0], "ssh_connections": 3, "ssh_invocations": 90,
            "peak_pss_mb": 100, "tasks_per_node": {"executed": {"mean": executed, "max": executed}, "ok": {"mean": executed, "max": executed},
                                                   "changed": {"mean": changed, "max": changed}, "skipped": {"mean": 5, "max": 5}},
            "tasks": []}


def test_repeated_runs_report_the_median_and_keep_every_figure():
    entry = converge.median_runs({"nodes": 3, "runs": [_run("first", 30, 9, changed=8), _run("noop", 14, 5), _run("noop", 19, 6),
                                                       _run("noop", 12, 4), _run("check", 13, 5)]})
    noop = [run for run in entry["runs"] if run["kind"] == "noop"]
    assert len(noop) == 1 and noop[0]["wall"] == 14 and noop[0]["wall_spread"] == [12, 19, 14]
    assert [r["wall"] for r in noop[0]["repeats"]] == [14, 19, 12]


def test_targets_judge_the_issue_figures():
    results = {"labs": [{"nodes": 3, "runs": [_run("noop", 14, 3), _run("check", 15, 3, changed=1)]},
                        {"nodes": 12, "runs": [_run("noop", 42, 12)]}]}
    lines = report.targets(results)
    assert lines[0].startswith("no-op on 3 nodes: 14.0 s (target <= 20 s), 40 executed tasks")
    assert "3.00 x the 3-node time" in lines[1]
    assert "--check on the converged 3-node lab: changed=1 (target 0), 15.0 s vs no-op 14.0 s" in lines[2]


def test_costliest_merges_a_task_over_runs_and_ranks_by_host_time():
    task = {"name": "t", "role": "r", "path": "roles/r/tasks/main.yml:1", "action": "x", "wall": 1.0, "host_seconds": 2.0, "hosts": 3}
    other = dict(task, name="u", host_seconds=3.0)
    ranked = report.costliest([{"tasks": [task, other]}, {"tasks": [dict(task)]}], top=2)
    assert [(t["name"], t["host_seconds"], t["hosts"]) for t in ranked] == [("t", 4.0, 6), ("u", 3.0, 3)]


def test_lever_variants_split_environment_from_ansible_cfg_settings():
    import levers

    name, env = levers.parse_variant("mixed:ANSIBLE_FORKS={nodes},cfg:defaults.internal_poll_interval=0.02", nodes=6)
    assert name == "mixed" and env["ANSIBLE_FORKS"] == "6"
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(env["ANSIBLE_CONFIG"])
    assert parser.get("defaults", "internal_poll_interval") == "0.02"
    assert levers.parse_variant("baseline:", nodes=3) == ("baseline", {})
    with pytest.raises(SystemExit, match="not NAME=VALUE"):
        levers.parse_variant("bad:ANSIBLE_FORKS", nodes=3)
