# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""kubeforge.cluster.kernel_modules main() against fake host trees, with modprobe mocked by exact argv."""

from __future__ import annotations

import pytest
from ansible.module_utils import basic
from module_harness import ExitJson, FailJson, call_main
from ansible_collections.kubeforge.cluster.plugins.modules import kernel_modules

RELEASE = "6.1.0-26-amd64"
MODPROBE = "/usr/sbin/modprobe"


@pytest.fixture(autouse=True)
def modprobe_on_path(monkeypatch):
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", lambda self, name, required=False, opt_dirs=None: MODPROBE)


@pytest.fixture
def host(tmp_path, monkeypatch):
    """A module-capable host: overlay loaded, br_netfilter installed, ip_vs absent."""
    (tmp_path / "proc" / "sys" / "kernel").mkdir(parents=True)
    (tmp_path / "proc" / "sys" / "kernel" / "osrelease").write_text(RELEASE + "\n")
    (tmp_path / "proc" / "modules").write_text("overlay 151552 0 - Live 0x0000000000000000\n")
    (tmp_path / "sys" / "module" / "overlay").mkdir(parents=True)
    (tmp_path / "sys" / "module" / "overlay" / "initstate").write_text("live\n")
    moddir = tmp_path / "lib" / "modules" / RELEASE
    moddir.mkdir(parents=True)
    (moddir / "modules.builtin").write_text("")
    (moddir / "modules.dep").write_text("kernel/net/bridge/br_netfilter.ko.xz: kernel/net/bridge/bridge.ko.xz\n")
    monkeypatch.setattr(kernel_modules, "ROOT", str(tmp_path))
    return tmp_path


class Modprobe:
    """run_command stand-in: answers the exact argv the module must use."""

    def __init__(self, root):
        self.root = root
        self.calls = []

    def __call__(self, argv, environ_update=None, **kwargs):
        self.calls.append(argv)
        assert environ_update == {"LANGUAGE": "C", "LC_ALL": "C"}
        if argv == [MODPROBE, "-n", "-v", "--", "br_netfilter"]:
            return 0, "insmod /lib/modules/%s/kernel/net/bridge/bridge.ko.xz\ninsmod /lib/modules/%s/kernel/net/bridge/br_netfilter.ko.xz\n" % (
                RELEASE, RELEASE), ""
        if argv == [MODPROBE, "-n", "-v", "--", "ip_vs"]:
            return 1, "", "modprobe: FATAL: Module ip_vs not found in directory /lib/modules/%s\n" % RELEASE
        if argv == [MODPROBE, "--", "br_netfilter"]:
            with (self.root / "proc" / "modules").open("a") as handle:
                handle.write("br_netfilter 32768 0 - Live 0x0000000000000000\nbridge 311296 1 br_netfilter, Live 0x0\n")
            return 0, "", ""
        raise AssertionError("unexpected command %r" % argv)


def run(args, check_mode=False, diff=False):
    return call_main(kernel_modules.main, args, check_mode=check_mode, diff=diff)


MODULES = ["overlay", "br_netfilter", {"name": "ip_vs", "required": False, "reason": "kube-proxy ipvs mode"}]


def test_check_mode_then_apply_then_idempotent(host, monkeypatch):
    modprobe = Modprobe(host)
    monkeypatch.setattr(basic.AnsibleModule, "run_command", lambda self, argv, **kwargs: modprobe(argv, **kwargs))
    load_file = host / "etc" / "modules-load.d" / "kubeforge.conf"

    kind, result = run({"modules": MODULES}, check_mode=True, diff=True)
    assert kind is ExitJson
    assert result["changed"] is True
    assert result["status"] == {"overlay": "loaded", "br_netfilter": "loadable", "ip_vs": "missing"}
    assert [m["action"] for m in result["modules"]] == ["none", "would load", "none"]
    assert [MODPROBE, "--", "br_netfilter"] not in modprobe.calls
    assert not load_file.exists()
    assert result["diff"][0]["after"].endswith("overlay\nbr_netfilter\n")
    assert result["kernel_release"] == RELEASE
    assert result["module_support"] is True

    kind, result = run({"modules": MODULES})
    assert kind is ExitJson
    assert result["changed"] is True
    assert [MODPROBE, "--", "br_netfilter"] in modprobe.calls
    assert result["modules"][1]["action"] == "loaded"
    assert result["persisted"] == ["overlay", "br_netfilter"]
    assert load_file.read_text().splitlines()[-2:] == ["overlay", "br_netfilter"]
    assert oct(load_file.stat().st_mode & 0o777) == "0o644"

    kind, result = run({"modules": MODULES}, diff=True)
    assert kind is ExitJson
    assert result["changed"] is False
    assert "diff" not in result
    assert result["status"]["br_netfilter"] == "loaded"
    assert result["files"] == {"/etc/modules-load.d/kubeforge.conf": "none", "/etc/modprobe.d/kubeforge.conf": "none"}


def test_required_missing_fails_with_module_kernel_and_reason(host, monkeypatch):
    modprobe = Modprobe(host)
    monkeypatch.setattr(basic.AnsibleModule, "run_command", lambda self, argv, **kwargs: modprobe(argv, **kwargs))
    kind, result = run({"modules": ["overlay", {"name": "ip_vs", "reason": "kube-proxy ipvs mode"}]})
    assert kind is FailJson
    assert result["msg"].startswith("kernel module ip_vs (needed for kube-proxy ipvs mode) is missing on kernel %s: modprobe -n -v: modprobe: FATAL" % RELEASE)
    assert "Fix: install the modules package for kernel %s" % RELEASE in result["msg"]
    assert result["status"] == {"overlay": "loaded", "ip_vs": "missing"}
    assert not (host / "etc").exists()


def test_monolithic_kernel_needs_no_modprobe(tmp_path, monkeypatch):
    (tmp_path / "proc" / "sys" / "kernel").mkdir(parents=True)
    (tmp_path / "proc" / "sys" / "kernel" / "osrelease").write_text("6.18.44-fc\n")
    (tmp_path / "sys" / "module" / "overlay" / "parameters").mkdir(parents=True)
    (tmp_path / "proc" / "sys" / "net" / "bridge").mkdir(parents=True)
    (tmp_path / "proc" / "sys" / "net" / "bridge" / "bridge-nf-call-iptables").write_text("1\n")
    monkeypatch.setattr(kernel_modules, "ROOT", str(tmp_path))

    def no_commands(*args, **kwargs):
        raise AssertionError("no command may run on a kernel without module support")

    monkeypatch.setattr(basic.AnsibleModule, "run_command", no_commands)
    kind, result = run({"modules": ["overlay", "br_netfilter"]})
    assert kind is ExitJson
    assert result["changed"] is False
    assert result["module_support"] is False
    assert result["status"] == {"overlay": "builtin", "br_netfilter": "builtin"}
    assert result["persisted"] == []
    assert not (tmp_path / "etc").exists()


@pytest.mark.parametrize("persist_file, problem", [
    ("../evil.conf", "file name '../evil.conf' must not contain '/'"),
    ("a/b.conf", "file name 'a/b.conf' must not contain '/'"),
    ("", "must not be empty"),
    ("kubeforge", "file name 'kubeforge' must end with .conf (other names are ignored by the tool that reads the directory)"),
    (".conf", "file name '.conf' may only contain letters, digits and '_.@+-', and must not start with '.'"),
    ("-C.conf", "file name '-C.conf' must not start with '-' (it would be read as a command option)"),
])
def test_persist_file_must_be_a_conf_name(host, persist_file, problem):
    kind, result = run({"modules": ["overlay"], "persist_file": persist_file})
    assert kind is FailJson
    assert result["msg"] == "persist_file: " + problem


def test_bad_module_entry(host):
    kind, result = run({"modules": [{"name": "overlay", "requird": True}]})
    assert kind is FailJson
    assert result["msg"] == "modules[0]: has unknown keys requird; allowed: name, required, params, reason"


def test_params_reach_modprobe_after_the_end_of_options(host, monkeypatch):
    calls = []

    def run_command(self, argv, **kwargs):
        calls.append(argv)
        if argv[1:3] == ["-n", "-v"]:
            return 0, "insmod /lib/modules/x/br_netfilter.ko\n", ""
        with (host / "proc" / "modules").open("a") as handle:
            handle.write("br_netfilter 1 0 - Live 0x0\n")
        return 0, "", ""

    monkeypatch.setattr(basic.AnsibleModule, "run_command", run_command)
    result = run({"modules": [{"name": "br_netfilter", "params": {"a": -1, "b": [1, 2]}}], "persist": False})[1]
    assert calls[-1] == [MODPROBE, "--", "br_netfilter", "a=-1", "b=1,2"]
    assert result["modules"][0]["params"] == "a=-1 b=1,2"


def test_several_required_missing_are_all_named(host, monkeypatch):
    modprobe = Modprobe(host)

    def run_command(self, argv, **kwargs):
        if argv[-1] in ("ip_vs_rr", "ip_vs_sh"):  # the probe: modprobe -n -v -- NAME
            return 1, "", "modprobe: FATAL: Module %s not found\n" % argv[-1]
        return modprobe(argv, **kwargs)

    monkeypatch.setattr(basic.AnsibleModule, "run_command", run_command)
    kind, result = run({"modules": ["ip_vs", "ip_vs_rr", {"name": "ip_vs_sh", "required": False}]})
    assert kind is FailJson
    assert result["msg"].startswith("kernel module ip_vs is missing on kernel %s" % RELEASE)
    assert result["msg"].endswith(". Also failed (required): ip_vs_rr; see modules[] for the evidence of each")
    assert len(result["failures"]) == 2
