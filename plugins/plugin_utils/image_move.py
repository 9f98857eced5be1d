# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which images to move from one node to the others (the image_tools role's ``move_images`` entry point).

``image_move_plan`` reads ``ctr images list`` of every node and decides, with the containerd role's own image
archive logic (``present_images`` and ``images_to_import`` of the ``image_archives`` filters, so "missing" means
exactly what it means for ``containerd_image_artifacts``: the name is absent or tags another digest), which images
the source exports and which node imports which of them. Nothing is exported when every node has them.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.kubeforge.cluster.plugins.plugin_utils.image_archives import images_to_import, present_images
from ansible_collections.kubeforge.cluster.plugins.module_utils._validate import (
    InputError,
    not_option,
    require_dict,
    require_list,
    require_str,
)


def _reference(option, value):
    not_option(option, value)
    if any(c.isspace() for c in value):
        raise InputError(option, "%r is not an image reference (it contains whitespace)" % value)
    return value


def image_move_plan(listings, source, images, archive, option="image_tools_move_images"):
    """The move as data.

    ``listings`` maps each node (inventory name) to its ``ctr images list`` output, ``source`` is the node the images
    come from, ``images`` the references to move and ``archive`` the archive's path on the controller. Returns
    ``{"export": [names the source exports], "archive": {"path", "images": [{"name", "digest"}]},
    "imports": {node: [names it lacks]}}`` (every node but the source, an empty list when it has them all).
    """
    try:
        require_dict("listings", listings)
        require_str("image_tools_move_source", source)
        if source not in listings:
            raise InputError("image_tools_move_source", "%s is not one of the play's hosts (%s): the source must be in the play "
                             "so that its images can be listed" % (source, ", ".join(sorted(listings))))
        wanted = require_list(option, images, _reference)
        if not wanted:
            raise InputError(option, "is empty: name the images to move, as `ctr -n k8s.io images ls` lists them")
        on_source = present_images(listings[source])
        absent = [name for name in wanted if name not in on_source]
        if absent:
            raise InputError(option, "%s not on %s (its ctr images list has no such name); tag or pull it there first, "
                             "or correct the name (e.g. docker.io/library/busybox:1.36, not busybox:1.36)"
                             % (", ".join(absent), source))
        full = {"path": archive, "images": [{"name": name, "digest": on_source[name]} for name in dict.fromkeys(wanted)]}
        imports = {}
        for node in sorted(listings):
            if node != source:
                pending = images_to_import([full], listings[node])
                imports[node] = pending[0]["images"] if pending else []
        export = [image["name"] for image in full["images"] if any(image["name"] in names for names in imports.values())]
    except InputError as exc:
        raise AnsibleFilterError(str(exc)) from None
    return {
        "export": export,
        "archive": {"path": archive, "images": [image for image in full["images"] if image["name"] in export]},
        "imports": imports,
    }
