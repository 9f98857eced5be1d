# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""tools/lab.py and tools/kflab/cli.py: the command line stays what the Makefile, molecule and
docs/lab.md call; errors are reported with how to clean up, never raised."""

from __future__ import annotations

import subprocess
import sys

import lab
import pytest
from kflab import cli, hostcmd, paths

LAB_PY = str(paths.LAB_PY)


def test_lab_py_is_the_entry_point_of_the_package():
    assert lab.main is cli.main
    proc = subprocess.run([sys.executable, LAB_PY, "--help"], capture_output=True, text=True, check=True)
    assert "{up,down,status,ssh,instances,summary}" in proc.stdout


def test_up_argument_errors_are_reported_not_raised(capsys, monkeypatch):
    monkeypatch.setattr(hostcmd.os, "geteuid", lambda: 0)
    assert cli.main(["up", "--machines", "0"]) == 1
    err = capsys.readouterr().err
    assert "--machines must be between 1 and 200" in err
    assert "down --lab" not in err  # nothing was created, nothing to clean up
    assert cli.main(["up", "--lab", "bad name"]) == 1
    assert "invalid lab name 'bad name'" in capsys.readouterr().err


def test_up_requires_root(capsys, monkeypatch):
    monkeypatch.setattr(hostcmd.os, "geteuid", lambda: 1000)
    assert cli.main(["up"]) == 1
    assert "needs root" in capsys.readouterr().err


def test_unknown_distro_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["up", "--distro", "buster"])
    assert exc.value.code == 2
    assert "invalid choice: 'buster'" in capsys.readouterr().err


def test_status_of_a_lab_that_is_not_up(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(paths, "CACHE_ROOT", tmp_path)
    assert cli.main(["status", "--lab", "nothere"]) == 1
    assert "lab nothere is not up" in capsys.readouterr().err


def test_ssh_parses_lab_before_the_machine_and_the_remote_command():
    args = cli.build_parser().parse_args(["ssh", "--lab", "x", "node2", "--", "systemctl", "is-active", "ssh"])
    assert (args.action, args.lab, args.name) == ("ssh", "x", "node2")
    assert [arg for arg in args.command if arg != "--"] == ["systemctl", "is-active", "ssh"]


def test_summary_of_missing_inventory(capsys, tmp_path):
    assert cli.main(["summary", "--inventory", str(tmp_path / "nope.yml")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_up_names_the_missing_debian_packages(capsys, monkeypatch):
    monkeypatch.setattr(hostcmd.os, "geteuid", lambda: 0)
    monkeypatch.setattr(hostcmd.shutil, "which", lambda name: None if name in ("systemd-nspawn", "debootstrap") else "/usr/bin/" + name)
    assert cli.main(["up"]) == 1
    err = capsys.readouterr().err
    assert "the lab needs debootstrap, systemd-container on this host: run `make deps` or " \
           "`apt-get install debootstrap systemd-container`" in err
    assert "python3 tools/lab.py down --lab kubeforge" in err


def test_up_refuses_a_state_of_a_newer_lab_tool_before_touching_anything(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(hostcmd.os, "geteuid", lambda: 0)
    monkeypatch.setattr(hostcmd.shutil, "which", lambda name: "/usr/bin/" + name)
    monkeypatch.setattr(paths, "CACHE_ROOT", tmp_path)
    (tmp_path / "future").mkdir()
    (tmp_path / "future" / "state.json").write_text('{"lab": "future", "schema": 3}', encoding="utf-8")
    assert cli.main(["up", "--lab", "future"]) == 1
    err = capsys.readouterr().err
    assert "has schema 3; this lab tool reads schemas up to 2" in err
    assert "down --lab" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == [".future.lock", "future"]
