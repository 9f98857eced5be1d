# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""tools/kflab/hostcmd.py: directories are removed only when nothing stays mounted below them."""

from __future__ import annotations

import pytest
from kflab import hostcmd
from kflab.errors import LabError


def test_safe_rmtree_refuses_while_something_stays_mounted(monkeypatch, tmp_path):
    victim = tmp_path / "base.tmp"
    (victim / "proc").mkdir(parents=True)
    (victim / "proc" / "keep").write_text("host data", encoding="utf-8")
    umounts = []
    monkeypatch.setattr(hostcmd, "mounts_under", lambda prefix: [str(victim / "proc")])
    monkeypatch.setattr(hostcmd, "run", lambda argv, check=True: umounts.append(argv))
    with pytest.raises(LabError, match="still mounted below it: .*/proc"):
        hostcmd.safe_rmtree(victim)
    assert umounts == [["umount", "-l", str(victim / "proc")]]
    assert (victim / "proc" / "keep").read_text(encoding="utf-8") == "host data"


def test_safe_rmtree_removes_after_unmounting(monkeypatch, tmp_path):
    victim = tmp_path / "machines"
    (victim / "node1" / "upper").mkdir(parents=True)
    mounted = [str(victim / "node1" / "root"), str(victim / "node1" / "root" / "proc")]
    monkeypatch.setattr(hostcmd, "mounts_under", lambda prefix: list(mounted))

    def fake_run(argv, check=True):
        mounted.remove(argv[-1])

    monkeypatch.setattr(hostcmd, "run", fake_run)
    hostcmd.safe_rmtree(victim)
    assert not victim.exists()
