# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""containerd_config through real ansible-playbook processes against localhost (local connection).

Shared by the integration tests and benchmarks/containerd_config_concurrency.py: ``Play`` runs a playbook with
the collection from this checkout and a private remote tmp; ``writers_round`` starts two playbooks at the same
moment that each add their own runtimes to one config.toml, and reports what each run said and what the file
holds afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parents[1]

WRITER = """\
- name: Writer {writer}
  hosts: all
  gather_facts: false
  tasks:
    - name: Add one runtime per task
      kubeforge.cluster.containerd_config:
        path: "{{{{ conf_path }}}}"
        containerd_path: "{{{{ containerd_bin }}}}"
        runtimes: "{{{{ {{item: {{'runtime_type': 'io.containerd.runc.v2'}}}} }}}}"
      loop: "{{{{ names }}}}"
      register: added
      ignore_errors: true

    - name: Save the results for the test
      ansible.builtin.copy:
        content: "{{{{ added.results | to_nice_json }}}}"
        dest: "{{{{ result_file }}}}"
        mode: "0600"
      check_mode: false
      changed_when: false
"""


class Play:
    """ansible-playbook against localhost with this checkout's collection; ``start`` returns the process."""

    def __init__(self, workdir, playbook_text, name="site"):
        self.workdir = Path(workdir)
        self.playbook = self.workdir / ("%s.yml" % name)
        self.playbook.write_text(playbook_text)
        self.remote_tmp = self.workdir / ("remote-tmp-%s" % name)
        self.remote_tmp.mkdir(exist_ok=True)
        self.env = dict(
            os.environ,
            ANSIBLE_CONFIG=str(self.workdir / "none.cfg"),
            ANSIBLE_COLLECTIONS_PATH=str(REPO / ".build" / "collections"),
            ANSIBLE_REMOTE_TMP=str(self.remote_tmp),
            ANSIBLE_LOCAL_TEMP=str(self.workdir / ("local-tmp-%s" % name)),
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_PYTHON_INTERPRETER=sys.executable,
            ANSIBLE_HOST_KEY_CHECKING="False",
            ANSIBLE_FORCE_COLOR="0",
            LC_ALL="C.UTF-8",
        )

    def argv(self, extra_vars, *extra):
        ansible_playbook = str(Path(sys.executable).parent / "ansible-playbook")
        return [ansible_playbook, "-i", "localhost,", "-c", "local", str(self.playbook), "-e", json.dumps(extra_vars), *extra]

    def start(self, extra_vars, *extra):
        return subprocess.Popen(self.argv(extra_vars, *extra), env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def run(self, extra_vars, *extra):
        proc = subprocess.run(self.argv(extra_vars, *extra), env=self.env, capture_output=True, text=True, timeout=600, check=False)
        return proc.returncode, proc.stdout + proc.stderr


def writers_round(workdir, binary, conf, base_text, round_no, tasks=3):
    """Two playbooks at once, each adding ``tasks`` runtimes of its own to ``conf``; returns a summary dict."""
    conf.write_text(base_text)
    plays, procs, names = {}, {}, {}
    started = time.monotonic()
    for writer in ("a", "b"):
        plays[writer] = Play(workdir, WRITER.format(writer=writer), name="writer-%s" % writer)
        names[writer] = ["%s-%d-%d" % (writer, round_no, index) for index in range(tasks)]
    for writer, play in plays.items():
        procs[writer] = play.start({"conf_path": str(conf), "containerd_bin": binary, "names": names[writer],
                                    "result_file": str(Path(workdir) / ("result-%s.json" % writer))})
    outputs = {writer: proc.communicate(timeout=600)[0] for writer, proc in procs.items()}
    seconds = time.monotonic() - started
    runtimes = _runtimes(tomllib.loads(conf.read_text()))
    summary = {"seconds": seconds, "lost": [], "failed": [], "retried": 0, "changed": 0}
    for writer in ("a", "b"):
        if procs[writer].returncode != 0:
            raise AssertionError("writer %s: ansible-playbook failed:\n%s" % (writer, outputs[writer][-3000:]))
        results = json.loads((Path(workdir) / ("result-%s.json" % writer)).read_text())
        for name, result in zip(names[writer], results):
            if result.get("failed"):
                summary["failed"].append("%s: %s" % (name, result.get("msg")))
            elif name not in runtimes:
                summary["lost"].append(name)
            summary["changed"] += bool(result.get("changed"))
        summary["retried"] += " ".join(outputs[writer].split()).count("changed while this task worked on it")  # warnings, unwrapped
    return summary


def _runtimes(data):
    for plugin in ("io.containerd.grpc.v1.cri", "io.containerd.cri.v1.runtime"):
        runtimes = data.get("plugins", {}).get(plugin, {}).get("containerd", {}).get("runtimes")
        if runtimes is not None:
            return runtimes
    return {}
