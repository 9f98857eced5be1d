# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Can this host run Kata Containers? Evidence for ``kubeforge.cluster.kata_preflight``.

Kata runs every pod in a small virtual machine, so a host needs hardware virtualization it can use:

- the CPU offers it (``vmx`` for Intel VT-x, ``svm`` for AMD-V in ``/proc/cpuinfo``); inside a virtual machine (the
  ``hypervisor`` flag) that means the outer hypervisor passes it on (nested virtualization);
- ``/dev/kvm`` exists, is the KVM character device and can be opened for reading and writing;
- the kernel has ``vhost_vsock`` (the agent in the VM talks to the shim over vsock) and ``vhost_net``, loaded, built
  in or loadable (judged like ``kernel_modules`` does, with ``_kernel_modules.HostKernel``);
- ``kata-runtime check`` passes, once Kata is installed.

Everything is read below ``root`` and commands go through an injected ``run``, so tests use fake trees.
"""

from __future__ import annotations

import os
import stat

from ansible_collections.kubeforge.cluster.plugins.module_utils._kernel_modules import MISSING, HostKernel

KVM_MAJOR, KVM_MINOR = 10, 232
X86 = ("x86_64", "i686", "i386", "amd64")


class Check:
    """One finding: ``ok`` True (fine), False (a problem) or None (not applicable here)."""

    def __init__(self, name, ok, detail):
        self.name = name
        self.ok = ok
        self.detail = detail

    def as_dict(self):
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


class Host:
    """The host below ``root``; ``run(argv) -> (rc, out, err)``; ``opener(path)`` opens a device read-write (a test
    seam: fake trees have no device nodes)."""

    def __init__(self, root="/", run=None, modprobe=None, machine=None, opener=None):
        self.root = root
        self.run = run
        self.machine = machine or os.uname().machine
        self.kernel = HostKernel(root=root, run=run, modprobe=modprobe)
        self.opener = opener or _open_rw

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    def cpuinfo(self):
        """(flags, model name) of the first processor in /proc/cpuinfo."""
        flags, model = set(), ""
        try:
            with open(self.path("proc", "cpuinfo"), encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    key, _sep, value = line.partition(":")
                    key = key.strip()
                    if key == "flags" and not flags:
                        flags = set(value.split())
                    elif key == "model name" and not model:
                        model = value.strip()
        except OSError:
            pass
        return flags, model

    def read(self, *parts):
        try:
            with open(self.path(*parts), encoding="utf-8", errors="replace") as handle:
                return handle.read().strip()
        except OSError:
            return None


def _open_rw(path):
    fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    os.close(fd)


def check_cpu(host):
    flags, model = host.cpuinfo()
    if host.machine not in X86:
        return Check("cpu virtualization", None, "%s: no vmx/svm flags to read; /dev/kvm decides" % host.machine)
    cpu = model or "the CPU"
    found = sorted(flags & {"vmx", "svm"})
    if found:
        return Check("cpu virtualization", True, "%s offers %s" % (cpu, " and ".join(found)))
    if "hypervisor" in flags:
        return Check("cpu virtualization", False,
                     "%s shows neither vmx (Intel VT-x) nor svm (AMD-V), and this machine is itself a virtual machine "
                     "(cpuinfo flag 'hypervisor'): its hypervisor does not pass virtualization on. Enable nested "
                     "virtualization for this VM on its host (e.g. kvm_intel/kvm_amd nested=1 and a CPU model with "
                     "vmx/svm), or use bare metal" % cpu)
    return Check("cpu virtualization", False,
                 "%s shows neither vmx (Intel VT-x) nor svm (AMD-V): enable virtualization in the firmware (BIOS/UEFI)" % cpu)


def check_kvm(host):
    path = host.path("dev", "kvm")
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return Check("/dev/kvm", False, "/dev/kvm does not exist: the kvm_intel or kvm_amd module is not loaded (or this is "
                                        "a container without the device)")
    except OSError as exc:
        return Check("/dev/kvm", False, "/dev/kvm cannot be examined: %s" % exc.strerror)
    if not stat.S_ISCHR(info.st_mode) or (os.major(info.st_rdev), os.minor(info.st_rdev)) != (KVM_MAJOR, KVM_MINOR):
        return Check("/dev/kvm", False, "/dev/kvm is not the KVM character device (10:%d)" % KVM_MINOR)
    try:
        host.opener(path)
    except OSError as exc:
        return Check("/dev/kvm", False, "/dev/kvm cannot be opened for reading and writing: %s" % exc.strerror)
    return Check("/dev/kvm", True, "/dev/kvm is usable")


def check_nested(host):
    """Informational: whether KVM here lets its own guests virtualize (nested); never a problem for Kata itself."""
    for module in ("kvm_intel", "kvm_amd"):
        value = host.read("sys", "module", module, "parameters", "nested")
        if value is not None:
            enabled = value in ("Y", "1")
            return Check("nested virtualization", None, "%s nested=%s (%s)" % (module, value, "enabled" if enabled else "disabled"))
    return Check("nested virtualization", None, "no kvm_intel/kvm_amd module loaded")


def check_modules(host, names):
    checks = []
    for name in names:
        status, evidence = host.kernel.probe(name)
        if status == MISSING:
            checks.append(Check("kernel module %s" % name, False, "%s is missing from kernel %s (%s)" % (name, host.kernel.release, evidence)))
        else:
            checks.append(Check("kernel module %s" % name, True, "%s is %s (%s)" % (name, status, evidence)))
    return checks


def check_kata_runtime(host, binary):
    if not binary or not os.path.exists(binary):
        return Check("kata-runtime check", None, "kata-runtime is not installed yet (%s); it runs once Kata is installed" % binary)
    rc, out, err = host.run([binary, "check", "--no-network-checks"])
    lines = [line.strip() for line in ((out or "") + "\n" + (err or "")).splitlines() if line.strip()]
    if rc == 0:
        return Check("kata-runtime check", True, lines[-1] if lines else "passed")
    return Check("kata-runtime check", False, "%s check failed (rc %d): %s" % (binary, rc, " | ".join(lines[-4:]) or "no output"))


def preflight(host, modules=("vhost_vsock", "vhost_net"), kata_runtime=None):
    """Every check, in a fixed order; returns (checks, problems)."""
    checks = [check_cpu(host), check_kvm(host), check_nested(host)]
    checks.extend(check_modules(host, modules))
    checks.append(check_kata_runtime(host, kata_runtime))
    problems = ["%s: %s" % (check.name, check.detail) for check in checks if check.ok is False]
    return checks, problems
