# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""kubeforge.cluster.swap_off main() on a fake tree: /proc/swaps, an fstab, /etc/systemd/system, and run_command
answering as systemctl and swapoff do (the role's molecule scenario runs the real ones in a lab machine)."""

from __future__ import annotations

import os

import pytest
from ansible.module_utils import basic
from module_harness import ExitJson, FailJson, call_main
from ansible_collections.kubeforge.cluster.plugins.module_utils._swap import active_swaps, comment_fstab, swap_units
from ansible_collections.kubeforge.cluster.plugins.modules import swap_off

FSTAB = """# /etc/fstab
UUID=abc / ext4 errors=remount-ro 0 1
/dev/sda2 none swap sw 0 0
  /swapfile   none  swap  defaults 0 0
# /dev/sdb1 none swap sw 0 0
/dev/sdc1 /srv xfs defaults 0 2
"""


class Host:
    def __init__(self, tmp_path, monkeypatch):
        self.root = tmp_path
        self.swaps = tmp_path / "swaps"
        self.swaps.write_text("Filename\tType\tSize\tUsed\tPriority\n")
        self.fstab = tmp_path / "fstab"
        self.fstab.write_text(FSTAB)
        self.system = tmp_path / "system"
        self.system.mkdir()
        self.units = "dev-sda2.swap generated -\nswapfile.swap generated -\n"
        self.calls = []
        monkeypatch.setattr(swap_off, "PROC_SWAPS", str(self.swaps))
        monkeypatch.setattr(swap_off, "SYSTEMD_SYSTEM", str(self.system))
        monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", lambda _self, name, required=False, opt_dirs=None: "/usr/bin/" + name)
        monkeypatch.setattr(basic.AnsibleModule, "run_command", self.run_command)

    def run_command(self, argv, environ_update=None, **_kwargs):
        assert environ_update and environ_update["LC_ALL"] == "C"
        self.calls.append(argv)
        if argv[1] == "list-unit-files":
            masked = {name for name in os.listdir(self.system) if os.path.islink(self.system / name)}
            lines = [line if line.split()[0] not in masked else line.split()[0] + " masked -" for line in self.units.splitlines()]
            return (0, "\n".join(lines) + "\n", "") if lines else (1, "", "")
        if argv[1] == "mask":
            assert argv[2] == "--"
            for unit in argv[3:]:
                os.symlink("/dev/null", self.system / unit)
            return 0, "", ""
        if argv[0].endswith("swapoff"):
            self.swaps.write_text("Filename\tType\tSize\tUsed\tPriority\n")
            return 0, "", ""
        raise AssertionError(argv)


@pytest.fixture
def host(tmp_path, monkeypatch):
    return Host(tmp_path, monkeypatch)


def run(host, check_mode=False, diff=False, **extra):
    return call_main(swap_off.main, dict({"fstab": str(host.fstab)}, **extra), check_mode=check_mode, diff=diff)


def test_active_swap_fstab_and_units_check_then_apply_then_nothing(host):
    host.swaps.write_text("Filename\tType\tSize\tUsed\tPriority\n/swapfile file 1048572 0 -2\n")
    kind, checked = run(host, check_mode=True, diff=True)
    assert kind is ExitJson and checked["changed"] and checked["swapped_off"] and checked["active"] == ["/swapfile"]
    assert checked["fstab_entries"] == ["/dev/sda2 none swap sw 0 0", "/swapfile   none  swap  defaults 0 0"]
    assert checked["masked"] == ["dev-sda2.swap", "swapfile.swap"]
    assert "# /dev/sda2 none swap sw 0 0" in checked["diff"]["after"]
    assert host.fstab.read_text() == FSTAB and os.listdir(host.system) == []
    assert [argv[1] for argv in host.calls] == ["list-unit-files"]

    kind, applied = run(host)
    assert kind is ExitJson and applied["changed"] and os.path.exists(applied["backup_file"])
    assert host.swaps.read_text().count("\n") == 1
    text = host.fstab.read_text()
    assert "# /dev/sda2 none swap sw 0 0  # swap disabled by kubeforge.cluster.node_prep\n" in text
    assert "#   /swapfile   none  swap  defaults 0 0  # swap disabled" in text
    assert "UUID=abc / ext4 errors=remount-ro 0 1\n" in text and "# /dev/sdb1 none swap sw 0 0\n" in text
    assert sorted(os.listdir(host.system)) == ["dev-sda2.swap", "swapfile.swap"]

    kind, again = run(host)
    assert kind is ExitJson and not again["changed"] and again["masked"] == [] and again["fstab_entries"] == []


def test_an_administrators_unit_file_is_refused_before_anything_changes(host):
    (host.system / "swapfile.swap").write_text("[Swap]\nWhat=/swapfile\n")
    host.swaps.write_text("Filename\tType\tSize\tUsed\tPriority\n/swapfile file 1048572 0 -2\n")
    kind, failed = run(host)
    assert kind is FailJson and "swapfile.swap is a swap unit written on this host" in failed["msg"]
    assert "systemctl disable --now swapfile.swap" in failed["msg"]
    assert host.fstab.read_text() == FSTAB and "/swapfile" in host.swaps.read_text()


def test_active_swap_in_a_container_is_refused_with_the_hint(host):
    host.swaps.write_text("Filename\tType\tSize\tUsed\tPriority\n/dev/zram0 partition 4G 0 100\n")
    kind, failed = run(host, allow_swapoff=False, refusal_hint="Turn swap off on the host.")
    assert kind is FailJson and failed["msg"].startswith("swap is on (/dev/zram0 in ")
    assert failed["msg"].endswith("Turn swap off on the host.") and host.fstab.read_text() == FSTAB


def test_no_fstab_and_no_systemd(host, monkeypatch):
    host.fstab.unlink()
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", lambda _self, name, required=False, opt_dirs=None: None)
    kind, result = run(host)
    assert kind is ExitJson and not result["changed"] and host.calls == []


def test_parsers():
    assert active_swaps("Filename Type Size Used Priority\n/dev/sda2 partition 1 0 -2\n\n") == ["/dev/sda2"]
    assert active_swaps("") == []
    assert comment_fstab("/dev/sda2 none swap sw 0 0")[0] == "# /dev/sda2 none swap sw 0 0  # swap disabled by kubeforge.cluster.node_prep"
    # a "swap" mount point or option is not a swap entry
    assert comment_fstab("/dev/sdb1 /swap ext4 defaults 0 2\n")[1] == []
    assert swap_units("dev-sda2.swap generated -\n--evil.swap x\nfoo.service enabled\n") == ["dev-sda2.swap"]
