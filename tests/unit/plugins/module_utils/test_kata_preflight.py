# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kata host preflight on fake host trees: CPU flags, /dev/kvm, vhost modules, kata-runtime check."""

from __future__ import annotations

import errno
import os
import stat

import pytest
from ansible_collections.kubeforge.cluster.plugins.module_utils import _kata_preflight as kp
from ansible_collections.kubeforge.cluster.plugins.modules import kata_preflight
from module_harness import ExitJson, FailJson, call_main, patch_module_exits

RELEASE = "6.1.0-26-amd64"
LAB_CPU = "AMD EPYC"


def cpuinfo(flags, model="Intel(R) Xeon(R) Gold 6248"):
    return "".join("processor\t: %d\nmodel name\t: %s\nflags\t\t: %s\n\n" % (n, model, " ".join(flags)) for n in range(2))


class FakeHost:
    """A host tree: cpuinfo, an optional /dev/kvm (a real character device node when mknod is allowed), /proc/modules,
    modules.dep; kata-runtime answers through ``run``."""

    def __init__(self, root, flags=("fpu", "vmx", "sse2"), model="Intel(R) Xeon(R) Gold 6248", kvm=True, loaded=(),
                 loadable=("vhost_vsock", "vhost_net"), kvm_open_error=None, kata=None):
        self.root = root
        (root / "proc" / "sys" / "kernel").mkdir(parents=True)
        (root / "proc" / "sys" / "kernel" / "osrelease").write_text(RELEASE + "\n")
        (root / "proc" / "cpuinfo").write_text(cpuinfo(flags, model))
        (root / "proc" / "filesystems").write_text("nodev\tproc\n")
        (root / "proc" / "modules").write_text("".join("%s 16384 0 - Live 0x0\n" % name for name in loaded))
        (root / "sys" / "module").mkdir(parents=True)
        moddir = root / "lib" / "modules" / RELEASE
        moddir.mkdir(parents=True)
        (moddir / "modules.builtin").write_text("")
        (moddir / "modules.dep").write_text("".join("kernel/drivers/vhost/%s.ko:\n" % name for name in loadable))
        (root / "dev").mkdir()
        if kvm:
            try:
                os.mknod(root / "dev" / "kvm", 0o600 | stat.S_IFCHR, os.makedev(10, 232))
            except PermissionError:
                pytest.skip("mknod of a character device needs root")
        self.kvm_open_error = kvm_open_error
        self.kata = kata
        self.calls = []

    def opener(self, path):
        if self.kvm_open_error:
            raise OSError(self.kvm_open_error, os.strerror(self.kvm_open_error))

    def run(self, argv):
        self.calls.append(argv)
        if argv[1:] == ["check", "--no-network-checks"]:
            return self.kata
        return 1, "", "modprobe: FATAL: Module %s not found" % argv[-1]

    def host(self, machine="x86_64"):
        return kp.Host(root=str(self.root), run=self.run, modprobe=None, machine=machine, opener=self.opener)


def test_a_capable_host_passes_every_check(tmp_path):
    checks, problems = kp.preflight(FakeHost(tmp_path).host())
    assert problems == []
    assert [c.name for c in checks] == ["cpu virtualization", "/dev/kvm", "nested virtualization", "kernel module vhost_vsock",
                                        "kernel module vhost_net", "kata-runtime check"]
    assert checks[0].detail == "Intel(R) Xeon(R) Gold 6248 offers vmx"
    assert checks[3].detail.startswith("vhost_vsock is loadable")
    assert checks[5].ok is None and "not installed yet" in checks[5].detail


def test_the_lab_cpu_under_a_hypervisor_without_kvm_lists_everything_missing(tmp_path):
    host = FakeHost(tmp_path, flags=("fpu", "sse2", "hypervisor"), model=LAB_CPU, kvm=False, loadable=()).host()
    checks, problems = kp.preflight(host)
    assert len(problems) == 4, problems
    assert problems[0].startswith("cpu virtualization: AMD EPYC shows neither vmx (Intel VT-x) nor svm (AMD-V), and this "
                                  "machine is itself a virtual machine")
    assert "Enable nested virtualization" in problems[0]
    assert problems[1].startswith("/dev/kvm: /dev/kvm does not exist")
    assert problems[2].startswith("kernel module vhost_vsock: vhost_vsock is missing from kernel %s" % RELEASE)
    assert problems[3].startswith("kernel module vhost_net: vhost_net is missing")


def test_bare_metal_without_virtualization_points_at_the_firmware(tmp_path):
    check = kp.check_cpu(FakeHost(tmp_path, flags=("fpu",)).host())
    assert check.ok is False and check.detail.endswith("enable virtualization in the firmware (BIOS/UEFI)")


def test_an_unusable_kvm_device_is_a_problem(tmp_path):
    check = kp.check_kvm(FakeHost(tmp_path, kvm_open_error=errno.EACCES).host())
    assert (check.ok, check.detail) == (False, "/dev/kvm cannot be opened for reading and writing: Permission denied")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "dev").mkdir()
    (tmp_path / "other" / "dev" / "kvm").write_text("not a device")
    check = kp.check_kvm(kp.Host(root=str(tmp_path / "other"), machine="x86_64"))
    assert (check.ok, check.detail) == (False, "/dev/kvm is not the KVM character device (10:232)")


def test_loaded_modules_and_arm64_without_flags(tmp_path):
    host = FakeHost(tmp_path, flags=(), loaded=("vhost_vsock", "vhost_net"), loadable=())
    checks, problems = kp.preflight(host.host(machine="aarch64"))
    assert problems == []
    assert checks[0].ok is None and checks[3].detail.startswith("vhost_vsock is loaded")


def test_kata_runtime_check_runs_once_installed(tmp_path):
    binary = tmp_path / "kata-runtime"
    binary.write_text("#!/bin/sh\n")
    failing = FakeHost(tmp_path, kata=(1, "", "ERRO[0000] kernel property vhost_vsock not found\n"
                                              "ERRO[0000] System is not capable of running Kata Containers\n"))
    check = kp.check_kata_runtime(failing.host(), str(binary))
    assert check.ok is False
    assert check.detail.endswith("(rc 1): ERRO[0000] kernel property vhost_vsock not found | ERRO[0000] System is not capable of running Kata Containers")
    failing.kata = (0, "System is capable of running Kata Containers\n", "")
    assert kp.check_kata_runtime(failing.host(), str(binary)).detail == "System is capable of running Kata Containers"


@pytest.fixture
def module_exits(monkeypatch):
    return patch_module_exits(monkeypatch)


def test_module_fails_with_the_list_unless_allowed_then_warns(tmp_path, monkeypatch, module_exits):
    FakeHost(tmp_path, flags=("hypervisor",), model=LAB_CPU, kvm=False, loadable=())
    monkeypatch.setattr(kata_preflight, "ROOT", str(tmp_path))
    monkeypatch.setattr(kp.os, "uname", lambda: os.uname_result(("Linux", "lab", RELEASE, "#1", "x86_64")))
    # the fake tree's modules.dep decides, not this machine's modprobe
    monkeypatch.setattr(kata_preflight, "Host", lambda **kwargs: kp.Host(**dict(kwargs, modprobe=None)))
    kind, result = call_main(kata_preflight.main, {"kata_runtime": str(tmp_path / "none")})
    assert kind is FailJson and result["supported"] is False
    assert result["msg"].startswith("This host cannot run Kata Containers: (1) cpu virtualization: AMD EPYC shows neither vmx")
    assert "(2) /dev/kvm: /dev/kvm does not exist" in result["msg"] and "set allow_unsupported to install anyway" in result["msg"]
    kind, result = call_main(kata_preflight.main, {"kata_runtime": str(tmp_path / "none"), "allow_unsupported": True}, check_mode=True)
    assert kind is ExitJson and result["supported"] is False and len(result["problems"]) == 4
    assert result["warnings"][0].startswith("This host cannot run Kata Containers yet; installed anyway because allow_unsupported is set")
    kind, result = call_main(kata_preflight.main, {"modules": ["-r"]})
    assert kind is FailJson and "must not start with '-'" in result["msg"]
    # kata-runtime is run when it exists: a relative path (resolved against the module's working directory) is refused
    kind, result = call_main(kata_preflight.main, {"kata_runtime": "opt/kata/bin/kata-runtime"})
    assert kind is FailJson and "kata_runtime" in result["msg"] and "must be an absolute path" in result["msg"]
