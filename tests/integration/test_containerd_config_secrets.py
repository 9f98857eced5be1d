# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Registry credentials through ansible-playbook and containerd 2.1: what a user sees on the terminal.

A config.toml that already holds a registry login (context) gets a second one merged in. With ``--diff`` at
default verbosity, ``-v``, ``-vv`` and ``-vvv`` neither password (nor the token) is printed, while the diff
still shows the change, masked on both sides; a run that containerd rejects prints neither the file nor a
credential. The file itself holds the real values.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import debfetch
import pytest
import tomllib
from containerd_config_play import Play

pytestmark = pytest.mark.real_binary

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "containerd"
FILE_PASSWORD = "ctx-Pa55word-in-file"
NEW_PASSWORD = "new-Pa55word-added"
NEW_TOKEN = "new-identity-t0ken"
SECRETS = (FILE_PASSWORD, NEW_PASSWORD, NEW_TOKEN)
PLAYBOOK = """\
- name: Registry login for containerd
  hosts: all
  gather_facts: false
  tasks:
    - name: Merge a registry login into config.toml
      kubeforge.cluster.containerd_config:
        path: "{{ conf_path }}"
        containerd_path: "{{ containerd_bin }}"
        sandbox_image: "{{ image }}"
        enable_cri: "{{ not (break_it | default(false)) }}"
        merge:
          disabled_plugins: "{{ ['cri'] if break_it | default(false) else [] }}"
          plugins:
            io.containerd.cri.v1.images:
              registry:
                configs:
                  new.example:
                    auth:
                      username: robot
                      password: "{{ new_password }}"
                      identitytoken: "{{ new_token }}"
      register: merged
      ignore_errors: "{{ break_it | default(false) }}"

    - name: Save the result for the test
      ansible.builtin.copy:
        content: "{{ merged | to_nice_json }}"
        dest: "{{ result_file }}"
        mode: "0600"
      check_mode: false
      changed_when: false
      no_log: true
"""


@pytest.fixture(scope="module")
def containerd_bin():
    try:
        root = debfetch.fetch("containerd", "sid")
    except debfetch.DebFetchError as exc:
        pytest.skip("containerd 2.1 (Debian sid) cannot be fetched here: %s" % exc)
    return str(Path(root) / "usr" / "bin" / "containerd")


def test_credentials_are_never_printed(tmp_path, containerd_bin):
    conf = tmp_path / "etc" / "containerd" / "config.toml"
    conf.parent.mkdir(parents=True)
    conf.write_text((FIXTURES / "v3-default-2.1.toml").read_text()
                    + "\n[plugins.'io.containerd.cri.v1.images'.registry.configs.'old.example'.auth]\n"
                      "  username = 'robot'\n  password = '%s'\n" % FILE_PASSWORD)
    play = Play(tmp_path, PLAYBOOK)
    result_file = tmp_path / "result.json"

    def run(image, *flags, break_it=False):
        rc, out = play.run({"conf_path": str(conf), "containerd_bin": containerd_bin, "image": image, "new_password": NEW_PASSWORD,
                            "new_token": NEW_TOKEN, "result_file": str(result_file), "break_it": break_it}, *flags)
        assert rc == 0, out
        for secret in SECRETS:
            assert secret not in out, "%s printed with %s" % (secret, flags)
        return json.loads(result_file.read_text()), out

    result, out = run("registry.example.internal/pause:1", "--diff", "-vv")
    assert result["changed"] and result["validated"]
    assert re.search(r"^\+\s*password = [\"']\*{8}[\"']$", out, re.M), out  # the added login, masked
    assert re.search(r"^\+\s*sandbox = [\"']registry\.example\.internal/pause:1[\"']$", out, re.M), out
    stored = tomllib.loads(conf.read_text())["plugins"]["io.containerd.cri.v1.images"]["registry"]["configs"]
    assert stored["new.example"]["auth"]["password"] == NEW_PASSWORD and stored["old.example"]["auth"]["password"] == FILE_PASSWORD

    for flags in (("--check", "--diff"), ("--check", "--diff", "-v"), ("--check", "--diff", "-vvv")):
        checked, out = run("registry.example.internal/pause:2", *flags)
        assert checked["changed"] and "pause:2" in out and "********" in out

    before = conf.read_bytes()
    failed, out = run("registry.example.internal/pause:3", "--diff", break_it=True)
    assert failed["failed"] and "invalid disabled plugin URI" in failed["msg"]
    assert "[plugins." not in failed["msg"] and "candidate" not in failed
    assert conf.read_bytes() == before
