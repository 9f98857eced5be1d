# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""molecule/default/callback_plugins/check_unchanged.py: the molecule ``check`` step fails when --check predicts a change."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
PLUGINS = REPO / "molecule" / "default" / "callback_plugins"

PLAYBOOK = """
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: A task that changes something
      ansible.builtin.copy:
        content: "new\\n"
        dest: "{{ target }}"
        mode: "0644"
    - name: A loop with one changing item
      ansible.builtin.copy:
        content: "{{ item }}\\n"
        dest: "{{ target }}.{{ item }}"
        mode: "0644"
      loop: [a, b]
"""


def run_playbook(tmp_path, *args):
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK)
    (tmp_path / "ansible.cfg").write_text("[defaults]\nretry_files_enabled = False\n")
    env = dict(os.environ, ANSIBLE_CALLBACK_PLUGINS=str(PLUGINS), ANSIBLE_CALLBACKS_ENABLED="check_unchanged",
               ANSIBLE_NOCOLOR="1", ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_CONFIG=str(tmp_path / "ansible.cfg"))
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", str(playbook),
            "-e", "target=%s" % (tmp_path / "file"), *args]
    return subprocess.run(argv, capture_output=True, text=True, env=env, check=False, timeout=120)


@pytest.fixture
def converged(tmp_path):
    assert run_playbook(tmp_path).returncode == 0
    return tmp_path


def test_check_without_changes_passes(converged):
    proc = run_playbook(converged, "--check", "--diff")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "check_unchanged: --check predicted no change" in proc.stdout


def test_check_with_a_change_fails_and_names_the_tasks(converged):
    (converged / "file").write_text("edited by hand\n")
    (converged / "file.b").unlink()
    proc = run_playbook(converged, "--check")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    output = proc.stdout + proc.stderr
    assert "check mode predicted 2 change(s)" in output
    assert "localhost: A task that changes something" in output
    assert "localhost: A loop with one changing item (item b)" in output
    assert (converged / "file").read_text() == "edited by hand\n"  # check mode itself changed nothing


def test_real_runs_are_not_judged(converged):
    (converged / "file").write_text("edited by hand\n")
    proc = run_playbook(converged)
    assert proc.returncode == 0, proc.stdout + proc.stderr
