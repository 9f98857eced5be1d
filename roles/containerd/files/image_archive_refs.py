# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Print, as JSON, the image names and manifest digests an image archive will create in containerd.

Run on the controller by the containerd role before copying an archive to a node, so that only archives
whose images are missing (or whose tag now points elsewhere) are imported with ``ctr images import``.

Understands OCI image layouts (``index.json``: the ``io.containerd.image.name`` annotation, else a full
reference in ``org.opencontainers.image.ref.name``) and ``docker save`` archives (``manifest.json``
``RepoTags``, normalised the way containerd names them: ``busybox:1`` -> ``docker.io/library/busybox:1``).
Output: ``{"path": ..., "images": [{"name": ..., "digest": "sha256:..." or null}]}``; exit 1 with a message
when the archive cannot be read or names no image.
"""

from __future__ import annotations

import json
import sys
import tarfile

NAME_ANNOTATION = "io.containerd.image.name"
REF_ANNOTATION = "org.opencontainers.image.ref.name"


def normalize(ref: str) -> str:
    """Docker-style short names as containerd stores them (the docker.io/library defaults)."""
    first, sep, rest = ref.partition("/")
    if not sep:
        return "docker.io/library/" + ref
    if "." not in first and ":" not in first and first != "localhost":
        return "docker.io/" + ref
    return ref


def _read_json(tar: tarfile.TarFile, member: str):
    try:
        handle = tar.extractfile(member)
    except KeyError:
        return None
    if handle is None:
        return None
    return json.load(handle)


def archive_refs(path: str) -> list[dict]:
    """The ``{"name", "digest"}`` pairs of the named images in the archive at ``path``."""
    with tarfile.open(path) as tar:
        names = {m.name.lstrip("./") for m in tar.getmembers()}
        images: list[dict] = []
        if "index.json" in names:
            index = _read_json(tar, next(m for m in tar.getmembers() if m.name.lstrip("./") == "index.json"))
            for desc in index.get("manifests", []):
                annotations = desc.get("annotations") or {}
                name = annotations.get(NAME_ANNOTATION)
                if not name:
                    ref = annotations.get(REF_ANNOTATION, "")
                    # a bare tag ("1.0") gets a date-based prefix from ctr: not predictable, not a name
                    if "/" in ref or (":" in ref and not ref.startswith(":")):
                        name = normalize(ref)
                if name:
                    images.append({"name": name, "digest": desc.get("digest")})
        if not images and "manifest.json" in names:
            manifest = _read_json(tar, next(m for m in tar.getmembers() if m.name.lstrip("./") == "manifest.json"))
            for entry in manifest or []:
                for tag in entry.get("RepoTags") or []:
                    # ctr builds the manifest of a docker archive itself: its digest is not known in advance
                    images.append({"name": normalize(tag), "digest": None})
    return images


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: image_archive_refs.py ARCHIVE\n")
        return 2
    path = argv[1]
    try:
        images = archive_refs(path)
    except (OSError, tarfile.TarError, ValueError, StopIteration) as exc:
        sys.stderr.write("%s: not a readable image archive (OCI layout or docker save tar): %s\n" % (path, exc))
        return 1
    if not images:
        sys.stderr.write(
            "%s names no image: ctr would import it under a generated name, so the role cannot tell whether it is present. "
            "Tag it (docker save NAME:TAG, or the io.containerd.image.name annotation in index.json).\n" % path
        )
        return 1
    json.dump({"path": path, "images": images}, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
