# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bring the node's apiserver proxy to a spec: render, check the listen port, validate the candidate with the real
binary, replace the config and unit atomically, and say what the running proxy needs (start, reload or restart).

Order matters: everything that can refuse (missing binary or stream module, a port held by another process, the
binary's verdict on the candidate) happens before a file is touched, so a refused run leaves the live config and the
running proxy as they were.
"""

from __future__ import annotations

import os

from ansible_collections.kubeforge.cluster.plugins.module_utils._apiserver_proxy_node import (
    ProxyError,
    addresses_conflict,
    describe_process,
    nginx_stream_support,
)
from ansible_collections.kubeforge.cluster.plugins.module_utils._apiserver_proxy_render import (
    BACKENDS,
    CONFIG_NAME,
    config_data,
    listen_of,
    render_config,
    render_unit,
)
from ansible_collections.kubeforge.cluster.plugins.module_utils._files import read_text, resolve_managed

PACKAGES = {"nginx": "nginx and libnginx-mod-stream (Debian)", "haproxy": "haproxy"}
# Where the Debian packages put the stream module; only used to render in check mode before nginx is installed.
DEBIAN_STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"


def _nginx_stream_module(spec, ops, binary, check_mode, warnings):
    kind, modules_path = nginx_stream_support(ops.nginx_version(binary))
    if kind is None:
        raise ProxyError("%s was built without the stream (TCP proxy) module; install the distribution's nginx with its stream "
                         "module (Debian: libnginx-mod-stream) or use backend haproxy" % binary)
    if kind == "static":
        return None
    module_file = os.path.join(modules_path, "ngx_stream_module.so")
    if not ops.exists(module_file):
        message = "%s loads its stream module from %s, which is missing; install libnginx-mod-stream (Debian)" % (binary, module_file)
        if not check_mode:
            raise ProxyError(message)
        warnings.append(message + " (check mode: an earlier task would install it)")
    return module_file


def _check_port(spec, ops):
    """Refuse a listen address:port held by another process, naming it; nothing has been written yet."""
    foreign, ours = ops.port_users(spec.listen_address, spec.listen_port, spec.unit_name)
    if foreign:
        raise ProxyError("cannot listen on %s: %s; stop that process or choose another listen_port or listen_address. "
                         "Nothing was changed; the running proxy keeps its configuration"
                         % (spec.listen, "; ".join("%s is held by %s" % (info["address"], describe_process(info)) for info in foreign)))
    if any(addresses_conflict(spec.listen_address, address) for address in ours):
        return  # the proxy itself holds it; a restart (listen change) or a reload takes it over
    problem = ops.probe_bind(spec.listen_address, spec.listen_port)
    if problem:
        users = [info for info in ops.all_port_users(spec.listen_port) if info["unit"] != spec.unit_name + ".service"]
        held = "; ".join("%s is held by %s" % (info["address"], describe_process(info)) for info in users)
        raise ProxyError("cannot listen on %s: %s%s; choose another listen_port or listen_address. Nothing was changed; "
                         "the running proxy keeps its configuration" % (spec.listen, problem, " (%s)" % held if held else ""))


def _diff(path, before, after):
    return {"before_header": path, "after_header": path, "before": before or "", "after": after or ""}


def ensure(spec, ops, check_mode, unit_dir="/etc/systemd/system", backup=True):
    """Converge the files; returns ``(result, warnings)``. Raises ProxyError (or _files.ManagedFileError) before any write."""
    warnings = []
    binary = ops.find_binary(spec.backend)
    stream_module = None
    libraries = ()
    if binary is None:
        if not check_mode:
            raise ProxyError("%s is not installed (no %s in PATH, /usr/sbin or /usr/local/sbin); install %s first"
                             % (spec.backend, spec.backend, PACKAGES[spec.backend]))
        warnings.append("%s is not installed yet; check mode cannot validate the configuration with it" % spec.backend)
        binary = "/usr/sbin/%s" % spec.backend
        stream_module = DEBIAN_STREAM_MODULE if spec.backend == "nginx" else None
        installed = False
    else:
        installed = True
        if spec.backend == "nginx":
            stream_module = _nginx_stream_module(spec, ops, binary, check_mode, warnings)
            libraries = (stream_module,) if stream_module else ()

    config_text = render_config(spec, stream_module)
    unit_path = os.path.join(unit_dir, spec.unit_name + ".service")
    unit_text = render_unit(spec, binary)
    config_path = resolve_managed(spec.config_file)
    unit_real = resolve_managed(unit_path)
    old_config = read_text(config_path)
    old_unit = read_text(unit_real)
    config_changed = config_data(old_config) != config_data(config_text)
    unit_changed = config_data(old_unit) != config_data(unit_text)
    stale = []
    for other in BACKENDS:
        path = os.path.join(spec.config_dir, CONFIG_NAME[other])
        if other != spec.backend and ops.exists(path):
            stale.append(path)

    _check_port(spec, ops)

    service = ops.service(spec.unit_name)
    reasons = []
    if not service["active"]:
        action = "start"
        reasons.append("%s.service is not running" % spec.unit_name)
    else:
        if unit_changed:
            reasons.append("the unit file changes" + (" (backend %s)" % spec.backend if stale else ""))
        replaced = ops.binary_replaced(service["main_pid"], binary, libraries) if installed else None
        if replaced:
            reasons.append(replaced)
        old_listen = listen_of(old_config)
        if old_config is not None and old_listen != spec.listen and not stale:
            reasons.append("the listen address changes from %s to %s" % (old_listen, spec.listen))
        if reasons:
            action = "restart"
        elif config_changed:
            action = "reload"
            reasons.append("the configuration changes; the master keeps running and new workers take it")
        else:
            action = "none"

    validation = None
    if installed and (config_changed or action in ("start", "restart")):
        validation = ops.validate(spec.backend, binary, config_text)

    changed = config_changed or unit_changed or bool(stale) or action in ("reload", "restart")
    result = {
        "changed": changed,
        "backend": spec.backend,
        "listen": spec.listen,
        "upstreams": [upstream.address for upstream in spec.upstreams],
        "config_file": spec.config_file,
        "unit_file": unit_path,
        "binary": binary,
        "config_changed": config_changed,
        "unit_changed": unit_changed,
        "unit_created": old_unit is None,
        "removed": stale,
        "action": action,
        "reasons": reasons,
        "main_pid": service["main_pid"],
        "validated": validation is not None,
    }
    diffs = []
    if config_changed:
        diffs.append(_diff(spec.config_file, old_config, config_text))
    if unit_changed:
        diffs.append(_diff(unit_path, old_unit, unit_text))
    for path in stale:
        diffs.append(_diff(path, read_text(path), ""))
    result["diff"] = diffs

    if check_mode:
        return result, warnings
    if config_changed:
        # expected=what was read: a concurrent edit fails the run instead of being overwritten
        result["backup_file"] = ops.replace(config_path, config_text, expected=old_config.encode("utf-8") if old_config is not None else False,
                                            backup=backup and old_config is not None)
    if unit_changed:
        ops.replace(unit_real, unit_text, expected=old_unit.encode("utf-8") if old_unit is not None else False, backup=False)
    for path in stale:
        os.unlink(path)
    if unit_changed:
        ops.daemon_reload()
    return result, warnings
