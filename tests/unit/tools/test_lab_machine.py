# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""tools/kflab/machine.py: the nspawn command line and stopping a machine that will not stop."""

from __future__ import annotations

import subprocess

from kflab import machine
from kflab.cleanup import StopMachine
from kflab.process import pid_start_time
from lab_fixtures import make_state


def test_nspawn_argv_boots_the_overlay_in_the_machines_namespace():
    argv = machine.nspawn_argv(make_state().machines["node2"])
    assert argv[:4] == ["systemd-nspawn", "--keep-unit", "--register=no", "--capability=all"]
    assert "--system-call-filter=add_key keyctl request_key" in argv
    assert argv[argv.index("-D") + 1] == "/srv/lab/unit/machines/node2/root"
    assert "--network-namespace-path=/run/netns/%s" % make_state().machines["node2"].netns in argv
    assert argv[-2:] == ["-M", "node2"]


def test_stop_escalates_to_sigkill_for_a_process_ignoring_sigterm(monkeypatch, capsys):
    monkeypatch.setattr(machine, "POWEROFF_GRACE", 0.5)
    monkeypatch.setattr(machine, "TERM_GRACE", 0.5)
    proc = subprocess.Popen([
        "python3", "-c",
        "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        errors = machine.stop_machines("unit", [StopMachine("pid %d" % proc.pid, None, proc.pid, pid_start_time(proc.pid))], None)
        assert errors == []
        assert proc.wait(timeout=5) == -9
        out = capsys.readouterr().out
        assert "sending SIGTERM" in out and "sending SIGKILL" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
