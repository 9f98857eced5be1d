# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Properties of kubeforge.cluster.managed_files over generated entries (hypothesis).

Each example runs main() on paths inside a throwaway root, some of them hostile (traversal, options, control
characters), with existing files, links and a decoy holding a generated secret outside the root, and checks:

* nothing outside the root is written (audit hook), and the decoy's secret appears in no result;
* a failure or check mode leaves the tree byte-identical, and a failure names the item or path it is about;
* a success leaves every file holding exactly its content and mode, and a second run changes nothing.
"""

from __future__ import annotations

import os
import pwd
import stat

from hypothesis import given
from hypothesis import strategies as st
from module_harness import ExitJson, FailJson, call_main
from properties import PROPERTY, Counter, audit, hostile_word, mostly, outside, throwaway_root, tree_snapshot
from ansible_collections.kubeforge.cluster.plugins.modules import managed_files

ME = pwd.getpwuid(os.getuid()).pw_name
WRITES = ("os.remove", "os.rename", "os.replace", "os.mkdir", "os.chmod", "os.chown", "os.symlink", "os.unlink")
relative = mostly(st.sampled_from(["etc/a.conf", "etc/sub/b.yml", "c", "etc/link.conf", "etc/masked.conf", "etc"]),
                  st.one_of(st.sampled_from(["../outside/secret", "etc/../../outside/secret", "", "/"]), hostile_word), 5)
contents = mostly(st.text(max_size=40), st.sampled_from(["a\x00b", 7, None, ["x"]]), 8)
modes = mostly(st.sampled_from(["0644", "0600", "0755"]), st.sampled_from([420, "644x", "99999", "", True]), 8)
owners = mostly(st.just(ME), st.one_of(st.sampled_from(["kubeforge-nobody", "-o"]), hostile_word), 8)


def build(base, secret):
    root = os.path.join(base, "root")
    os.makedirs(os.path.join(root, "etc"))
    os.makedirs(os.path.join(base, "outside"))
    with open(os.path.join(base, "outside", "secret"), "w") as handle:
        handle.write(secret + "\n")
    with open(os.path.join(root, "etc", "a.conf"), "w") as handle:
        handle.write("old\n")
    with open(os.path.join(root, "etc", "target.conf"), "w") as handle:
        handle.write("target\n")
    os.symlink(os.path.join(root, "etc", "target.conf"), os.path.join(root, "etc", "link.conf"))
    os.symlink("/dev/null", os.path.join(root, "etc", "masked.conf"))
    return root


def entry(root, path, content, mode, owner, follow):
    item = {"path": path if path.startswith("/") or path in ("",) else os.path.join(root, path), "content": content,
            "mode": mode, "owner": owner, "group": owner if owner == ME else "root"}
    if not follow:
        item["follow"] = False
    return item


def writes_outside(events, root):
    return [(event, path) for event, path in outside(events, root) if event in WRITES]


def test_managed_files_stays_in_its_root_and_fails_cleanly(monkeypatch):
    counter = Counter("managed_files: generated paths, contents, modes, owners and existing files")

    @PROPERTY
    @given(specs=st.lists(st.tuples(relative, contents, modes, owners, mostly(st.just(True), st.just(False))), min_size=1, max_size=3),
           directory=st.booleans(), check_mode=st.booleans(),
           secret=st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZ23456789", min_size=16, max_size=24))
    def prop(specs, directory, check_mode, secret):
        with throwaway_root("kf-prop-files-") as base:
            secret = "DECOY-" + secret  # generated content cannot spell it by chance
            root = build(base, secret)
            files = [entry(root, *spec) for spec in specs]
            args = {"files": files, "directories": [{"path": os.path.join(root, "var", "data"), "mode": "0700"}] if directory else []}
            before = tree_snapshot(base)
            with audit() as events:
                kind, result = call_main(managed_files.main, args, check_mode=check_mode, diff=True)
            counter(kind is FailJson)
            assert writes_outside(events, root) == [], (args, writes_outside(events, root))
            assert secret not in repr(result)
            if kind is FailJson or check_mode:
                assert tree_snapshot(base) == before, (args, result)
            if kind is FailJson:
                assert "files[" in result["msg"] or "directories[" in result["msg"] or root in result["msg"] \
                    or "listed twice" in result["msg"] or "files:" in result["msg"], result["msg"]
                return
            assert kind is ExitJson
            if check_mode:
                return
            for item in files:
                real = os.path.realpath(item["path"]) if item.get("follow", True) else item["path"]
                with open(real, encoding="utf-8", newline="") as handle:
                    assert handle.read() == item["content"]
                assert stat.S_IMODE(os.stat(real).st_mode) == int(item["mode"], 8)
            again = call_main(managed_files.main, args)
            assert again[0] is ExitJson and not again[1]["changed"], again

    prop()
    counter.report()
