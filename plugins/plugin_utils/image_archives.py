# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Image archives on the controller: which image names and digests each will create in containerd, and which of
them a node is missing.

``image_archive_refs`` reads OCI image layouts (``index.json``: the ``io.containerd.image.name`` annotation,
else a full reference in ``org.opencontainers.image.ref.name``) and ``docker save`` archives (``manifest.json``
``RepoTags``, normalised the way containerd names them: ``busybox:1`` -> ``docker.io/library/busybox:1``).
``images_to_import`` compares that with ``ctr images list`` output from the node, so only archives whose images
are missing (or whose tag now points elsewhere) are copied and imported, and check mode can tell.
"""

from __future__ import annotations

import glob
import json
import os
import tarfile

from ansible.errors import AnsibleFilterError

NAME_ANNOTATION = "io.containerd.image.name"
REF_ANNOTATION = "org.opencontainers.image.ref.name"

# (path, size, mtime) -> images: an archive is read once per controller process, not once per node
_CACHE: dict[tuple, list] = {}


def normalize(ref):
    """Docker-style short names as containerd stores them (the docker.io/library defaults)."""
    first, sep, dummy = ref.partition("/")
    if not sep:
        return "docker.io/library/" + ref
    if "." not in first and ":" not in first and first != "localhost":
        return "docker.io/" + ref
    return ref


def _read_json(tar, wanted):
    member = next((m for m in tar.getmembers() if m.name.lstrip("./") == wanted), None)
    if member is None:
        return None
    handle = tar.extractfile(member)
    return json.load(handle) if handle is not None else None


def archive_refs(path):
    """The ``{"name", "digest"}`` pairs of the named images in the archive at ``path`` (digest None if unknown)."""
    with tarfile.open(path) as tar:
        images = []
        index = _read_json(tar, "index.json")
        for desc in (index or {}).get("manifests", []):
            annotations = desc.get("annotations") or {}
            name = annotations.get(NAME_ANNOTATION)
            if not name:
                ref = annotations.get(REF_ANNOTATION, "")
                # a bare tag ("1.0") gets a date-based prefix from ctr: not predictable, not a name
                if "/" in ref or (":" in ref and not ref.startswith(":")):
                    name = normalize(ref)
            if name:
                images.append({"name": name, "digest": desc.get("digest")})
        if not images:
            for entry in _read_json(tar, "manifest.json") or []:
                for tag in entry.get("RepoTags") or []:
                    # ctr builds the manifest of a docker archive itself: its digest is not known in advance
                    images.append({"name": normalize(tag), "digest": None})
    return images


def _archive_files(paths, option):
    if isinstance(paths, str):
        paths = [paths]
    if not isinstance(paths, list):
        raise AnsibleFilterError("%s must be a list of .tar files or directories on the controller" % option)
    files, missing = [], []
    for entry in paths:
        if os.path.isdir(entry):
            files.extend(sorted(glob.glob(os.path.join(glob.escape(entry), "*.tar"))))
        elif os.path.isfile(entry):
            files.append(entry)
        else:
            missing.append(entry)
    if missing:
        raise AnsibleFilterError("%s names archives that do not exist on the controller: %s (give .tar files or "
                                 "directories holding them)" % (option, ", ".join(missing)))
    return files


def image_archive_refs(paths, option="containerd_image_artifacts"):
    """``[{"path", "images": [{"name", "digest"}]}]`` for the archives (and ``*.tar`` in directories) ``paths`` names."""
    archives = []
    for path in _archive_files(paths, option):
        stat = os.stat(path)
        key = (os.path.abspath(path), stat.st_size, stat.st_mtime_ns)
        if key not in _CACHE:
            try:
                images = archive_refs(path)
            except (OSError, tarfile.TarError, ValueError) as exc:
                raise AnsibleFilterError("%s: %s is not a readable image archive (OCI layout or docker save tar): %s"
                                         % (option, path, exc)) from None
            if not images:
                raise AnsibleFilterError(
                    "%s: %s names no image: ctr would import it under a generated name, so the role cannot tell whether "
                    "it is present. Tag it (docker save NAME:TAG, or the io.containerd.image.name annotation in "
                    "index.json)." % (option, path))
            _CACHE[key] = images
        archives.append({"path": path, "images": [dict(image) for image in _CACHE[key]]})
    return archives


def present_images(ctr_list_output):
    """Image name -> digest from ``ctr images list`` output (columns REF TYPE DIGEST ...)."""
    present = {}
    for line in ctr_list_output.splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 3:
            present[cols[0]] = cols[2]
    return present


def images_to_import(archives, ctr_list_output):
    """The archives with an image the node lacks or whose tag points to another digest: ``[{"path", "images"}]``."""
    present = present_images(ctr_list_output or "")
    pending = []
    for archive in archives:
        missing = [image["name"] for image in archive["images"]
                   if image["name"] not in present or (image["digest"] and present[image["name"]] != image["digest"])]
        if missing:
            pending.append({"path": archive["path"], "images": missing})
    return pending
