# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Kubernetes minors kubeforge.cluster supports and what each one's kubeadm expects (upstream facts).

Sources (README "Supported Kubernetes versions"): kubernetes/sig-release ``releases/release-1.3x/README.md``
(v1.37.0 released 2026-08-26, v1.38.0 due 2026-12-16), kubernetes/kubernetes ``CHANGELOG/CHANGELOG-1.37.md``
(v1beta3 removed in 1.37; deprecated since 1.31, when v1beta4 arrived), and the pause version each kubeadm
lists in ``kubeadm config images list`` (kubernetes/minikube ``pkg/minikube/constants/constants_kubeadm_images.go``,
generated from the kubeadm binaries: 3.10.1 for 1.35, 3.10.2 for 1.36 and 1.37).
"""

from __future__ import annotations

import re

DEFAULT_KUBERNETES_VERSION = "1.37.0"
DEFAULT_IMAGE_REPOSITORY = "registry.k8s.io"

# minor -> (kubeadm API versions it reads, newest first; pause image tag its kubeadm expects)
MINORS = {
    "1.35": {"kubeadm_apis": ("v1beta4", "v1beta3"), "pause": "3.10.1"},
    "1.36": {"kubeadm_apis": ("v1beta4", "v1beta3"), "pause": "3.10.2"},
    "1.37": {"kubeadm_apis": ("v1beta4",), "pause": "3.10.2"},
}
V1BETA3_REMOVED_IN = "1.37"
IPVS_DEPRECATED_IN = "1.35"

_VERSION_RE = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)$")


def supported_minors():
    return sorted(MINORS, key=minor_key)


def minor_key(minor):
    return tuple(int(part) for part in minor.split("."))


def parse_version(text):
    """``("1.37", "1.37.0")`` from ``1.37.0`` or ``v1.37.0``; ValueError for anything else."""
    match = _VERSION_RE.match(text.strip()) if isinstance(text, str) else None
    if not match:
        raise ValueError("%r is not a Kubernetes release version like %s" % (text, DEFAULT_KUBERNETES_VERSION))
    major, minor, patch = match.groups()
    return "%s.%s" % (major, minor), "%s.%s.%s" % (major, minor, patch)


def expected_pause_image(minor, image_repository=""):
    """The sandbox image kubeadm of ``minor`` checks the runtime for: ``<imageRepository>/pause:<tag>``."""
    return "%s/pause:%s" % ((image_repository or DEFAULT_IMAGE_REPOSITORY).rstrip("/"), MINORS[minor]["pause"])
