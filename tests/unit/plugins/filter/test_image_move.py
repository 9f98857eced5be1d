# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""image_move_plan: what the source exports and which node imports what, from `ctr images list` of every node."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.kubeforge.cluster.plugins.filter.image_move import image_move_plan

HEADER = "REF TYPE DIGEST SIZE PLATFORMS LABELS\n"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
APP = "sha256:" + "a" * 64
APP2 = "sha256:" + "b" * 64
TOOL = "sha256:" + "c" * 64


def listing(*images):
    return HEADER + "".join("%s %s %s 1.2 KiB linux/amd64 io.cri-containerd.image=managed\n" % (name, MANIFEST, digest)
                            for name, digest in images)


def plan(listings, images, source="node1"):
    return image_move_plan(listings, source, images, "/ctl/node1-images.tar")


def test_only_the_nodes_that_lack_an_image_or_hold_another_digest_import_it():
    listings = {
        "node1": listing(("example.internal/app:1", APP), ("example.internal/tool:2", TOOL), ("sha256:" + "a" * 64, APP)),
        "node2": listing(("example.internal/app:1", APP)),
        "node3": listing(("example.internal/app:1", APP2), ("example.internal/tool:2", TOOL)),
        "node4": listing(("example.internal/app:1", APP), ("example.internal/tool:2", TOOL)),
    }
    result = plan(listings, ["example.internal/app:1", "example.internal/tool:2"])
    assert result == {
        "export": ["example.internal/app:1", "example.internal/tool:2"],
        "archive": {"path": "/ctl/node1-images.tar",
                    "images": [{"name": "example.internal/app:1", "digest": APP}, {"name": "example.internal/tool:2", "digest": TOOL}]},
        "imports": {"node2": ["example.internal/tool:2"], "node3": ["example.internal/app:1"], "node4": []},
    }


def test_nothing_is_exported_when_every_node_has_the_images():
    listings = {"node1": listing(("example.internal/app:1", APP)), "node2": listing(("example.internal/app:1", APP))}
    assert plan(listings, ["example.internal/app:1"]) == {
        "export": [], "archive": {"path": "/ctl/node1-images.tar", "images": []}, "imports": {"node2": []}}


def test_only_the_missing_images_are_exported_and_a_repeated_name_once():
    listings = {"node1": listing(("example.internal/app:1", APP), ("example.internal/tool:2", TOOL)),
                "node2": listing(("example.internal/app:1", APP)), "node3": HEADER}
    result = plan(listings, ["example.internal/tool:2", "example.internal/app:1", "example.internal/tool:2"])
    assert result["export"] == ["example.internal/tool:2", "example.internal/app:1"]
    assert result["imports"] == {"node2": ["example.internal/tool:2"], "node3": ["example.internal/tool:2", "example.internal/app:1"]}


@pytest.mark.parametrize("listings, source, images, message", [
    ({"node1": HEADER, "node2": HEADER}, "node1", ["busybox:1.36"],
     "image_tools_move_images: busybox:1.36 not on node1 (its ctr images list has no such name); tag or pull it there first, "
     "or correct the name (e.g. docker.io/library/busybox:1.36, not busybox:1.36)"),
    ({"node2": HEADER}, "node1", ["a.example/x:1"],
     "image_tools_move_source: node1 is not one of the play's hosts (node2): the source must be in the play so that its "
     "images can be listed"),
    ({"node1": HEADER}, "node1", [], "image_tools_move_images: is empty: name the images to move, as `ctr -n k8s.io images ls` lists them"),
    ({"node1": HEADER}, "node1", ["--all-platforms"],
     "image_tools_move_images[0]: '--all-platforms' must not start with '-' (it would be read as a command option)"),
    ({"node1": HEADER}, "node1", "a.example/x:1", "image_tools_move_images: must be a list, got a string"),
    ({"node1": HEADER}, "node1", ["a.example/x:1 b"], "image_tools_move_images[0]: 'a.example/x:1 b' is not an image reference (it contains whitespace)"),
])
def test_bad_input_is_refused_with_the_variable_named(listings, source, images, message):
    with pytest.raises(AnsibleFilterError) as caught:
        image_move_plan(listings, source, images, "/ctl/x.tar")
    assert str(caught.value) == message
