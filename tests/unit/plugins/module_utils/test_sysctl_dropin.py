# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""sysctl drop-in logic against a fake /proc/sys tree."""

from __future__ import annotations

import errno
import os

import pytest
from ansible_collections.kubeforge.cluster.plugins.module_utils import _sysctl_dropin as sd


def key(text):
    return sd.parse_key("key", text)


def make_proc(root, values):
    for name, value in values.items():
        path = sd.proc_path(str(root), name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as handle:
            handle.write(value + "\n")
    return str(root)


@pytest.mark.parametrize(
    "key, canonical, relpath",
    [
        ("net.ipv4.ip_forward", "net.ipv4.ip_forward", "net/ipv4/ip_forward"),
        ("net/ipv4/ip_forward", "net.ipv4.ip_forward", "net/ipv4/ip_forward"),
        ("net/ipv4/conf/eth0.100/forwarding", "net.ipv4.conf.eth0/100.forwarding", "net/ipv4/conf/eth0.100/forwarding"),
        ("net.ipv4.conf.eth0/100.forwarding", "net.ipv4.conf.eth0/100.forwarding", "net/ipv4/conf/eth0.100/forwarding"),
        (" net.bridge.bridge-nf-call-iptables ", "net.bridge.bridge-nf-call-iptables", "net/bridge/bridge-nf-call-iptables"),
    ],
)
def test_keys(key, canonical, relpath):
    assert sd.canonical_key(key) == canonical
    assert sd.proc_path("/proc/sys", key) == "/proc/sys/" + relpath


@pytest.mark.parametrize("key", [
    "net/../../etc/shadow", "net.//.//.etc.shadow", "net.ipv4/..", "net..ipv4", "/net/ipv4/ip_forward", "net/ipv4/",
    "../etc", "..", ".", "-net.ipv4.ip_forward", "net.ipv4.conf.*.rp_filter", "net ipv4", "net.ipv4.\x00", "",
    "net.ipv4.conf.eth0/../forwarding", "kernel.core_pattern\nkernel.x",
])
def test_keys_that_could_leave_proc_sys_are_refused(key):
    with pytest.raises(sd.InputError, match="^settings key: "):
        sd.parse_key("settings key", key)


@pytest.mark.parametrize(
    "value, expected",
    [(1, "1"), (True, "1"), (False, "0"), ("32768\t60999", "32768 60999"), ([4096, 87380, "6291456"], "4096 87380 6291456")],
)
def test_normalize_value(value, expected):
    assert sd.normalize_value("settings", value) == expected


@pytest.mark.parametrize("value, problem", [
    (None, "must be a string, an integer, a bool or a list of those, got null"),
    (1.5, "got a float (write it as a string or an integer)"),
    ({"a": 1}, "got a dict"),
    ([[1, 2]], "must be a list of strings or integers, not of lists"),
    ("1\nkernel.core_pattern = |/tmp/x", "contains the control character"),
    ("   ", "has no value"),
    ([], "has no value"),
])
def test_values_are_not_stringified(value, problem):
    with pytest.raises(sd.InputError) as caught:
        sd.normalize_value("settings['vm.swappiness']", value)
    assert str(caught.value).startswith("settings['vm.swappiness']")
    assert problem in str(caught.value)


def test_parse_conf_handles_comments_prefix_and_last_wins():
    text = "# comment\n; other\n\nnet.ipv4.ip_forward=0\n-net.bridge.bridge-nf-call-iptables = 1\nnet/ipv4/ip_forward = 1\nnot a setting\n"
    assert sd.parse_conf(text) == {"net.ipv4.ip_forward": "1", "net.bridge.bridge-nf-call-iptables": "1"}


def test_render_round_trips():
    settings = {"net.ipv4.ip_forward": "1", "net.ipv4.ip_local_port_range": "1024 65000"}
    text = sd.render(settings)
    assert text.startswith(sd.HEADER)
    assert sd.parse_conf(text) == settings


def test_validate_and_errors():
    wanted, components, raise_keys = sd.validate(
        {"net.ipv4.ip_forward": True, "fs/inotify/max_user_watches": 524288}, ["fs.inotify.max_user_watches"])
    assert wanted == {"net.ipv4.ip_forward": "1", "fs.inotify.max_user_watches": "524288"}
    assert components["fs.inotify.max_user_watches"] == ("fs", "inotify", "max_user_watches")
    assert raise_keys == {"fs.inotify.max_user_watches"}
    with pytest.raises(sd.InputError, match="^raise_only\\[0\\]: names vm.max_map_count, which is not in settings"):
        sd.validate({"net.ipv4.ip_forward": 1}, ["vm.max_map_count"])
    with pytest.raises(sd.InputError, match="^raise_only\\[0\\]: net.ipv4.ip_local_port_range = '1024 65000' is not a single integer"):
        sd.validate({"net.ipv4.ip_local_port_range": "1024 65000"}, ["net.ipv4.ip_local_port_range"])
    with pytest.raises(sd.InputError, match="^settings\\['vm.swappiness'\\]: must be a string"):
        sd.validate({"vm.swappiness": None}, [])
    with pytest.raises(sd.InputError, match="^settings key 'net ipv4': 'net ipv4' is not a sysctl key"):
        sd.validate({"net ipv4": 1}, [])
    with pytest.raises(sd.InputError, match="^settings key 'net/ipv4/ip_forward': is net.ipv4.ip_forward, which settings already sets"):
        sd.validate({"net.ipv4.ip_forward": 1, "net/ipv4/ip_forward": 0}, [])
    with pytest.raises(sd.InputError, match="^settings key 1: must be a string, got an integer"):
        sd.validate({1: 1}, [])


def test_raise_only_keeps_higher_running_value_and_raises_lower():
    wanted = {"fs.inotify.max_user_watches": "524288", "fs.inotify.max_user_instances": "8192", "vm.overcommit_memory": "1"}
    runtime = {"fs.inotify.max_user_watches": "1048576", "fs.inotify.max_user_instances": "128", "vm.overcommit_memory": "2"}
    effective, kept = sd.plan(wanted, {"fs.inotify.max_user_watches", "fs.inotify.max_user_instances"}, runtime)
    assert effective == {"fs.inotify.max_user_watches": "1048576", "fs.inotify.max_user_instances": "8192", "vm.overcommit_memory": "1"}
    assert kept == {"fs.inotify.max_user_watches": {"wanted": "524288", "current": "1048576"}}


def test_plan_without_raise_only_sets_exact_value():
    effective, kept = sd.plan({"kernel.panic": "10"}, set(), {"kernel.panic": "60"})
    assert effective == {"kernel.panic": "10"}
    assert kept == {}


def test_runtime_read_write(tmp_path):
    proc = make_proc(tmp_path, {"net.ipv4.ip_forward": "0", "net.ipv4.ip_local_port_range": "32768\t60999"})
    assert sd.read_runtime(proc, key("net.ipv4.ip_forward")) == "0"
    assert sd.read_runtime(proc, key("net.ipv4.ip_local_port_range")) == "32768 60999"
    assert sd.read_runtime(proc, key("net.bridge.bridge-nf-call-iptables")) is None
    sd.write_runtime(proc, key("net.ipv4.ip_forward"), "1")
    assert sd.read_runtime(proc, key("net.ipv4.ip_forward")) == "1"
    with pytest.raises(sd.SysctlError, match="^net.ipv4 is a group of sysctl keys"):
        sd.read_runtime(proc, key("net.ipv4"))


def test_write_missing_key_explains_br_netfilter(tmp_path):
    proc = make_proc(tmp_path, {"net.ipv4.ip_forward": "0"})
    with pytest.raises(sd.SysctlError) as caught:
        sd.write_runtime(proc, key("net.bridge.bridge-nf-call-iptables"), "1")
    assert str(caught.value) == (
        "cannot set net.bridge.bridge-nf-call-iptables: the running kernel has no such key (%s/net/bridge/bridge-nf-call-iptables does not exist); "
        "net.bridge.* keys appear when br_netfilter is loaded (run kubeforge.cluster.kernel_modules first)" % proc
    )


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES])
def test_write_read_only_proc_sys_names_key_and_fix(tmp_path, monkeypatch, code):
    proc = make_proc(tmp_path, {"vm.overcommit_memory": "0"})
    real_open = open

    def fake_open(path, mode="r", *args, **kwargs):
        if "w" in mode and str(path).startswith(proc):
            raise OSError(code, os.strerror(code), path)
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", fake_open)
    with pytest.raises(sd.SysctlError) as caught:
        sd.write_runtime(proc, key("vm.overcommit_memory"), "1")
    message = str(caught.value)
    assert message.startswith("cannot set vm.overcommit_memory = 1: %s/vm/overcommit_memory is read-only here" % proc)
    assert "run the machine with a writable /proc/sys" in message


def test_boot_overrides_finds_later_files(tmp_path):
    (tmp_path / "etc" / "sysctl.d").mkdir(parents=True)
    (tmp_path / "usr" / "lib" / "sysctl.d").mkdir(parents=True)
    own = tmp_path / "etc" / "sysctl.d" / "90-kubeforge.conf"
    own.write_text("net.ipv4.ip_forward = 1\n")
    (tmp_path / "etc" / "sysctl.d" / "10-early.conf").write_text("net.ipv4.ip_forward = 0\n")
    (tmp_path / "usr" / "lib" / "sysctl.d" / "99-late.conf").write_text("net.ipv4.ip_forward = 0\nvm.swappiness = 1\n")
    (tmp_path / "etc" / "sysctl.d" / "95-same.conf").write_text("net.ipv4.ip_forward = 1\n")
    found = sd.boot_overrides(str(tmp_path), str(own), {"net.ipv4.ip_forward": "1"})
    assert found == [("net.ipv4.ip_forward", "/usr/lib/sysctl.d/99-late.conf", "0")]
    # A file of the same name in /etc hides the one in /usr/lib.
    (tmp_path / "etc" / "sysctl.d" / "99-late.conf").write_text("# masked\n")
    assert sd.boot_overrides(str(tmp_path), str(own), {"net.ipv4.ip_forward": "1"}) == []


def test_apply_all_restores_what_it_set_when_a_later_key_fails(tmp_path):
    proc = make_proc(tmp_path, {"net.ipv4.ip_forward": "0", "vm.swappiness": "60"})
    components = {k: key(k) for k in ("net.ipv4.ip_forward", "vm.swappiness", "net.bridge.bridge-nf-call-iptables")}
    changes = {"net.ipv4.ip_forward": ("0", "1"), "vm.swappiness": ("60", "10"), "net.bridge.bridge-nf-call-iptables": ("0", "1")}
    with pytest.raises(sd.SysctlError) as caught:
        sd.apply_all(proc, changes, components)
    assert str(caught.value).startswith("cannot set net.bridge.bridge-nf-call-iptables: the running kernel has no such key")
    assert str(caught.value).endswith(". Restored the values set before the failure: vm.swappiness = 60, net.ipv4.ip_forward = 0")
    assert sd.read_runtime(proc, key("net.ipv4.ip_forward")) == "0"
    assert sd.read_runtime(proc, key("vm.swappiness")) == "60"


def test_parse_conf_skips_globs_and_keeps_vlan_keys():
    text = "net.ipv4.conf.*.rp_filter = 2\nnet/ipv4/conf/eth0.100/forwarding = 1\n../../etc/passwd = x\n"
    assert sd.parse_conf(text) == {"net.ipv4.conf.eth0/100.forwarding": "1"}
