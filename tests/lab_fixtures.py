# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A lab state as ``up`` records it, for the tests of tools/kflab (no host needed)."""

from __future__ import annotations

from kflab.addressing import bridge_name, gateway_address, group_layout, machine_address, netns_name, veth_name
from kflab.state import LabState, Machine


def make_state(names=("node1", "node2", "node3"), subnet="10.150.7.0/24", lab="unit") -> LabState:
    """Lab ``unit`` under /srv/lab with machines at .11, .12, ... and supervisor pids 1001, 1002, ..."""
    state = LabState(lab=lab, distro="bookworm", subnet=subnet, gateway=gateway_address(subnet), bridge=bridge_name(lab),
                     key="/srv/lab/%s/id_ed25519" % lab, groups=group_layout(list(names)))
    for index, name in enumerate(names, start=1):
        state.machines[name] = Machine(
            name=name, index=index, address=machine_address(subnet, index), netns=netns_name(lab, name),
            veth=veth_name(lab, index), dir="/srv/lab/%s/machines/%s" % (lab, name),
            root="/srv/lab/%s/machines/%s/root" % (lab, name), pid=1000 + index, pid_start="5%d" % index)
    return state
