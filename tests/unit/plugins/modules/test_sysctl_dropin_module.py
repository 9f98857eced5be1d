# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""kubeforge.cluster.sysctl_dropin main(): check mode -> apply -> re-apply -> diff -> errors, on a fake /proc/sys."""

from __future__ import annotations

import errno
import os

import pytest
from module_harness import ExitJson, FailJson, call_main
from ansible_collections.kubeforge.cluster.plugins.module_utils import _sysctl_dropin as sd
from ansible_collections.kubeforge.cluster.plugins.modules import sysctl_dropin


@pytest.fixture
def host(tmp_path, monkeypatch):
    values = {
        "net.ipv4.ip_forward": "0",
        "net.bridge.bridge-nf-call-iptables": "0",
        "fs.inotify.max_user_watches": "1048576",
        "fs.inotify.max_user_instances": "128",
        "vm.overcommit_memory": "0",
    }
    proc = tmp_path / "proc" / "sys"
    for key, value in values.items():
        path = sd.proc_path(str(proc), key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as handle:
            handle.write(value + "\n")
    (tmp_path / "etc" / "sysctl.d").mkdir(parents=True)
    monkeypatch.setattr(sysctl_dropin, "PROC_SYS", str(proc))
    monkeypatch.setattr(sysctl_dropin, "ROOT", str(tmp_path))
    return tmp_path


def run(args, check_mode=False, diff=False):
    return call_main(sysctl_dropin.main, args, check_mode=check_mode, diff=diff)


def run_ok(args, **kwargs):
    kind, result = run(args, **kwargs)
    assert kind is ExitJson, result
    return result


def runtime(host, key):
    return sd.read_runtime(str(host / "proc" / "sys"), key)


def args_for(host):
    return {
        "path": str(host / "etc" / "sysctl.d" / "99-kubeforge.conf"),
        "settings": {
            "net.ipv4.ip_forward": 1,
            "net.bridge.bridge-nf-call-iptables": True,
            "fs.inotify.max_user_watches": 524288,
            "fs.inotify.max_user_instances": 8192,
            "vm.overcommit_memory": 1,
        },
        "raise_only": ["fs.inotify.max_user_watches", "fs.inotify.max_user_instances"],
    }


def test_check_apply_reapply(host):
    args = args_for(host)
    dropin = host / "etc" / "sysctl.d" / "99-kubeforge.conf"

    kind, result = run(args, check_mode=True, diff=True)
    assert kind is ExitJson
    assert result["changed"] is True
    assert not dropin.exists()
    assert runtime(host, "net.ipv4.ip_forward") == "0"
    assert result["applied"] == {
        "net.ipv4.ip_forward": {"before": "0", "after": "1"},
        "net.bridge.bridge-nf-call-iptables": {"before": "0", "after": "1"},
        "fs.inotify.max_user_instances": {"before": "128", "after": "8192"},
        "vm.overcommit_memory": {"before": "0", "after": "1"},
    }
    assert result["kept"] == {"fs.inotify.max_user_watches": {"wanted": "524288", "current": "1048576"}}
    file_diff, runtime_diff = result["diff"]
    assert "fs.inotify.max_user_watches = 1048576\n" in file_diff["after"]
    assert runtime_diff["before"].startswith("net.ipv4.ip_forward = 0\n")

    kind, result = run(args)
    assert kind is ExitJson and result["changed"] is True and result["file_changed"] is True
    assert runtime(host, "net.ipv4.ip_forward") == "1"
    assert runtime(host, "fs.inotify.max_user_watches") == "1048576"  # never lowered
    assert runtime(host, "fs.inotify.max_user_instances") == "8192"
    assert sd.parse_conf(dropin.read_text()) == {
        "net.ipv4.ip_forward": "1",
        "net.bridge.bridge-nf-call-iptables": "1",
        "fs.inotify.max_user_watches": "1048576",
        "fs.inotify.max_user_instances": "8192",
        "vm.overcommit_memory": "1",
    }
    assert oct(dropin.stat().st_mode & 0o777) == "0o644"

    kind, result = run(args, diff=True)
    assert kind is ExitJson
    assert result["changed"] is False
    assert result["applied"] == {}
    assert "diff" not in result
    result = run_ok(args, check_mode=True)
    assert result["changed"] is False


def test_runtime_drift_is_reapplied_without_rewriting_file(host):
    args = args_for(host)
    run(args)
    dropin = host / "etc" / "sysctl.d" / "99-kubeforge.conf"
    mtime = dropin.stat().st_mtime_ns
    sd.write_runtime(str(host / "proc" / "sys"), "net.ipv4.ip_forward", "0")
    result = run_ok(args, diff=True)
    assert result["changed"] is True and result["file_changed"] is False
    assert result["applied"] == {"net.ipv4.ip_forward": {"before": "0", "after": "1"}}
    assert [d["before_header"] for d in result["diff"]] == ["running kernel (%s)" % (host / "proc" / "sys")]
    assert dropin.stat().st_mtime_ns == mtime


def test_comment_only_edit_is_no_change_and_backup_on_real_change(host):
    args = args_for(host)
    run(args)
    dropin = host / "etc" / "sysctl.d" / "99-kubeforge.conf"
    dropin.write_text("# hand edit\n" + dropin.read_text())
    result = run_ok(args)
    assert result["changed"] is False
    args["settings"]["vm.overcommit_memory"] = 2
    result = run_ok(dict(args, backup=True))
    assert result["changed"] is True
    with open(result["backup_file"]) as handle:
        assert handle.read().startswith("# hand edit\n")
    assert runtime(host, "vm.overcommit_memory") == "2"


def test_missing_key_fails_but_only_warns_in_check_mode(host, module_exits):
    args = {"path": str(host / "etc" / "sysctl.d" / "99-kubeforge.conf"), "settings": {"net.bridge.bridge-nf-call-ip6tables": 1}}
    kind, result = run(args, check_mode=True)
    assert kind is ExitJson and result["changed"] is True
    assert result["warnings"][0].startswith("the running kernel has no sysctl net.bridge.bridge-nf-call-ip6tables")
    kind, result = run(args)
    assert kind is FailJson
    assert "net.bridge.* keys appear when br_netfilter is loaded" in result["msg"]
    assert not (host / "etc" / "sysctl.d" / "99-kubeforge.conf").exists()


def test_read_only_proc_sys_fails_with_fix_and_writes_no_file(host, monkeypatch):
    real_open = open
    proc = str(host / "proc" / "sys")

    def read_only(path, mode="r", *args, **kwargs):
        if "w" in mode and str(path).startswith(proc):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), path)
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", read_only)
    kind, result = run(args_for(host))
    assert kind is FailJson
    assert result["msg"].startswith("cannot set net.ipv4.ip_forward = 1: %s/net/ipv4/ip_forward is read-only here (Read-only file system)" % proc)
    assert "run the machine with a writable /proc/sys" in result["msg"]
    assert not (host / "etc" / "sysctl.d" / "99-kubeforge.conf").exists()


def test_apply_false_only_writes_file(host):
    args = dict(args_for(host), apply=False)
    result = run_ok(args)
    assert result["changed"] is True and result["applied"] == {}
    assert runtime(host, "net.ipv4.ip_forward") == "0"


def test_later_file_warning(host, module_exits):
    (host / "etc" / "sysctl.d" / "99-zz-local.conf").write_text("net.ipv4.ip_forward = 0\n")
    result = run_ok(args_for(host))
    assert any(w.startswith("/etc/sysctl.d/99-zz-local.conf sets net.ipv4.ip_forward = 0 and is read after") for w in result["warnings"])


def test_state_absent_removes_file(host):
    run(args_for(host))
    path = args_for(host)["path"]
    result = run_ok({"path": path, "state": "absent"}, check_mode=True)
    assert result["changed"] is True and os.path.exists(path)
    result = run_ok({"path": path, "state": "absent"})
    assert result["changed"] is True and not os.path.exists(path)
    result = run_ok({"path": path, "state": "absent"})
    assert result["changed"] is False


def test_bad_raise_only(host):
    kind, result = run(dict(args_for(host), raise_only=["kernel.panic"]))
    assert kind is FailJson
    assert result["msg"].startswith("raise_only[0]: names kernel.panic, which is not in settings")


def test_key_that_walks_out_of_proc_sys_reads_nothing(host):
    """The issue's report: a key whose components became '..' made check mode return another file as applied.before."""
    secret = host / "etc" / "secret"
    secret.write_text("s3cret\n")
    for hostile in ("net/../../../etc/secret", "net.//.//.//.etc.secret", "..", "net.ipv4/../../secret"):
        args = {"path": str(host / "etc" / "sysctl.d" / "99-kubeforge.conf"), "settings": {hostile: 1}}
        kind, result = run(args, check_mode=True)
        assert kind is FailJson
        assert result["msg"].startswith("settings key %r: %r is not a sysctl key" % (hostile, hostile))
        assert "s3cret" not in repr(result)
    assert secret.read_text() == "s3cret\n"
    assert not (host / "etc" / "sysctl.d" / "99-kubeforge.conf").exists()


def test_vlan_keys_in_both_spellings(host):
    proc = host / "proc" / "sys" / "net" / "ipv4" / "conf" / "eth0.100"
    proc.mkdir(parents=True)
    (proc / "forwarding").write_text("0\n")
    args = {"path": str(host / "etc" / "sysctl.d" / "99-kubeforge.conf"), "settings": {"net/ipv4/conf/eth0.100/forwarding": 1}}
    result = run_ok(args)
    assert result["applied"] == {"net.ipv4.conf.eth0/100.forwarding": {"before": "0", "after": "1"}}
    assert (proc / "forwarding").read_text() == "1\n"
    assert "net.ipv4.conf.eth0/100.forwarding = 1\n" in (host / "etc" / "sysctl.d" / "99-kubeforge.conf").read_text()
    again = run_ok({"path": args["path"], "settings": {"net.ipv4.conf.eth0/100.forwarding": "1"}})
    assert again["changed"] is False


@pytest.mark.parametrize("path, problem", [
    ("etc/sysctl.d/99-kubeforge.conf", "path: must be an absolute path (starting with /), got 'etc/sysctl.d/99-kubeforge.conf'"),
    ("/etc/sysctl.d/99-kubeforge", "path: drop-in file name '99-kubeforge' must end with .conf"),
    ("/etc/sysctl.d/../99-x.conf", "path: must not contain '..' components"),
])
def test_path_policy(host, path, problem):
    kind, result = run({"path": path, "settings": {"vm.overcommit_memory": 1}})
    assert kind is FailJson and result["msg"].startswith(problem), result["msg"]


def test_symlinked_dropin_is_followed_and_dev_null_refused(host):
    real = host / "managed.conf"
    real.write_text("vm.overcommit_memory = 0\n")
    link = host / "etc" / "sysctl.d" / "99-kubeforge.conf"
    link.symlink_to(real)
    result = run_ok({"path": str(link), "settings": {"vm.overcommit_memory": 1}})
    assert result["file_changed"] is True
    assert link.is_symlink() and sd.parse_conf(real.read_text()) == {"vm.overcommit_memory": "1"}
    masked = host / "etc" / "sysctl.d" / "50-masked.conf"
    masked.symlink_to("/dev/null")
    kind, result = run({"path": str(masked), "settings": {"vm.overcommit_memory": 1}})
    assert kind is FailJson and "which is not a regular file (a link to /dev/null masks a file)" in result["msg"]
    assert runtime(host, "vm.overcommit_memory") == "1"  # set by the first run, untouched by the refused one
    assert masked.is_symlink()


def test_non_utf8_dropin_names_the_file(host):
    dropin = host / "etc" / "sysctl.d" / "99-kubeforge.conf"
    dropin.write_bytes(b"vm.overcommit_memory = \xff\n")
    kind, result = run({"path": str(dropin), "settings": {"vm.overcommit_memory": 1}})
    assert kind is FailJson
    assert result["msg"] == "%s is not UTF-8 text (byte 0xff at offset 23); fix or remove the file" % dropin
    assert runtime(host, "vm.overcommit_memory") == "0"


def test_failure_part_way_restores_and_reports_nothing_applied(host):
    args = {"path": str(host / "etc" / "sysctl.d" / "99-kubeforge.conf"),
            "settings": {"net.ipv4.ip_forward": 1, "vm.overcommit_memory": 1, "net.bridge.bridge-nf-call-ip6tables": 1}}
    kind, result = run(args)
    assert kind is FailJson
    assert result["msg"].startswith("cannot set net.bridge.bridge-nf-call-ip6tables: the running kernel has no such key")
    assert result["msg"].endswith("Restored the values set before the failure: vm.overcommit_memory = 0, net.ipv4.ip_forward = 0")
    assert result["applied"] == {}
    assert runtime(host, "net.ipv4.ip_forward") == "0" and runtime(host, "vm.overcommit_memory") == "0"
    assert not (host / "etc" / "sysctl.d" / "99-kubeforge.conf").exists()


def test_file_changed_underneath_is_not_overwritten_and_runtime_restored(host, monkeypatch):
    dropin = host / "etc" / "sysctl.d" / "99-kubeforge.conf"
    dropin.write_text("vm.overcommit_memory = 0\n")
    real_apply = sysctl_dropin.apply_all

    def apply_then_someone_writes(*args, **kwargs):
        real_apply(*args, **kwargs)
        dropin.write_text("# another writer\nvm.overcommit_memory = 2\n")

    monkeypatch.setattr(sysctl_dropin, "apply_all", apply_then_someone_writes)
    kind, result = run({"path": str(dropin), "settings": {"vm.overcommit_memory": 1}})
    assert kind is FailJson
    assert result["msg"].startswith("%s was changed by someone else while this task worked on it; nothing was written" % dropin)
    assert result["msg"].endswith("Restored the values set before the failure: vm.overcommit_memory = 0")
    assert dropin.read_text() == "# another writer\nvm.overcommit_memory = 2\n"
    assert runtime(host, "vm.overcommit_memory") == "0"
