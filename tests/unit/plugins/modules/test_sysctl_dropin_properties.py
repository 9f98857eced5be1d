# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Properties of kubeforge.cluster.sysctl_dropin over generated keys, values, paths and files (hypothesis).

Each example runs main() in a throwaway root (a fake /proc/sys and /etc/sysctl.d) with a decoy file holding a
generated secret beside the root, and checks:

* nothing outside the root is opened, listed or written (audit hook), so the decoy is never read;
* the decoy's secret appears in no result;
* a failure leaves the drop-in and every /proc/sys value byte-identical, and its message names the option
  (path, settings, raise_only) or the settings key it is about;
* a success leaves the running values and the file exactly as the result says.
"""

from __future__ import annotations

import os

from hypothesis import given
from hypothesis import strategies as st
from module_harness import ExitJson, FailJson, call_main
from properties import PROPERTY, Counter, any_value, audit, hostile_word, mostly, outside, throwaway_root, tree_snapshot
from ansible_collections.kubeforge.cluster.plugins.module_utils import _sysctl_dropin as sd
from ansible_collections.kubeforge.cluster.plugins.modules import sysctl_dropin

PROC = {
    ("vm", "swappiness"): "60",
    ("net", "ipv4", "ip_forward"): "0",
    ("net", "ipv4", "conf", "eth0.100", "forwarding"): "0",
    ("kernel", "panic"): "0",
    ("fs", "inotify", "max_user_watches"): "8192",
}
REAL_KEYS = [".".join(c.replace(".", "/") for c in parts) for parts in PROC] + ["/".join(parts) for parts in PROC]
# Keys that try to leave /proc/sys: from <root>/proc/sys, "../../../outside/secret" is the decoy.
TRAVERSAL = st.lists(st.sampled_from(["..", ".", "outside", "secret", "proc", "sys", "net", ""]), min_size=1, max_size=6).flatmap(
    lambda parts: st.sampled_from(["/".join(parts), ".".join(parts), ".".join(p.replace(".", "/") for p in parts)]))
keys = mostly(st.sampled_from(REAL_KEYS),
              st.one_of(TRAVERSAL, hostile_word, st.sampled_from(["net.bridge.bridge-nf-call-iptables", "net.ipv4"])), 6)
values = mostly(st.one_of(st.integers(0, 10**6), st.booleans(), st.sampled_from(["1", "10 20", "-1", [1, "2"]])), any_value, 6)
settings = st.dictionaries(keys, values, max_size=4)
existing = st.sampled_from(["none", "none", "ours", "ours", "hand-edited", "link", "not-utf8", "masked"])
dropin_names = mostly(st.sampled_from(["99-kubeforge.conf", "x.conf"]),
                      st.one_of(st.sampled_from(["99-kubeforge", "../99-x.conf", "", ".conf", "sub/../99.conf"]), hostile_word), 6)


def build(base, secret, state, name, relative):
    root = os.path.join(base, "root")
    for parts, value in PROC.items():
        path = os.path.join(root, "proc", "sys", *parts)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as handle:
            handle.write(value + "\n")
    dropin_dir = os.path.join(root, "etc", "sysctl.d")
    os.makedirs(dropin_dir)
    os.makedirs(os.path.join(base, "outside"))
    with open(os.path.join(base, "outside", "secret"), "w") as handle:
        handle.write(secret + "\n")
    dropin = os.path.join(dropin_dir, "99-kubeforge.conf")
    if state == "ours":
        with open(dropin, "w") as handle:
            handle.write(sd.render({"vm.swappiness": "60"}))
    elif state == "hand-edited":
        with open(dropin, "w") as handle:
            handle.write("# mine\nvm.swappiness = 61\nnet.ipv4.conf.*.rp_filter = 2\n")
    elif state == "not-utf8":
        with open(dropin, "wb") as handle:
            handle.write(b"vm.swappiness = \xff\n")
    elif state == "masked":
        os.symlink("/dev/null", dropin)
    elif state == "link":
        with open(os.path.join(root, "etc", "managed.conf"), "w") as handle:
            handle.write("kernel.panic = 0\n")
        os.symlink(os.path.join(root, "etc", "managed.conf"), dropin)
    path = name if relative else os.path.join(dropin_dir, name)
    return root, path


def names_its_option(msg, settings):
    if msg.startswith(("path:", "settings", "raise_only")):
        return True
    canonical = set()
    for key in settings:
        try:
            canonical.add(sd.canonical_key(key))
        except (sd.InputError, TypeError):
            continue
    return any(key in msg for key in canonical) or "was changed by someone else" in msg or "is not UTF-8 text" in msg \
        or "is a symlink to" in msg


def test_sysctl_dropin_never_leaves_its_root_and_fails_cleanly(monkeypatch):
    counter = Counter("sysctl_dropin: generated keys, values, raise_only, paths and drop-in files")

    @PROPERTY
    @given(settings=settings, raise_only=mostly(st.just([]), st.lists(mostly(st.sampled_from(REAL_KEYS), hostile_word), max_size=2)),
           state=existing, name=dropin_names, relative=mostly(st.just(False), st.just(True), 9), check_mode=st.booleans(),
           apply=mostly(st.just(True), st.just(False)),
           secret=st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZ23456789", min_size=16, max_size=24))
    def prop(settings, raise_only, state, name, relative, check_mode, apply, secret):
        with throwaway_root("kf-prop-sysctl-") as base:
            root, path = build(base, secret, state, name, relative and not name.startswith("/"))
            monkeypatch.setattr(sysctl_dropin, "PROC_SYS", os.path.join(root, "proc", "sys"))
            monkeypatch.setattr(sysctl_dropin, "ROOT", root)
            before = tree_snapshot(root)
            args = {"path": path, "settings": settings, "raise_only": raise_only, "apply": apply}
            with audit() as events:
                kind, result = call_main(sysctl_dropin.main, args, check_mode=check_mode, diff=True)
            counter(kind is FailJson)
            assert outside(events, root) == [], (args, outside(events, root))
            assert secret not in repr(result)
            after = tree_snapshot(root)
            if kind is FailJson or check_mode:
                assert after == before, (args, result)
            if kind is FailJson:
                assert names_its_option(result["msg"], settings), result["msg"]
                assert result.get("applied", {}) == {}
                return
            assert kind is ExitJson
            proc = {k: v for k, v in after.items() if k.startswith("proc")}
            if not check_mode:
                for key, value in result["settings"].items():
                    if apply:
                        assert sd.read_runtime(os.path.join(root, "proc", "sys"), sd.parse_key("k", key)) == value
                text = sd.parse_conf(open(os.path.realpath(result["path"]), encoding="utf-8").read())
                assert text == result["settings"]
                if not apply:
                    assert proc == {k: v for k, v in before.items() if k.startswith("proc")}

    prop()
    counter.report()
