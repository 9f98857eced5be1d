# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build the kubeadm/kubelet/kubectl TEST DOUBLES into an artifacts directory, as an air-gapped operator provides them.

    python3 tests/doubles/build.py --version 1.37.0 --debs DIR [--binaries DIR]

Each double is a Python zip application (``python3 -m zipapp``) holding its script, double_common.py, the
collection's schema validator (plugins/module_utils/_kubeadm_schema.py) and schemas, and a build.json with the
version. ``--debs`` gets ``kubeadm_<version>-0testdouble1_all.deb`` etc. (built with ``dpkg-deb``: package name as
upstream's, version and description saying TEST DOUBLE; the kubelet package ships a kubelet.service, kubeadm the
10-kubeadm.conf drop-in, as upstream's packages do; kubeadm depends on python3-yaml). ``--binaries`` gets the
executables named kubeadm, kubelet, kubectl, like upstream's release binaries. Both get a SHA256SUMS.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipapp
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
MODULE_UTILS = REPO / "plugins" / "module_utils"
DEB_REVISION = "0testdouble1"
DEPENDS = {"kubeadm": "python3 (>= 3.9), python3-yaml", "kubelet": "python3 (>= 3.9)", "kubectl": "python3 (>= 3.9)"}
KUBELET_UNIT = """[Unit]
Description=kubelet TEST DOUBLE (kubeforge.cluster tests; not Kubernetes)
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=/usr/bin/kubelet
Restart=always
StartLimitInterval=0
RestartSec=10

[Install]
WantedBy=multi-user.target
"""
KUBEADM_DROPIN = """[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
"""


def build_executable(component, version, target):
    """One zip application at ``target``."""
    with tempfile.TemporaryDirectory() as staging:
        root = Path(staging)
        shutil.copy(HERE / ("%s_double.py" % component), root / "__main__.py")
        shutil.copy(HERE / "double_common.py", root)
        shutil.copy(MODULE_UTILS / "_kubeadm_schema.py", root)
        shutil.copytree(MODULE_UTILS / "kubeadm_schemas", root / "kubeadm_schemas")
        (root / "build.json").write_text(json.dumps({"version": version, "component": component, "test_double": True}))
        zipapp.create_archive(root, target, interpreter="/usr/bin/python3")
    os.chmod(target, 0o755)


def build_deb(component, version, out_dir):
    with tempfile.TemporaryDirectory() as staging:
        root = Path(staging)
        root.chmod(0o755)  # the package's "./" entry
        (root / "DEBIAN").mkdir()
        (root / "usr" / "bin").mkdir(parents=True)
        build_executable(component, version, root / "usr" / "bin" / component)
        if component == "kubelet":
            unit = root / "usr" / "lib" / "systemd" / "system" / "kubelet.service"
            unit.parent.mkdir(parents=True)
            unit.write_text(KUBELET_UNIT)
        if component == "kubeadm":
            dropin = root / "usr" / "lib" / "systemd" / "system" / "kubelet.service.d" / "10-kubeadm.conf"
            dropin.parent.mkdir(parents=True)
            dropin.write_text(KUBEADM_DROPIN)
        (root / "DEBIAN" / "control").write_text(
            "Package: %s\nVersion: %s-%s\nArchitecture: all\nMaintainer: kubeforge.cluster tests <tests@kubeforge.invalid>\n"
            "Depends: %s\nSection: admin\nPriority: optional\n"
            "Description: TEST DOUBLE of %s for kubeforge.cluster tests - not Kubernetes\n"
            " A stand-in built by tests/doubles/build.py; it implements only what the tests call and records every call.\n"
            % (component, version, DEB_REVISION, DEPENDS[component], component))
        target = out_dir / ("%s_%s-%s_all.deb" % (component, version, DEB_REVISION))
        subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(target)],
                       check=True, capture_output=True, text=True)
    return target


def write_sums(directory, files):
    lines = ["%s  %s\n" % (hashlib.sha256(path.read_bytes()).hexdigest(), path.name) for path in sorted(files)]
    (directory / "SHA256SUMS").write_text("".join(lines))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--version", required=True, help="the Kubernetes release the doubles say they are, e.g. 1.37.0")
    parser.add_argument("--debs", type=Path, help="directory for the .deb files and SHA256SUMS")
    parser.add_argument("--binaries", type=Path, help="directory for the release-binary stand-ins and SHA256SUMS")
    args = parser.parse_args(argv)
    components = ("kubeadm", "kubelet", "kubectl")
    if args.debs:
        args.debs.mkdir(parents=True, exist_ok=True)
        write_sums(args.debs, [build_deb(c, args.version, args.debs) for c in components])
    if args.binaries:
        args.binaries.mkdir(parents=True, exist_ok=True)
        for component in components:
            build_executable(component, args.version, args.binaries / component)
        write_sums(args.binaries, [args.binaries / c for c in components])
    return 0


if __name__ == "__main__":
    sys.exit(main())
