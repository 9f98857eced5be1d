# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kernel module probing against fake /proc, /sys and /lib/modules trees."""

from __future__ import annotations

import gzip
import os

import pytest
from ansible_collections.kubeforge.cluster.plugins.module_utils import _files as f
from ansible_collections.kubeforge.cluster.plugins.module_utils import _kernel_modules as km
from ansible_collections.kubeforge.cluster.plugins.module_utils._validate import InputError

RELEASE = "6.1.0-26-amd64"


class FakeHost:
    """A host tree below tmp_path; ``modprobe`` simulates kmod against it."""

    def __init__(self, root, module_support=True, release=RELEASE):
        self.root = root
        self.release = release
        self.calls = []
        (root / "proc" / "sys" / "kernel").mkdir(parents=True)
        (root / "proc" / "sys" / "kernel" / "osrelease").write_text(release + "\n")
        (root / "sys" / "module").mkdir(parents=True)
        (root / "proc" / "filesystems").write_text("nodev\tsysfs\nnodev\tproc\n\text4\n")
        self.module_support = module_support
        if module_support:
            (root / "proc" / "modules").write_text("")
            self.moddir = root / "lib" / "modules" / release
            self.moddir.mkdir(parents=True)
            (self.moddir / "modules.builtin").write_text("")
            (self.moddir / "modules.dep").write_text("")

    def load(self, name, size=16384):
        with (self.root / "proc" / "modules").open("a") as handle:
            handle.write("%s %d 0 - Live 0x0000000000000000\n" % (name, size))
        (self.root / "sys" / "module" / name).mkdir(exist_ok=True)
        (self.root / "sys" / "module" / name / "initstate").write_text("live\n")

    def builtin(self, name, with_sys=True, path_in_tree=None):
        if self.module_support:
            with (self.moddir / "modules.builtin").open("a") as handle:
                handle.write((path_in_tree or "kernel/x/%s.ko" % name) + "\n")
        if with_sys:
            (self.root / "sys" / "module" / name / "parameters").mkdir(parents=True)

    def installable(self, name, deps=""):
        with (self.moddir / "modules.dep").open("a") as handle:
            handle.write("kernel/net/%s.ko.xz: %s\n" % (name, deps))

    def config(self, text, where="proc"):
        if where == "proc":
            (self.root / "proc" / "config.gz").write_bytes(gzip.compress(text.encode()))
        else:
            (self.root / "boot").mkdir(exist_ok=True)
            (self.root / "boot" / ("config-" + self.release)).write_text(text)

    def run(self, argv):
        self.calls.append(list(argv))
        name = argv[-1]
        deps = (self.moddir / "modules.dep").read_text()
        if argv[1:4] == ["-n", "-v", "--"]:
            if "/%s.ko" % name in deps:
                return 0, "insmod /lib/modules/%s/kernel/net/%s.ko.xz \n" % (self.release, name), ""
            return 1, "", "modprobe: FATAL: Module %s not found in directory /lib/modules/%s\n" % (name, self.release)
        raise AssertionError("unexpected command %r" % argv)

    def kernel(self, modprobe="/usr/sbin/modprobe"):
        return km.HostKernel(root=str(self.root), run=self.run, modprobe=modprobe if self.module_support else None)


@pytest.fixture
def host(tmp_path):
    return FakeHost(tmp_path)


@pytest.fixture
def monolithic(tmp_path):
    """Like the lab's kernel: no /proc/modules, no /lib/modules, config.gz, built-ins without /sys entries."""
    fake = FakeHost(tmp_path, module_support=False, release="6.18.44-fc")
    fake.builtin("overlay")
    fake.builtin("nf_conntrack")
    (tmp_path / "proc" / "sys" / "net" / "bridge").mkdir(parents=True)
    (tmp_path / "proc" / "sys" / "net" / "bridge" / "bridge-nf-call-iptables").write_text("1\n")
    fake.config("# CONFIG_MODULES is not set\nCONFIG_BRIDGE_NETFILTER=y\nCONFIG_OVERLAY_FS=y\n# CONFIG_IP_VS is not set\n")
    return fake


def test_module_capable_kernel_statuses(host):
    host.load("overlay")
    host.builtin("nf_conntrack", with_sys=False)
    host.builtin("bridge", with_sys=True, path_in_tree="kernel/net/bridge/bridge.ko")
    host.installable("br_netfilter", deps="kernel/net/bridge.ko")
    kernel = host.kernel()
    assert kernel.module_support is True
    assert kernel.release == RELEASE
    assert kernel.probe("overlay") == (km.LOADED, "listed in /proc/modules")
    assert kernel.probe("nf_conntrack")[0] == km.BUILTIN
    assert "modules.builtin" in kernel.probe("nf_conntrack")[1]
    status, evidence = kernel.probe("br_netfilter")
    assert status == km.LOADABLE
    assert "insmod" in evidence
    status, evidence = kernel.probe("ip_vs")
    assert status == km.MISSING
    assert "Module ip_vs not found" in evidence
    assert ["/usr/sbin/modprobe", "-n", "-v", "--", "ip_vs"] in host.calls


def test_loaded_module_needs_no_modprobe(host):
    host.load("overlay")
    assert host.kernel().probe("overlay")[0] == km.LOADED
    assert host.calls == []


def test_dash_and_underscore_names_are_the_same(host):
    host.load("nf_conntrack")
    assert host.kernel().probe("nf-conntrack")[0] == km.LOADED


def test_sys_module_without_initstate_is_builtin(host):
    (host.root / "sys" / "module" / "vt" / "parameters").mkdir(parents=True)
    status, evidence = host.kernel().probe("vt")
    assert status == km.BUILTIN
    assert evidence == "/sys/module/vt exists and /proc/modules does not list it"


def test_modules_dep_without_modprobe_binary(host):
    host.installable("br_netfilter")
    status, evidence = host.kernel(modprobe=None).probe("br_netfilter")
    assert status == km.LOADABLE
    assert evidence == "listed in /lib/modules/%s/modules.dep" % RELEASE


def test_modules_disabled_makes_loadable_missing(host):
    host.installable("ip_vs")
    (host.root / "proc" / "sys" / "kernel" / "modules_disabled").write_text("1\n")
    status, evidence = host.kernel().probe("ip_vs")
    assert status == km.MISSING
    assert "kernel.modules_disabled=1" in evidence


def test_monolithic_kernel(monolithic):
    kernel = monolithic.kernel()
    assert kernel.module_support is False
    assert kernel.probe("overlay") == (km.BUILTIN, "/sys/module/overlay exists and the kernel has no module support")
    # br_netfilter has no parameters, so no /sys/module entry: the kernel config proves it.
    assert kernel.probe("br_netfilter") == (km.BUILTIN, "CONFIG_BRIDGE_NETFILTER=y in /proc/config.gz")
    status, evidence = kernel.probe("ip_vs")
    assert status == km.MISSING
    assert "no module support" in evidence
    assert monolithic.calls == []


def test_feature_marker_without_config(tmp_path):
    fake = FakeHost(tmp_path, module_support=False)
    (tmp_path / "proc" / "sys" / "net" / "bridge").mkdir(parents=True)
    (tmp_path / "proc" / "sys" / "net" / "bridge" / "bridge-nf-call-iptables").write_text("1\n")
    (tmp_path / "proc" / "filesystems").write_text("nodev\toverlay\n")
    kernel = fake.kernel()
    assert kernel.probe("br_netfilter") == (km.BUILTIN, "/proc/sys/net/bridge/bridge-nf-call-iptables exists")
    assert kernel.probe("overlay") == (km.BUILTIN, "overlay listed in /proc/filesystems")


def test_boot_config_file_is_read(tmp_path):
    fake = FakeHost(tmp_path, module_support=False)
    fake.config("CONFIG_IP_VS=y\nCONFIG_IP_VS_RR=m\n", where="boot")
    kernel = fake.kernel()
    assert kernel.probe("ip_vs") == (km.BUILTIN, "CONFIG_IP_VS=y in /boot/config-%s" % RELEASE)
    # =m on a kernel without module support is not there at all.
    assert kernel.probe("ip_vs_rr")[0] == km.MISSING


@pytest.mark.parametrize(
    "item, expected",
    [
        ("overlay", {"name": "overlay", "required": True, "params": "", "reason": ""}),
        ({"name": "ip-vs", "required": False, "reason": "ipvs"}, {"name": "ip_vs", "required": False, "params": "", "reason": "ipvs"}),
        ({"name": "nf_conntrack", "params": {"hashsize": 1024}}, {"name": "nf_conntrack", "required": True, "params": "hashsize=1024", "reason": ""}),
        (
            {"name": "dummy", "params": " numdummies=2   x=1 ", "required": "no"},  # a templated bool is a word
            {"name": "dummy", "required": False, "params": "numdummies=2 x=1", "reason": ""},
        ),
    ],
)
def test_parse_requests(item, expected):
    assert km.parse_requests([item]) == [expected]


@pytest.mark.parametrize(
    "items, message",
    [
        ([{"nam": "x"}], "modules[0]: has unknown keys nam; allowed: name, required, params, reason"),
        ([{"required": True}], "modules[0]: needs the keys name"),
        (["bad name"], "modules[0].name: kernel module name 'bad name' must not contain whitespace"),
        (["-v"], "modules[0].name: kernel module name '-v' must not start with '-'"),
        (["../../evil"], "modules[0].name: kernel module name '../../evil' must not contain '/'"),
        (["a" * 56], "modules[0].name: is 56 characters long, more than the 55 allowed"),
        ([{"name": ["overlay"]}], "modules[0].name: must be a string, got a list"),
        (["overlay", "overlay"], "modules[1].name: module overlay is listed twice"),
        ([{"name": "x", "params": "novalue"}], "modules[0].params: 'novalue' is not a module parameter: write name=value"),
        ([{"name": "x", "params": "--config=/tmp/x.conf"}], "modules[0].params: '--config=/tmp/x.conf' is not a module parameter"),
        ([{"name": "x", "params": "a=1 -C"}], "modules[0].params: '-C' is not a module parameter"),
        ([{"name": "x", "params": 'a="b c"'}], "modules[0].params: 'a=\"b' is not a module parameter"),
        ([{"name": "x", "params": "a=b\\"}], "modules[0].params: 'a=b\\\\' is not a module parameter"),
        ([{"name": "x", "params": {"a": 1.5}}], "modules[0].params.a: must be a string, an integer, a bool or a non-empty list"),
        ([{"name": "x", "params": {"a": "b c"}}], "modules[0].params.a: 'a=b c' is not a module parameter"),
        ([{"name": "x", "params": {"-C": "x"}}], "modules[0].params: parameter name '-C' is not a kernel parameter name"),
        ([{"name": "x", "params": ["a=1"]}], "modules[0].params: must be a string of name=value words or a dict, got a list"),
        ([{"name": "x", "required": "maybe"}], "modules[0].required: must be true or false, got 'maybe'"),
        ([{"name": "x", "required": None}], "modules[0].required: must be true or false, got null"),
        ([{"name": "x", "reason": ["a"]}], "modules[0].reason: must be a string, got a list"),
        ([3], "modules[0]: must be a module name or a dict with name, got an integer"),
        ("overlay", "modules: must be a list, got a string"),
    ],
)
def test_parse_requests_errors(items, message):
    with pytest.raises(InputError) as caught:
        km.parse_requests(items)
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize("params, words", [
    ("hashsize=1024", ["hashsize=1024"]),
    ("enable_psr=-1 x=", ["enable_psr=-1", "x="]),
    ({"ids": [1, "0x2"], "on": True, "path": "fw/a.bin"}, ["ids=1,0x2", "on=1", "path=fw/a.bin"]),
    (None, []),
])
def test_param_words(params, words):
    assert km.param_words("p", params) == words


def test_modprobe_argv_ends_options_before_the_name():
    assert km.modprobe_argv("/sbin/modprobe", "br_netfilter", ["a=1"]) == ["/sbin/modprobe", "--", "br_netfilter", "a=1"]
    assert km.modprobe_argv("/sbin/modprobe", "ip_vs", dry_run=True) == ["/sbin/modprobe", "-n", "-v", "--", "ip_vs"]
    with pytest.raises(InputError):
        km.modprobe_argv("/sbin/modprobe", "-C")


class Recorder:
    """Callbacks for ensure(): loads go to the fake host, files are really written."""

    def __init__(self, host, fail=()):
        self.host = host
        self.fail = fail
        self.loads = []

    def load(self, name, params):
        self.loads.append((name, params))
        if name in self.fail:
            return 1, "", "modprobe: ERROR: could not insert '%s': Operation not permitted\n" % name
        self.host.load(name)
        return 0, "", ""

    @staticmethod
    def write(path, text, expected):
        assert f.read_bytes(path) == (None if expected is False else expected)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as handle:
            handle.write(text)

    @staticmethod
    def remove(path, expected):
        assert f.read_bytes(path) == expected
        os.unlink(path)


def run_ensure_with(host, modules, check_mode=False, persist=True, fail=()):
    recorder = Recorder(host, fail)
    result = km.ensure(host.kernel(), km.parse_requests(modules), persist, "kubeforge.conf", check_mode, recorder.load, recorder.write, recorder.remove)
    return result, recorder


def run_ensure(host, modules, **kwargs):
    return run_ensure_with(host, modules, **kwargs)[0]


def test_ensure_loads_and_persists_then_is_idempotent(host):
    host.load("overlay")
    host.builtin("nf_conntrack")
    host.installable("br_netfilter")
    modules = ["overlay", "br_netfilter", "nf_conntrack", {"name": "ip_vs", "required": False}]
    result, recorder = run_ensure_with(host, modules)
    assert result.failures == []
    assert recorder.loads == [("br_netfilter", "")]
    assert result.changed is True
    assert {m["name"]: (m["status"], m["action"], m["present"]) for m in result.modules} == {
        "overlay": ("loaded", "none", True),
        "br_netfilter": ("loadable", "loaded", True),
        "nf_conntrack": ("builtin", "none", True),
        "ip_vs": ("missing", "none", False),
    }
    assert len(result.warnings) == 1 and result.warnings[0].startswith("optional kernel module ip_vs is missing on kernel " + RELEASE)
    # Built-in nf_conntrack and missing ip_vs are not listed; the options file is not needed.
    load_file = host.root / "etc" / "modules-load.d" / "kubeforge.conf"
    assert km.parse_load_file(load_file.read_text()) == ["overlay", "br_netfilter"]
    assert load_file.read_text().startswith("# Managed by kubeforge.cluster.kernel_modules")
    assert not (host.root / "etc" / "modprobe.d" / "kubeforge.conf").exists()
    assert result.diff[0]["before"] == "" and "br_netfilter\n" in result.diff[0]["after"]

    again, recorder = run_ensure_with(host, modules)
    assert again.changed is False
    assert recorder.loads == []
    assert again.diff == []
    assert {m["name"]: m["status"] for m in again.modules}["br_netfilter"] == "loaded"


def test_persist_compares_data_not_text(host):
    host.load("overlay")
    load_file = host.root / "etc" / "modules-load.d" / "kubeforge.conf"
    load_file.parent.mkdir(parents=True)
    load_file.write_text("; edited by hand\n\n  overlay  \n")
    result = run_ensure(host, ["overlay"])
    assert result.changed is False
    assert load_file.read_text() == "; edited by hand\n\n  overlay  \n"


def test_persist_removes_stale_entries_and_writes_options(host):
    host.load("overlay")
    host.installable("nf_conntrack")
    load_file = host.root / "etc" / "modules-load.d" / "kubeforge.conf"
    load_file.parent.mkdir(parents=True)
    load_file.write_text("overlay\nip_vs\n")
    result, recorder = run_ensure_with(host, ["overlay", {"name": "nf_conntrack", "params": "hashsize=1024"}])
    assert recorder.loads == [("nf_conntrack", "hashsize=1024")]
    assert km.parse_load_file(load_file.read_text()) == ["overlay", "nf_conntrack"]
    options = host.root / "etc" / "modprobe.d" / "kubeforge.conf"
    assert km.parse_options_file(options.read_text()) == {"nf_conntrack": "hashsize=1024"}
    assert result.files == {"/etc/modules-load.d/kubeforge.conf": "write", "/etc/modprobe.d/kubeforge.conf": "write"}


def test_nothing_to_persist_removes_own_file(monolithic):
    load_file = monolithic.root / "etc" / "modules-load.d" / "kubeforge.conf"
    load_file.parent.mkdir(parents=True)
    load_file.write_text("br_netfilter\n")
    result = run_ensure(monolithic, ["overlay", "br_netfilter"])
    assert result.changed is True
    assert not load_file.exists()
    assert result.persisted == []


def test_check_mode_changes_nothing(host):
    host.installable("br_netfilter")
    result, recorder = run_ensure_with(host, ["br_netfilter"], check_mode=True)
    assert result.changed is True
    assert recorder.loads == []
    assert result.modules[0]["action"] == "would load"
    assert result.modules[0]["present"] is False
    assert result.files == {"/etc/modules-load.d/kubeforge.conf": "write", "/etc/modprobe.d/kubeforge.conf": "none"}
    assert "br_netfilter\n" in result.diff[0]["after"]
    assert not (host.root / "etc").exists()
    assert "br_netfilter" not in (host.root / "proc" / "modules").read_text()


def test_monolithic_kernel_required_builtins_pass_and_ipvs_fails(monolithic):
    result, recorder = run_ensure_with(monolithic, ["overlay", "br_netfilter", {"name": "ip_vs", "reason": "kube-proxy ipvs mode"}])
    assert recorder.loads == []
    assert [m["status"] for m in result.modules] == ["builtin", "builtin", "missing"]
    expected = (
        "kernel module ip_vs (needed for kube-proxy ipvs mode) is missing on kernel 6.18.44-fc: not built into kernel 6.18.44-fc, "
        "which has no module support (/proc/modules absent). Fix: boot a kernel that has ip_vs built in (CONFIG_IP_VS=y), "
        "or one with module support that ships it"
    )
    assert result.failures == [expected]
    assert result.changed is False
    assert not (monolithic.root / "etc").exists()


def test_optional_missing_only_warns(monolithic):
    result = run_ensure(monolithic, ["overlay", {"name": "ip_vs", "required": False}])
    assert result.failures == []
    assert result.warnings and "ip_vs" in result.warnings[0]
    assert result.changed is False


def test_required_missing_on_module_kernel_names_fix(host):
    result = run_ensure(host, [{"name": "ip_vs", "reason": "kube-proxy ipvs mode"}])
    (message,) = result.failures
    assert message.startswith("kernel module ip_vs (needed for kube-proxy ipvs mode) is missing on kernel %s" % RELEASE)
    assert "install the modules package for kernel %s" % RELEASE in message


def test_failed_load_of_required_module_fails_without_writing(host):
    host.installable("ip_vs")
    result, recorder = run_ensure_with(host, [{"name": "ip_vs", "reason": "ipvs"}], fail=("ip_vs",))
    assert recorder.loads == [("ip_vs", "")]
    assert result.failures == [
        "required kernel module ip_vs (needed for ipvs) could not be loaded: modprobe ip_vs failed on kernel %s: "
        "modprobe: ERROR: could not insert 'ip_vs': Operation not permitted" % RELEASE
    ]
    assert not (host.root / "etc").exists()


def test_failed_load_of_optional_module_warns_and_is_not_persisted(host):
    host.load("overlay")
    host.installable("ip_vs")
    result = run_ensure(host, ["overlay", {"name": "ip_vs", "required": False}], fail=("ip_vs",))
    assert result.failures == []
    assert result.modules[1]["action"] == "load failed"
    assert result.persisted == ["overlay"]
    assert "optional modprobe ip_vs failed" in result.warnings[0]


def test_persist_false_touches_no_file(host):
    host.installable("br_netfilter")
    result, recorder = run_ensure_with(host, ["br_netfilter"], persist=False)
    assert recorder.loads == [("br_netfilter", "")]
    assert result.files == {}
    assert not (host.root / "etc").exists()


def test_persist_files_are_checked_before_anything_is_loaded(host):
    host.installable("br_netfilter")
    masked = host.root / "etc" / "modprobe.d" / "kubeforge.conf"
    masked.parent.mkdir(parents=True)
    masked.symlink_to("/dev/null")
    with pytest.raises(f.ManagedFileError, match="which is not a regular file"):
        run_ensure_with(host, ["br_netfilter"])
    assert "br_netfilter" not in (host.root / "proc" / "modules").read_text()
    assert not (host.root / "etc" / "modules-load.d").exists()


def test_symlinked_persist_file_is_followed(host):
    host.load("overlay")
    real = host.root / "managed-modules.conf"
    real.write_text("ip_vs\n")
    link = host.root / "etc" / "modules-load.d" / "kubeforge.conf"
    link.parent.mkdir(parents=True)
    link.symlink_to(real)
    result = run_ensure(host, ["overlay"])
    assert result.files["/etc/modules-load.d/kubeforge.conf"] == "write"
    assert link.is_symlink() and km.parse_load_file(real.read_text()) == ["overlay"]


def test_non_utf8_persist_file_is_named(host):
    host.load("overlay")
    path = host.root / "etc" / "modules-load.d" / "kubeforge.conf"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"overlay\n\xfe\n")
    with pytest.raises(f.ManagedFileError, match="kubeforge.conf is not UTF-8 text \\(byte 0xfe at offset 8\\)"):
        run_ensure(host, ["overlay"])
