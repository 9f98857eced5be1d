# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/image_move.yml end to end against three real containerd 1.6 daemons (Debian bookworm's) on temporary
sockets of this host, each one an inventory host over a local connection: node1 has the images, node2 has one of
them, node3 has one under another digest. Check mode -> move -> second run (nothing exported, nothing changed) ->
an image the source lacks (the exact message).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from containerd_daemon import ContainerdPool, containerd_bin_dir

pytestmark = pytest.mark.real_binary

REPO = Path(__file__).resolve().parents[2]
APP = "registry.lab.invalid/move/app:1"
TOOL = "registry.lab.invalid/move/tool:2"


def image(work, name, content="kubeforge test image\n"):
    """A one-layer OCI archive made by tools/make_test_image.py; returns (path, manifest digest)."""
    path = work / ("%s.tar" % abs(hash((name, content))))
    out = subprocess.run([sys.executable, str(REPO / "tools" / "make_test_image.py"), "--name", name, "--output", str(path),
                          "--content", content], capture_output=True, text=True, check=True).stdout
    return path, out.split()[1]


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    bin_dir = containerd_bin_dir("bookworm")
    work = tmp_path_factory.mktemp("move")
    with ContainerdPool(work / "daemons") as pool:
        daemons = {name: pool.start(name, suite="bookworm") for name in ("node1", "node2", "node3")}
        app, app_digest = image(work, APP)
        tool, tool_digest = image(work, TOOL, "another layer\n")
        stale, stale_digest = image(work, APP, "an older build\n")
        for name, archives in (("node1", [app, tool]), ("node2", [app]), ("node3", [stale])):
            for archive in archives:
                daemons[name].ctr("images", "import", str(archive))
        inventory = {"all": {
            "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, "ansible_become": False,
                     # the import step is the containerd role's: its ctr is the tarball method's <prefix>/bin/ctr
                     "containerd_install_method": "tarball", "containerd_install_prefix": str(bin_dir.parent),
                     "containerd_remote_artifacts_dir": str(work / "remote"),
                     "image_tools_move_controller_dir": str(work / "controller")},
            "children": {"kube_nodes": {"hosts": {name: {"image_tools_containerd_address": daemon.socket}
                                                  for name, daemon in daemons.items()}}}}}
        (work / "hosts.yml").write_text(yaml.safe_dump(inventory))
        yield {"daemons": daemons, "work": work, "bin_dir": bin_dir,
               "digests": {"app": app_digest, "tool": tool_digest, "stale": stale_digest}}


def images(daemon):
    """name -> digest in the daemon's k8s.io namespace (names only, not the sha256: ID refs)."""
    lines = daemon.ctr("images", "list").stdout.splitlines()[1:]
    return {cols[0]: cols[2] for cols in (line.split() for line in lines) if not cols[0].startswith("sha256:")}


def move(nodes, *extra, check=False):
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_CALLBACK_RESULT_FORMAT="json",
               ANSIBLE_COLLECTIONS_PATH=str(REPO / ".build" / "collections"),
               PATH="%s:%s" % (nodes["bin_dir"], os.environ.get("PATH", "/usr/bin:/bin")))
    argv = [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(nodes["work"] / "hosts.yml"),
            str(REPO / "playbooks" / "image_move.yml"), "-e", "image_tools_move_source=node1",
            "-e", '{"image_tools_move_images": ["%s", "%s"]}' % (APP, TOOL), *extra]
    argv += ["--check", "--diff"] if check else []
    return subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False, env=env)


def recap(stdout):
    """host -> {ok, changed, ...} from the PLAY RECAP."""
    result = {}
    for line in stdout.split("PLAY RECAP")[-1].splitlines():
        if ":" in line and "=" in line:
            host, counts = line.split(":", 1)
            result[host.strip()] = {k: int(v) for k, v in (item.split("=") for item in counts.split())}
    return result


def task_results(stdout, name):
    """The result lines (``ok: [node1]``, ``skipping: [node2]``, ...) of the task whose name starts with ``name``."""
    # role tasks are shown as "TASK [kubeforge.cluster.image_tools : <name>]", an include_role as "TASK [<name>]"
    block = re.split(r"TASK \[(?:kubeforge\.cluster\.image_tools : )?" + re.escape(name), stdout, maxsplit=1)[1].split("\nTASK [", 1)[0]
    return sorted(line.split(" =>")[0].strip() for line in block.splitlines()
                  if line.startswith(("ok:", "changed:", "skipping:", "fatal:")))


def test_move_only_where_missing(nodes):
    daemons, digests = nodes["daemons"], nodes["digests"]
    before = {name: images(daemon) for name, daemon in daemons.items()}

    # check mode: says what each node would import, changes nothing, exports nothing
    proc = move(nodes, check=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "would be imported: %s" % TOOL in proc.stdout, proc.stdout
    assert "would be imported: %s, %s" % (APP, TOOL) in proc.stdout
    assert {name: images(daemon) for name, daemon in daemons.items()} == before
    assert not (nodes["work"] / "controller").exists()
    counts = recap(proc.stdout)
    assert (counts["node1"]["changed"], counts["node2"]["changed"], counts["node3"]["changed"]) == (0, 1, 1)

    # the move: node2 gets the tool, node3 both (its app:1 tagged an older build); node1 is untouched
    proc = move(nodes)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    wanted = {APP: digests["app"], TOOL: digests["tool"]}
    assert images(daemons["node1"]) == before["node1"] == wanted
    assert images(daemons["node2"]) == wanted
    assert images(daemons["node3"]) == wanted
    # the archives are gone from the controller and from the nodes' import directory
    assert list((nodes["work"] / "controller").iterdir()) == []
    assert not any((nodes["work"] / "remote").rglob("*.tar"))

    # second run: every node has the images, nothing exported or imported
    proc = move(nodes)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert all(counts["changed"] == 0 for counts in recap(proc.stdout).values()), proc.stdout[-3000:]
    assert task_results(proc.stdout, "Create a private directory for the archive") == ["skipping: [node1]"]
    skipped = ["skipping: [node1]", "skipping: [node2]", "skipping: [node3]"]
    assert task_results(proc.stdout, "Import the images this node lacks") == skipped


def test_an_image_the_source_lacks_is_named(nodes):
    proc = move(nodes, "-e", '{"image_tools_move_images": ["docker.io/library/busybox:1.36"]}')
    assert proc.returncode != 0
    assert ("image_tools_move_images: docker.io/library/busybox:1.36 not on node1 (its ctr images list has no such name)"
            in proc.stdout), proc.stdout[-3000:]
