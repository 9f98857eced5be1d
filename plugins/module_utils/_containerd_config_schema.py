# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where containerd keeps each setting, per config version (no TOML library, no Ansible imports).

Config versions (containerd ``cmd/containerd/server/config``):
  1  no ``version`` key; short plugin names (``plugins.cri``); removed in containerd 2.0
     (2.x ignores the CRI keys of such a file with only a warning).
  2  containerd 1.3 - 1.7: ``plugins."io.containerd.grpc.v1.cri"``.
  3  containerd 2.0 - 2.2: CRI split into ``io.containerd.cri.v1.images`` and
     ``io.containerd.cri.v1.runtime``; the sandbox image is ``pinned_images.sandbox``.
  4  containerd 2.3+: CRI paths as in 3; grpc/ttrpc/debug/metrics moved into server plugins.
"""

from __future__ import annotations

import re

DEFAULT_PATH = "/etc/containerd/config.toml"
MAX_KNOWN_VERSION = 4

CRI_V1_NAME = "cri"
CRI_GRPC_ID = "io.containerd.grpc.v1.cri"
CRI_IMAGES_ID = "io.containerd.cri.v1.images"
CRI_RUNTIME_ID = "io.containerd.cri.v1.runtime"
# Disabling any of these leaves kubelet without a working CRI ("unknown service runtime.v1...").
CRI_PLUGIN_IDS = (CRI_V1_NAME, CRI_GRPC_ID, CRI_IMAGES_ID, CRI_RUNTIME_ID)

# containerd's own v1 -> v2 renaming of short plugin names (v1MigratePluginName).
V1_PLUGIN_NAMES = {
    "cri": CRI_GRPC_ID,
    "cgroups": "io.containerd.monitor.v1.cgroups",
    "linux": "io.containerd.runtime.v1.linux",
    "scheduler": "io.containerd.gc.v1.scheduler",
    "bolt": "io.containerd.metadata.v1.bolt",
    "task": "io.containerd.runtime.v2.task",
    "opt": "io.containerd.internal.v1.opt",
    "restart": "io.containerd.internal.v1.restart",
    "tracing": "io.containerd.internal.v1.tracing",
    "otlp": "io.containerd.tracing.processor.v1.otlp",
    "aufs": "io.containerd.snapshotter.v1.aufs",
    "btrfs": "io.containerd.snapshotter.v1.btrfs",
    "devmapper": "io.containerd.snapshotter.v1.devmapper",
    "native": "io.containerd.snapshotter.v1.native",
    "overlayfs": "io.containerd.snapshotter.v1.overlayfs",
    "zfs": "io.containerd.snapshotter.v1.zfs",
}

RUNC_TYPES = ("io.containerd.runc.v2", "io.containerd.runc.v1")

# Keys of a CRI runtime table the ``runtimes`` option knows, with their TOML type.
RUNTIME_KEYS = {
    "runtime_type": str,
    "runtime_path": str,
    "options": dict,
    "pod_annotations": list,
    "container_annotations": list,
    "privileged_without_host_devices": bool,
    "privileged_without_host_devices_all_devices_allowed": bool,
    "base_runtime_spec": str,
    "cni_conf_dir": str,
    "cni_max_conf_num": int,
    "snapshotter": str,
    "sandboxer": str,
    "sandbox_mode": str,
    "io_type": str,
    "cgroup_writable": bool,
}


class ContainerdConfigError(Exception):
    """A failure the user can act on; ``extra`` goes into the task result (never file content)."""

    def __init__(self, msg, **extra):
        super().__init__(msg)
        self.msg = msg
        self.extra = extra


class Schema:
    """Key paths of the logical options for one config version."""

    def __init__(self, version, images, runtime, sandbox_key):
        self.version = version
        self.images = images
        self.runtime = runtime
        self.sandbox = images + sandbox_key
        self.registry = images + ("registry",)
        self.config_path = self.registry + ("config_path",)
        self.containerd = runtime + ("containerd",)
        self.runtimes = self.containerd + ("runtimes",)
        self.default_runtime = self.containerd + ("default_runtime_name",)

    def describe(self):
        return {
            "sandbox_image": dotted(self.sandbox),
            "registry_config_path": dotted(self.config_path),
            "runtimes": dotted(self.runtimes),
            "default_runtime": dotted(self.default_runtime),
        }


def schema_for(version):
    if version == 1:
        cri = ("plugins", CRI_V1_NAME)
        return Schema(1, cri, cri, ("sandbox_image",))
    if version == 2:
        cri = ("plugins", CRI_GRPC_ID)
        return Schema(2, cri, cri, ("sandbox_image",))
    if version in (3, 4):
        return Schema(version, ("plugins", CRI_IMAGES_ID), ("plugins", CRI_RUNTIME_ID), ("pinned_images", "sandbox"))
    raise ContainerdConfigError(
        "containerd config version %r is not known to this module (it knows 1 to %d); "
        "update kubeforge.cluster or write the file with a known version" % (version, MAX_KNOWN_VERSION))


def dotted(path):
    """A key path as TOML writes it: ``plugins."io.containerd.grpc.v1.cri".sandbox_image``."""
    out = []
    for part in path:
        out.append(part if re.match(r"^[A-Za-z0-9_-]+$", part) else '"%s"' % part.replace("\\", "\\\\").replace('"', '\\"'))
    return ".".join(out)


def v1_full_name(name):
    """The version 2 id of a version 1 short plugin name (containerd's v1MigratePluginName)."""
    if "." in name:
        return name
    if name in V1_PLUGIN_NAMES:
        return V1_PLUGIN_NAMES[name]
    if name.endswith("-service"):
        return "io.containerd.service.v1." + name
    return "io.containerd.grpc.v1." + name


def binary_config_version(version_output):
    """(highest config version a containerd binary reads, "major.minor") from ``containerd --version`` output."""
    fields = (version_output or "").split()
    for field in fields[2:3] + fields:
        match = re.match(r"^v?(\d+)\.(\d+)", field)
        if match:
            major, minor = int(match.group(1)), int(match.group(2))
            if major < 2:
                return 2, "%d.%d" % (major, minor)
            if major == 2 and minor < 3:
                return 3, "%d.%d" % (major, minor)
            return 4, "%d.%d" % (major, minor)
    return None, None
