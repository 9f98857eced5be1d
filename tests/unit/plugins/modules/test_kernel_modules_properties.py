# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Properties of kubeforge.cluster.kernel_modules over generated module names, params, flags and persist files.

Each example runs main() on a throwaway module-capable host tree with modprobe replaced by a recorder, and
a decoy file holding a generated secret beside the root. Checked:

* nothing outside the root is opened, listed or written (audit hook); the secret appears in no result;
* every modprobe command line has only modprobe's own ``-n -v`` as options, then ``--``, a module name of
  the kernel's grammar and parameter words of ``name=value`` form: nothing from input is an option;
* a failure leaves /etc (both persist files) byte-identical and names its option or its module.
(tests/integration/test_kernel_modules_modprobe.py runs the real modprobe on the same grammar.)
"""

from __future__ import annotations

import os
import re

from ansible.module_utils import basic
from hypothesis import given
from hypothesis import strategies as st
from module_harness import FailJson, call_main
from properties import PROPERTY, Counter, any_value, audit, hostile_word, mostly, outside, throwaway_root, tree_snapshot
from ansible_collections.kubeforge.cluster.plugins.module_utils import _kernel_modules as km
from ansible_collections.kubeforge.cluster.plugins.modules import kernel_modules

RELEASE = "6.1.0-26-amd64"
MODPROBE = "/usr/sbin/modprobe"
NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,54}$")
NAMES = ["overlay", "br_netfilter", "br-netfilter", "nf_conntrack", "ip_vs", "vxlan"]
params = mostly(st.one_of(st.sampled_from(["", "hashsize=1024", "a=-1 b=x,y", "fw=a/b.bin c="]),
                          st.dictionaries(st.sampled_from(["hashsize", "debug", "ids"]),
                                          st.one_of(st.integers(-5, 10**6), st.booleans(), st.lists(st.integers(0, 9), min_size=1, max_size=3)),
                                          max_size=2)),
                st.one_of(any_value, st.lists(hostile_word, max_size=3).map(" ".join),
                          st.dictionaries(hostile_word, any_value, max_size=2)), 4)
entry = st.one_of(
    st.sampled_from(NAMES),
    st.fixed_dictionaries({"name": st.sampled_from(NAMES)},
                          optional={"required": mostly(st.booleans(), any_value), "params": params,
                                    "reason": mostly(st.just("why"), any_value)}),
)
modules = mostly(st.lists(entry, min_size=1, max_size=4, unique_by=lambda e: (e if isinstance(e, str) else e["name"]).replace("-", "_")),
                 st.one_of(any_value, st.lists(st.one_of(entry, hostile_word, any_value), max_size=3)), 4)
persist_file = mostly(st.just("kubeforge.conf"), st.one_of(hostile_word, st.sampled_from(["kubeforge", "../x.conf", "-C.conf"])), 6)
existing = st.sampled_from(["none", "none", "ours", "hand-edited", "not-utf8", "masked"])


def build(base, secret, state):
    root = os.path.join(base, "root")
    os.makedirs(os.path.join(root, "proc", "sys", "kernel"))
    with open(os.path.join(root, "proc", "sys", "kernel", "osrelease"), "w") as handle:
        handle.write(RELEASE + "\n")
    with open(os.path.join(root, "proc", "modules"), "w") as handle:
        handle.write("overlay 151552 0 - Live 0x0\n")
    moddir = os.path.join(root, "lib", "modules", RELEASE)
    os.makedirs(moddir)
    with open(os.path.join(moddir, "modules.dep"), "w") as handle:
        handle.write("kernel/net/bridge/br_netfilter.ko: \nkernel/net/netfilter/nf_conntrack.ko: \nkernel/x/vxlan.ko: \n")
    for directory in ("modules-load.d", "modprobe.d"):
        os.makedirs(os.path.join(root, "etc", directory))
    os.makedirs(os.path.join(base, "outside"))
    with open(os.path.join(base, "outside", "secret"), "w") as handle:
        handle.write(secret + "\n")
    load_file = os.path.join(root, "etc", "modules-load.d", "kubeforge.conf")
    if state == "ours":
        with open(load_file, "w") as handle:
            handle.write(km.render_load_file(["overlay"]))
    elif state == "hand-edited":
        with open(load_file, "w") as handle:
            handle.write("# mine\nip_vs\n")
    elif state == "not-utf8":
        with open(load_file, "wb") as handle:
            handle.write(b"overlay\n\xfe\n")
    elif state == "masked":
        os.symlink("/dev/null", os.path.join(root, "etc", "modprobe.d", "kubeforge.conf"))
    return root


class Modprobe:
    """Records every command line and acts like kmod on the tree: vxlan fails to load."""

    def __init__(self, root):
        self.root = root
        self.argvs = []

    def __call__(self, module, argv, **kwargs):
        self.argvs.append(list(argv))
        name = argv[-1] if argv[1:4] == ["-n", "-v", "--"] else argv[argv.index("--") + 1]
        if argv[1:4] == ["-n", "-v", "--"]:
            if name in ("br_netfilter", "nf_conntrack", "vxlan"):
                return 0, "insmod /lib/modules/%s/kernel/%s.ko\n" % (RELEASE, name), ""
            return 1, "", "modprobe: FATAL: Module %s not found\n" % name
        if name == "vxlan":
            return 1, "", "modprobe: ERROR: could not insert 'vxlan': Operation not permitted\n"
        with open(os.path.join(self.root, "proc", "modules"), "a") as handle:
            handle.write("%s 1 0 - Live 0x0\n" % name)
        return 0, "", ""


def check_argv(argv):
    """Only modprobe's own options, then '--', a module name and name=value words."""
    assert argv[0] == MODPROBE
    end = argv.index("--")
    assert argv[1:end] in ([], ["-n", "-v"]), argv
    assert NAME_RE.match(argv[end + 1]), argv
    for word in argv[end + 2:]:
        assert km.PARAM_WORD_RE.match(word) and not word.startswith("-"), argv


def names_its_option(msg, requested):
    if msg.startswith(("modules", "persist_file")) or "is not UTF-8 text" in msg or "is a symlink to" in msg:
        return True
    if re.match(r"^argument '(modules|persist_file|persist)' is of type", msg):  # Ansible's own type check
        return True
    return any(name.replace("-", "_") in msg for name in requested)


def test_kernel_modules_passes_no_option_and_fails_cleanly(monkeypatch):
    counter = Counter("kernel_modules: generated names, params, required, reason, persist_file and persist files")
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", lambda self, name, required=False, opt_dirs=None: MODPROBE)

    @PROPERTY
    @given(modules=modules, persist_file=persist_file, persist=mostly(st.just(True), st.just(False)), state=existing,
           check_mode=st.booleans(), secret=st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZ23456789", min_size=16, max_size=24))
    def prop(modules, persist_file, persist, state, check_mode, secret):
        with throwaway_root("kf-prop-kmod-") as base:
            root = build(base, secret, state)
            monkeypatch.setattr(kernel_modules, "ROOT", root)
            modprobe = Modprobe(root)

            def run_command(module, argv, **kwargs):
                return modprobe(module, argv, **kwargs)

            monkeypatch.setattr(basic.AnsibleModule, "run_command", run_command)
            before = tree_snapshot(os.path.join(root, "etc"))
            args = {"modules": modules, "persist_file": persist_file, "persist": persist}
            with audit() as events:
                kind, result = call_main(kernel_modules.main, args, check_mode=check_mode, diff=True)
            counter(kind is FailJson)
            assert outside(events, root) == [], (args, outside(events, root))
            assert secret not in repr(result)
            for argv in modprobe.argvs:
                check_argv(argv)
            if kind is FailJson or check_mode or not persist:
                assert tree_snapshot(os.path.join(root, "etc")) == before, (args, result)
            if kind is FailJson:
                items = modules if isinstance(modules, list) else []
                requested = [m if isinstance(m, str) else m.get("name") if isinstance(m, dict) else None for m in items]
                assert names_its_option(result["msg"], [r for r in requested if isinstance(r, str)]), result["msg"]
                if result["msg"].startswith(("modules", "persist_file", "argument")):
                    assert modprobe.argvs == []  # refused before anything ran

    prop()
    counter.report()
