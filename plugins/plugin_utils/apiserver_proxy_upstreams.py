# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The apiserver proxy's upstreams from the role's variables: an explicit list, or the control-plane group's hosts."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.kubeforge.cluster.plugins.module_utils._apiserver_proxy_render import parse_upstream
from ansible_collections.kubeforge.cluster.plugins.module_utils._validate import InputError, require_int

ADDRESS_VARIABLE = "apiserver_proxy_upstream_address"


def apiserver_proxy_upstreams(explicit, group_hosts, hostvars, port, variable="apiserver_proxy_upstreams"):
    """``[{"name", "host", "port"}]``: ``explicit`` when it is not empty, else one entry per host of ``group_hosts``.

    A group host's address is its ``apiserver_proxy_upstream_address``, else its ``ansible_host``, else its inventory
    name. Every entry is checked like the module checks it, and a bad one is named by the variable it came from.
    """
    try:
        require_int("apiserver_proxy_backend_port", port, 1, 65535)
    except InputError as exc:
        raise AnsibleFilterError(str(exc)) from None
    if explicit:
        if not isinstance(explicit, (list, tuple)):
            raise AnsibleFilterError("%s: must be a list of addresses, got %s" % (variable, type(explicit).__name__))
        sources = [("%s[%d]" % (variable, index), item, None) for index, item in enumerate(explicit)]
    else:
        sources = []
        for host in group_hosts or []:
            values = hostvars[host]
            address = values.get(ADDRESS_VARIABLE) or values.get("ansible_host") or host
            where = "%s of %s" % (ADDRESS_VARIABLE if values.get(ADDRESS_VARIABLE) else "ansible_host" if values.get("ansible_host")
                                  else "inventory name", host)
            sources.append((where, address, host))
    result = []
    for where, value, name in sources:
        try:
            upstream = parse_upstream(where, {"host": value, "port": port, "name": name} if name else value, port)
        except InputError as exc:
            raise AnsibleFilterError("%s: %s" % (where, exc.problem)) from None
        result.append({"name": upstream.name, "host": upstream.host, "port": upstream.port})
    return result
