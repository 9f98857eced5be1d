# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kernel module probing and persistence for ``kubeforge.cluster.kernel_modules``.

Everything here reads the host below a ``root`` directory (``/`` on a real host, a fake
tree in unit tests) and runs commands through an injected ``run`` callable, so it is
importable and testable without AnsibleModule.

Status of a module, decided in this order:

``loaded``
    listed in ``/proc/modules`` (a loadable module that is in the kernel now).
``builtin``
    compiled into the kernel: listed in ``/lib/modules/RELEASE/modules.builtin``, or
    ``/sys/module/NAME`` exists without ``initstate`` and ``/proc/modules`` does not list
    it, or the kernel config (``/proc/config.gz``, ``/boot/config-RELEASE``) has
    ``CONFIG_...=y`` for it, or its feature is visible (see ``FEATURES``). Built-ins
    without parameters have no ``/sys/module`` entry (br_netfilter is one), hence the
    last two checks.
``loadable``
    the kernel supports modules (``/proc/modules`` exists, ``kernel.modules_disabled``
    is not 1) and ``modprobe -n -v NAME`` succeeds or ``modules.dep`` lists it.
``missing``
    none of the above.
"""

from __future__ import annotations

import gzip
import os
import re

from ansible_collections.kubeforge.cluster.plugins.module_utils._files import read_managed
from ansible_collections.kubeforge.cluster.plugins.module_utils._validate import (
    InputError,
    path_under,
    require_boolean,
    require_keys,
    require_list,
    require_str,
    safe_name,
    type_name,
)

LOADED = "loaded"
BUILTIN = "builtin"
LOADABLE = "loadable"
MISSING = "missing"

# Known modules: the kernel config symbol that builds them and a file whose existence
# shows the feature is in the running kernel.
FEATURES = {
    "br_netfilter": ("BRIDGE_NETFILTER", "proc/sys/net/bridge/bridge-nf-call-iptables"),
    "bridge": ("BRIDGE", None),
    "overlay": ("OVERLAY_FS", None),
    "nf_conntrack": ("NF_CONNTRACK", "proc/sys/net/netfilter/nf_conntrack_max"),
    "ip_vs": ("IP_VS", "proc/net/ip_vs"),
    "ip_vs_rr": ("IP_VS_RR", None),
    "ip_vs_wrr": ("IP_VS_WRR", None),
    "ip_vs_sh": ("IP_VS_SH", None),
    "ip_vs_lc": ("IP_VS_LC", None),
    "ip_tables": ("IP_NF_IPTABLES", "proc/net/ip_tables_names"),
    "ip6_tables": ("IP6_NF_IPTABLES", "proc/net/ip6_tables_names"),
    "iptable_nat": ("IP_NF_NAT", None),
    "nf_tables": ("NF_TABLES", None),
    "xt_conntrack": ("NETFILTER_XT_MATCH_CONNTRACK", None),
    "ip_set": ("IP_SET", None),
    "vxlan": ("VXLAN", None),
    "veth": ("VETH", None),
    "nbd": ("BLK_DEV_NBD", None),
    "rbd": ("BLK_DEV_RBD", None),
    "ceph": ("CEPH_FS", None),
    "dm_thin_pool": ("DM_THIN_PROVISIONING", None),
    "vhost_net": ("VHOST_NET", "dev/vhost-net"),
    "vhost_vsock": ("VHOST_VSOCK", "dev/vhost-vsock"),
    "kvm": ("KVM", "dev/kvm"),
    "tun": ("TUN", None),
}
# Filesystems whose presence shows in /proc/filesystems.
FILESYSTEMS = {"overlay": "overlay", "ceph": "ceph", "fuse": "fuse"}

_KO_RE = re.compile(r"\.ko(\.(gz|xz|zst))?$")
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")
# A module parameter word: name=value. The name is a C identifier (what module_param() declares); the value is
# printable ASCII without space (the word separator), '"' (the kernel's quoting) or '\\' (a line continuation in
# modprobe.d). A value may start with '-' (negative numbers such as i915.enable_psr=-1): the word starts with the
# name, so getopt never sees an option in it.
_PARAM_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
PARAM_WORD_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}=[\x21\x23-\x5b\x5d-\x7e]{0,1024}$")
MAX_PARAMS_LENGTH = 4096
HEADER = (
    "# Managed by kubeforge.cluster.kernel_modules: changes here are overwritten.\n"
    "# Built-in modules need no entry at boot and are not listed.\n"
)
OPTIONS_HEADER = "# Managed by kubeforge.cluster.kernel_modules: changes here are overwritten.\n"


def normalize(name):
    """Module names compare with ``-`` and ``_`` as equal (the kernel stores ``_``)."""
    return name.strip().replace("-", "_")


def _read(path):
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    if path.endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError):
            return None
    return data.decode("utf-8", errors="replace")


def _module_basename(path):
    return normalize(_KO_RE.sub("", os.path.basename(path.strip())))


class HostKernel:
    """The kernel of the host below ``root``.

    ``run`` is ``run(argv) -> (rc, stdout, stderr)`` or None when there is no modprobe.
    """

    def __init__(self, root="/", run=None, modprobe=None):
        self.root = root
        self.run = run
        self.modprobe = modprobe
        self.release = self._release()
        self._loaded = None
        self._builtin = None
        self._dep = None
        self._config = None
        self._filesystems = None

    def path(self, *parts):
        """A path below ``root`` from components (``a/b`` parts are split), proven to stay below it."""
        return path_under(self.root, [c for part in parts for c in part.split("/")], option="path")

    def _release(self):
        text = _read(self.path("proc", "sys", "kernel", "osrelease"))
        if text and text.strip():
            return text.strip()
        return os.uname().release

    # facts about the kernel ---------------------------------------------------------
    @property
    def module_support(self):
        """True when the kernel can load modules (``/proc/modules`` exists)."""
        return os.path.exists(self.path("proc", "modules"))

    @property
    def modules_disabled(self):
        text = _read(self.path("proc", "sys", "kernel", "modules_disabled"))
        return bool(text) and text.strip() == "1"

    @property
    def modules_dir(self):
        for base in ("lib", os.path.join("usr", "lib")):
            candidate = self.path(base, "modules", self.release)
            if os.path.isdir(candidate):
                return candidate
        return self.path("lib", "modules", self.release)

    def loaded_modules(self):
        if self._loaded is None:
            text = _read(self.path("proc", "modules")) or ""
            self._loaded = {normalize(line.split()[0]) for line in text.splitlines() if line.split()}
        return self._loaded

    def builtin_modules(self):
        if self._builtin is None:
            text = _read(os.path.join(self.modules_dir, "modules.builtin")) or ""
            self._builtin = {_module_basename(line) for line in text.splitlines() if line.strip()}
        return self._builtin

    def dep_modules(self):
        if self._dep is None:
            text = _read(os.path.join(self.modules_dir, "modules.dep")) or ""
            self._dep = {_module_basename(line.split(":", 1)[0]) for line in text.splitlines() if ":" in line}
        return self._dep

    def kernel_config(self):
        """``{SYMBOL: value}`` from /proc/config.gz or /boot/config-RELEASE; {} when neither exists."""
        if self._config is None:
            self._config = {}
            for candidate in (self.path("proc", "config.gz"), self.path("boot", "config-" + self.release)):
                text = _read(candidate)
                if text is None:
                    continue
                for line in text.splitlines():
                    match = re.match(r"^CONFIG_([A-Za-z0-9_]+)=(.*)$", line)
                    if match:
                        self._config[match.group(1)] = match.group(2)
                self._config["__source__"] = candidate
                break
        return self._config

    def filesystems(self):
        if self._filesystems is None:
            text = _read(self.path("proc", "filesystems")) or ""
            self._filesystems = {line.split()[-1] for line in text.splitlines() if line.split()}
        return self._filesystems

    def _sys_module_builtin(self, name):
        sys_dir = self.path("sys", "module", name)
        return os.path.isdir(sys_dir) and not os.path.exists(os.path.join(sys_dir, "initstate"))

    def _feature_builtin(self, name):
        """Evidence string when the kernel config or a visible feature shows ``name`` built in."""
        symbol, marker = FEATURES.get(name, (None, None))
        config = self.kernel_config()
        if symbol and config.get(symbol) == "y":
            source = config["__source__"][len(self.root.rstrip("/")):] or config["__source__"]
            return "CONFIG_%s=y in %s" % (symbol, source)
        if marker and os.path.exists(self.path(marker)):
            return "/%s exists" % marker
        fs_name = FILESYSTEMS.get(name)
        if fs_name and fs_name in self.filesystems():
            return "%s listed in /proc/filesystems" % fs_name
        return None

    def _modprobe_probe(self, name):
        """(status, evidence) from ``modprobe -n -v NAME``; None when modprobe is unavailable."""
        if self.run is None or self.modprobe is None:
            return None
        rc, out, err = self.run(modprobe_argv(self.modprobe, name, dry_run=True))
        if rc == 0:
            if re.search(r"^builtin\s+%s\s*$" % re.escape(name), out or "", re.MULTILINE):
                return BUILTIN, "modprobe -n -v reports builtin"
            return LOADABLE, ("modprobe -n -v: %s" % " ".join((out or "").split())) if (out or "").strip() else "modprobe -n -v succeeds"
        return MISSING, "modprobe -n -v: %s" % (" ".join((err or out or "").split()) or "rc=%d" % rc)

    def probe(self, name):
        """Return ``(status, evidence)`` for one module name."""
        name = normalize(name)
        if self.module_support and name in self.loaded_modules():
            return LOADED, "listed in /proc/modules"
        if name in self.builtin_modules():
            return BUILTIN, "listed in modules.builtin of %s" % self.release
        if self._sys_module_builtin(name):
            if self.module_support:
                return BUILTIN, "/sys/module/%s exists and /proc/modules does not list it" % name
            return BUILTIN, "/sys/module/%s exists and the kernel has no module support" % name
        feature = self._feature_builtin(name)
        if feature:
            return BUILTIN, feature
        if not self.module_support:
            return MISSING, "not built into kernel %s, which has no module support (/proc/modules absent)" % self.release
        if self.modules_disabled:
            return MISSING, "not built in, and module loading is disabled (kernel.modules_disabled=1)"
        probed = self._modprobe_probe(name)
        if probed is not None and probed[0] != MISSING:
            return probed
        if name in self.dep_modules():
            return LOADABLE, "listed in %s" % os.path.join(self.modules_dir, "modules.dep")[len(self.root.rstrip("/")):]
        if probed is not None:
            return probed
        return MISSING, "not loaded, not built in and not in modules.dep of %s" % self.release

    def forget(self):
        """Drop cached /proc/modules (after a load)."""
        self._loaded = None


def parse_requests(modules):
    """Turn the ``modules`` option (names or dicts) into a list of request dicts; InputError names the item."""
    requests = []
    seen = set()
    for index, item in enumerate(require_list("modules", modules)):
        option = "modules[%d]" % index
        if isinstance(item, str):
            item = {"name": item}
        elif not isinstance(item, dict):
            raise InputError(option, "must be a module name or a dict with name, got %s" % type_name(item))
        require_keys(option, item, ("name", "required", "params", "reason"), required=("name",))
        name = module_name(option + ".name", item["name"])
        key = normalize(name)
        if key in seen:
            raise InputError(option + ".name", "module %s is listed twice in modules" % key)
        seen.add(key)
        required = require_boolean(option + ".required", item.get("required", True))
        params = param_words(option + ".params", item.get("params"))
        reason = item.get("reason")
        reason = "" if reason is None else require_str(option + ".reason", reason, allow_empty=True, max_length=1024)
        requests.append({"name": key, "required": required, "params": " ".join(params), "reason": reason})
    return requests


def module_name(option, value):
    """A kernel module name: 1-55 of ``[A-Za-z0-9_-]`` (the kernel's MODULE_NAME_LEN is 56 with the NUL), not
    starting with ``-``. Never a path, never an option."""
    return safe_name(option, value, what="kernel module name", pattern=_NAME_RE, max_length=55)


def param_words(option, params):
    """The words of a module's parameters, each checked against ``PARAM_WORD_RE`` (see the module docstring).

    ``params`` is a string of space-separated ``name=value`` words, or a dict ``{name: value}`` whose values are
    strings, integers, bools (``1``/``0``) or lists of strings and integers (joined with ``,``, the kernel's array
    syntax). Null or empty means no parameters.
    """
    if params is None or params == "":
        return []
    if isinstance(params, str):
        words = [(option, word) for word in require_str(option, params, max_length=MAX_PARAMS_LENGTH).split()]
    elif isinstance(params, dict):
        words = []
        for name, value in params.items():
            if not isinstance(name, str) or not _PARAM_NAME_RE.match(name):
                raise InputError(option, "parameter name %r is not a kernel parameter name ([A-Za-z0-9_], not starting with "
                                         "a digit)" % (name,))
            item = "%s.%s" % (option, name)
            words.append((item, "%s=%s" % (name, _param_value(item, value))))
    else:
        raise InputError(option, "must be a string of name=value words or a dict, got %s" % type_name(params))
    for where, word in words:
        if not PARAM_WORD_RE.match(word):
            raise InputError(where, "%r is not a module parameter: write name=value, the name of [A-Za-z0-9_] not "
                                    "starting with a digit, the value of printable ASCII without spaces, quotes or "
                                    "backslashes" % word)
    if sum(len(word) + 1 for _where, word in words) > MAX_PARAMS_LENGTH:
        raise InputError(option, "is longer than %d characters" % MAX_PARAMS_LENGTH)
    return [word for _where, word in words]


def _param_value(option, value):
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value):
        return ",".join(str(v) for v in value)
    raise InputError(option, "must be a string, an integer, a bool or a non-empty list of strings and integers, got %s"
                     % type_name(value))


def modprobe_argv(modprobe, name, params=(), dry_run=False):
    """modprobe's command line: options first, ``--`` to end them, then the module name and its parameters.

    GNU getopt in modprobe permutes arguments, so an option after the module name is still an option; ``--``
    ends option parsing, and every parameter word also matches ``PARAM_WORD_RE`` (starts with a name character),
    so neither the name nor a parameter can ever be read as one of modprobe's options.
    """
    return [modprobe] + (["-n", "-v"] if dry_run else []) + ["--", module_name("name", name)] + list(params)


def missing_message(request, evidence, release, module_support=True):
    why = " (needed for %s)" % request["reason"] if request["reason"] else ""
    name = request["name"]
    if module_support:
        fix = ("install the modules package for kernel %s (for example linux-image-%s, or linux-modules-extra-%s on Ubuntu) "
               "so that 'modprobe %s' works, or boot a kernel that has %s built in" % (release, release, release, name, name))
    else:
        fix = ("boot a kernel that has %s built in (CONFIG_%s=y), or one with module support that ships it"
               % (name, FEATURES.get(name, (name.upper(), None))[0]))
    return "kernel module %s%s is missing on kernel %s: %s. Fix: %s" % (name, why, release, evidence, fix)


def render_load_file(names):
    if not names:
        return None
    return HEADER + "".join("%s\n" % name for name in names)


def render_options_file(options):
    if not options:
        return None
    return OPTIONS_HEADER + "".join("options %s %s\n" % (name, params) for name, params in options)


def parse_load_file(text):
    """Module names in a modules-load.d file (comments and blanks ignored)."""
    if text is None:
        return None
    names = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        names.append(normalize(line))
    return names


def parse_options_file(text):
    """``{name: params}`` from ``options NAME params`` lines of a modprobe.d file."""
    if text is None:
        return None
    options = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "options":
            options[normalize(words[1])] = " ".join(words[2:])
    return options


def plan_file(before, desired_text, parse):
    """What to do with one managed file whose text is ``before``: write, remove or none.

    Compares parsed data, so a comment edited by hand does not count as a change.
    """
    if desired_text is None:
        return "remove" if before is not None else "none"
    if before is None:
        return "write"
    current = parse(before)
    wanted = parse(desired_text)
    if isinstance(current, list):
        same = sorted(current) == sorted(wanted) and len(set(current)) == len(current)
    else:
        same = current == wanted
    return "none" if same else "write"


class Result:
    """Outcome of :func:`ensure` (what the module returns)."""

    def __init__(self):
        self.changed = False
        self.modules = []
        self.warnings = []
        self.failures = []
        self.diff = []
        self.persisted = []
        self.files = {}


def ensure(kernel, requests, persist, persist_file, check_mode, load, write, remove):
    """Probe, load and persist the requested modules.

    ``load(name, params) -> (rc, out, err)`` loads one module; ``write(path, text, expected)`` and
    ``remove(path, expected)`` change files (called only outside check mode; ``expected`` is the content read
    before, ``False`` for none, for a compare-and-replace). Required modules that are missing, or fail to
    load, end up in ``result.failures``; optional ones in ``result.warnings``. Nothing is loaded or written
    when any required module is missing, and nothing is written when one fails to load. The persist files
    are read (symlink rule, UTF-8) before anything is loaded; ``ManagedFileError`` stops the run there.
    """
    result = Result()
    to_load = []
    for request in requests:
        status, evidence = kernel.probe(request["name"])
        entry = {
            "name": request["name"],
            "status": status,
            "evidence": evidence,
            "required": request["required"],
            "params": request["params"],
            "action": "none",
            "present": status in (LOADED, BUILTIN),
        }
        result.modules.append(entry)
        if status == MISSING:
            message = missing_message(request, evidence, kernel.release, kernel.module_support)
            (result.failures if request["required"] else result.warnings).append(message if request["required"] else "optional " + message)
        elif status == LOADABLE:
            to_load.append((entry, request))
    if result.failures:
        return result
    if persist:
        load_path = kernel.path("etc", "modules-load.d", persist_file)
        options_path = kernel.path("etc", "modprobe.d", persist_file)
        current = {path: read_managed(path) for path in (load_path, options_path)}

    for entry, request in to_load:
        if check_mode:
            entry["action"] = "would load"
            result.changed = True
            continue
        rc, out, err = load(request["name"], request["params"])
        kernel.forget()
        if rc == 0 and request["name"] in kernel.loaded_modules():
            entry["action"] = "loaded"
            entry["present"] = True
            result.changed = True
            continue
        entry["action"] = "load failed"
        detail = " ".join((err or out or "").split()) or "rc=%d, and /proc/modules does not list it afterwards" % rc
        message = "modprobe %s failed on kernel %s: %s" % (request["name"], kernel.release, detail)
        if request["required"]:
            why = " (needed for %s)" % request["reason"] if request["reason"] else ""
            result.failures.append("required kernel module %s%s could not be loaded: %s" % (request["name"], why, message))
        else:
            result.warnings.append("optional " + message)
    if result.failures:
        return result

    if not persist:
        return result
    # Persist what must be loaded at boot: modules that are (or were just made) loaded as
    # modules. Built-ins are always there; missing modules would make systemd-modules-load fail.
    boot = [e for e in result.modules if e["status"] in (LOADED, LOADABLE) and e["action"] != "load failed"]
    result.persisted = [e["name"] for e in boot]
    plans = (
        (load_path, render_load_file(result.persisted), parse_load_file),
        (options_path, render_options_file([(e["name"], e["params"]) for e in boot if e["params"]]), parse_options_file),
    )
    for path, text, parse in plans:
        resolved, before_bytes, before = current[path]
        action = plan_file(before, text, parse)
        shown = "/" + os.path.relpath(path, kernel.root) if kernel.root not in ("", "/") else path
        result.files[shown] = action
        if action == "none":
            continue
        result.changed = True
        result.diff.append({"before_header": shown, "after_header": shown, "before": before or "", "after": text or ""})
        if check_mode:
            continue
        expected = before_bytes if before_bytes is not None else False
        if action == "write":
            write(resolved, text, expected)
        else:
            remove(path, expected)
    return result
