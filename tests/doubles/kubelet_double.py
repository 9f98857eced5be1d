# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""TEST DOUBLE of the kubelet (not Kubernetes): ``--version``; started any other way it exits 1, like a kubelet
without the configuration kubeadm init/join writes. Calls are recorded like kubeadm_double.py's."""

from __future__ import annotations

import sys

import double_common as common

COMMANDS = {}


def main(argv):
    if argv[:1] == ["--version"]:
        common.load_build()
        print("Kubernetes v" + common.BUILD["version"])
        common.log("kubelet", {"argv": ["kubelet"] + argv, "rc": 0, "test_double": True})
        return 0
    return common.dispatch("kubelet", COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
