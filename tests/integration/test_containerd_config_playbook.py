# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""End to end: ansible-playbook runs kubeforge.cluster.containerd_config (action plugin + builtin
modules over a local connection) against containerd 2.1 from Debian sid.

Order as in the integration targets of the model collections: check mode -> apply -> re-apply
(unchanged) -> diff -> an error case with its exact message.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import debfetch
import pytest
import tomllib

pytestmark = pytest.mark.real_binary

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "containerd"
PLAYBOOK = """\
- name: Configure containerd
  hosts: all
  gather_facts: false
  tasks:
    - name: Merge the containerd configuration
      kubeforge.cluster.containerd_config:
        path: "{{ conf_path }}"
        containerd_path: "{{ containerd_bin }}"
        sandbox_image: registry.example.internal:5000/pause:3.10-kf
        systemd_cgroup: true
        registry_config_path: /etc/containerd/certs.d
        runtimes:
          kata:
            runtime_type: io.containerd.kata.v2
            pod_annotations: ["io.katacontainers.*"]
        backup: true
      register: merged
      ignore_errors: "{{ expect_failure | default(false) }}"

    - name: Save the result for the test
      ansible.builtin.copy:
        content: "{{ merged | to_nice_json }}"
        dest: "{{ result_file }}"
        mode: "0600"
      check_mode: false
      changed_when: false
"""


@pytest.fixture(scope="module")
def containerd_bin():
    try:
        root = debfetch.fetch("containerd", "sid")
    except debfetch.DebFetchError as exc:
        pytest.skip("containerd 2.1 (Debian sid) cannot be fetched here: %s" % exc)
    return str(Path(root) / "usr" / "bin" / "containerd")


@pytest.fixture
def play(tmp_path, containerd_bin):
    playbook = tmp_path / "site.yml"
    playbook.write_text(PLAYBOOK)
    remote_tmp = tmp_path / "remote-tmp"
    remote_tmp.mkdir()
    conf = tmp_path / "etc" / "config.toml"
    conf.parent.mkdir()
    result_file = tmp_path / "result.json"
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(tmp_path / "none.cfg"),
        ANSIBLE_COLLECTIONS_PATH=str(REPO / ".build" / "collections"),
        ANSIBLE_REMOTE_TMP=str(remote_tmp),
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "local-tmp"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
        ANSIBLE_HOST_KEY_CHECKING="False",
        LC_ALL="C.UTF-8",
    )
    ansible_playbook = str(Path(sys.executable).parent / "ansible-playbook")

    def run(*extra, expect_failure=False):
        if result_file.exists():
            result_file.unlink()
        argv = [ansible_playbook, "-i", "localhost,", "-c", "local", str(playbook),
                "-e", json.dumps({"conf_path": str(conf), "containerd_bin": containerd_bin,
                                  "result_file": str(result_file), "expect_failure": expect_failure}), *extra]
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert list(remote_tmp.iterdir()) == [], "remote temporary files left behind"
        return json.loads(result_file.read_text()), proc.stdout

    return run, conf, containerd_bin


def effective(binary, path):
    proc = subprocess.run([binary, "--config", str(path), "config", "dump"], capture_output=True, text=True, check=True)
    return tomllib.loads(proc.stdout)


def test_check_apply_reapply_diff(play):
    run, conf, binary = play
    docker_default = (FIXTURES / "docker-default.toml").read_text()
    conf.write_text(docker_default)

    checked, out = run("--check", "--diff")
    assert checked["changed"] is True and checked["validated"] is True
    assert conf.read_text() == docker_default  # check mode wrote nothing
    assert '-disabled_plugins = ["cri"]' in out
    assert "+sandbox = \"registry.example.internal:5000/pause:3.10-kf\"" in out

    applied, _out = run()
    assert applied["changed"] is True and applied["restart_required"] is True
    assert applied["values"]["sandbox_image"] == "registry.example.internal:5000/pause:3.10-kf"
    assert applied["values"]["runtimes"] == {"runc": "io.containerd.runc.v2", "kata": "io.containerd.kata.v2"}
    assert Path(applied["backup_file"]).read_text() == docker_default
    dump = effective(binary, conf)
    assert "io.containerd.grpc.v1.cri" not in dump["disabled_plugins"]
    assert dump["plugins"]["io.containerd.cri.v1.images"]["pinned_images"]["sandbox"] == "registry.example.internal:5000/pause:3.10-kf"
    assert dump["plugins"]["io.containerd.cri.v1.images"]["registry"]["config_path"] == "/etc/containerd/certs.d"
    runtimes = dump["plugins"]["io.containerd.cri.v1.runtime"]["containerd"]["runtimes"]
    assert runtimes["runc"]["options"]["SystemdCgroup"] is True
    assert runtimes["kata"]["runtime_type"] == "io.containerd.kata.v2"
    assert conf.read_text().startswith("#   Copyright 2018-2022 Docker Inc.")  # the user's comments stay

    mtime = os.stat(conf).st_mtime_ns
    again, out = run("--diff")
    assert again["changed"] is False and again["restart_required"] is False
    assert os.stat(conf).st_mtime_ns == mtime
    assert "changed=0" in out


def test_v1_file_on_containerd_2_fails_and_is_untouched(play):
    run, conf, _binary = play
    text = (FIXTURES / "v1-seed003.toml").read_text()
    text = text[:text.index("    [plugins.cri.registry]")] + text[text.index("  [plugins.diff-service]"):]  # no mirrors
    conf.write_text(text)
    failed, _out = run(expect_failure=True)
    assert failed["failed"] is True
    assert "set migrate: true" in failed["msg"]
    assert "key=sandbox_image" in failed["msg"]
    assert conf.read_text() == text
