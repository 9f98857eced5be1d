# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""tools/kflab/ssh.py: the one ssh command line of the lab (commands, poweroff, status, summary, ssh)."""

from __future__ import annotations

from kflab import ssh


def test_ssh_argv_with_key_and_command():
    assert ssh.ssh_argv("10.150.7.11", "/srv/lab/unit/id_ed25519", ["systemctl is-system-running"]) == [
        "ssh", "-i", "/srv/lab/unit/id_ed25519",
        "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "IdentitiesOnly=yes",
        "-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
        "root@10.150.7.11", "systemctl is-system-running"]


def test_ssh_argv_interactive_shell_other_user_no_key():
    argv = ssh.ssh_argv("192.0.2.7", None, user="admin", connect_timeout=3, tty=True)
    assert argv[:2] == ["ssh", "-t"]
    assert "-i" not in argv
    assert argv[-2:] == ["ConnectTimeout=3", "admin@192.0.2.7"]


def test_inventory_ssh_args_are_the_host_key_options():
    # Ansible gets the same host-key handling as the lab's own ssh calls
    assert ssh.INVENTORY_SSH_ARGS == "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes"
    assert ssh.INVENTORY_SSH_ARGS.split() == ssh.SSH_OPTIONS[:6]


def test_ssh_run_passes_the_script_on_stdin(monkeypatch):
    calls = []
    monkeypatch.setattr(ssh, "run", lambda argv, **kwargs: calls.append((argv, kwargs)))
    ssh.ssh_run("10.0.0.1", "/k", "sh -s", timeout=60, input_text="echo hi\n")
    argv, kwargs = calls[0]
    assert argv[-2:] == ["root@10.0.0.1", "sh -s"]
    assert kwargs == {"check": False, "timeout": 60, "input_text": "echo hi\n"}
