# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's input policy (docs/SECURITY.md), shared by every module and plugin.

Stdlib only: it runs on managed nodes (inside modules) and on the controller (action and filter plugins).
Every check raises ``InputError`` naming the option and what is wrong with the value; nothing is converted
silently (a list is never turned into the string ``"['a']"``, a bool is not an int).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re

# Keys whose values are credentials wherever they appear in structured input (containerd registry auth,
# docker daemon.json auths, ...). Compared case-insensitively; modules may add their own.
SECRET_KEYS = frozenset(("password", "auth", "identitytoken", "token", "registrytoken", "secret", "private_key"))
MASK = "********"

_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_BUT_NEWLINE_RE = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")
_WHITESPACE_RE = re.compile(r"\s")
# A DNS label or an IPv4/IPv6 literal, optionally with :port: what a registry host or a hostname may be.
_DNS_LABEL_RE = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


class InputError(ValueError):
    """A value that breaks the input policy. ``option`` names where it came from."""

    def __init__(self, option, problem):
        self.option = option
        self.problem = problem
        super().__init__("%s: %s" % (option, problem) if option else problem)


def type_name(value):
    """How a value's type reads in a message (``a list``, ``a bool``, ...)."""
    if value is None:
        return "null"
    for kind, name in ((bool, "a bool"), (int, "an integer"), (float, "a float"), (str, "a string"),
                       ((list, tuple), "a list"), (dict, "a dict"), (bytes, "bytes")):
        if isinstance(value, kind):
            return name
    return "a %s" % type(value).__name__


def require_str(option, value, allow_empty=False, multiline=False, max_length=65536):
    """A string: not empty (unless allowed), no NUL or control characters (newlines only when ``multiline``)."""
    if not isinstance(value, str):
        raise InputError(option, "must be a string, got %s" % type_name(value))
    if not allow_empty and value == "":
        raise InputError(option, "must not be empty")
    if len(value) > max_length:
        raise InputError(option, "is %d characters long, more than the %d allowed" % (len(value), max_length))
    bad = (_CONTROL_BUT_NEWLINE_RE if multiline else _CONTROL_RE).search(value)
    if bad:
        raise InputError(option, "contains the control character %r at position %d" % (bad.group(), bad.start()))
    return value


def require_bool(option, value):
    if not isinstance(value, bool):
        raise InputError(option, "must be true or false, got %s" % type_name(value))
    return value


def require_int(option, value, minimum=None, maximum=None):
    """An integer (a bool is not one) within the bounds given."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(option, "must be an integer, got %s" % type_name(value))
    if minimum is not None and value < minimum:
        raise InputError(option, "must be at least %d, got %d" % (minimum, value))
    if maximum is not None and value > maximum:
        raise InputError(option, "must be at most %d, got %d" % (maximum, value))
    return value


def require_number(option, value, minimum=None, maximum=None):
    """An int or float (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(option, "must be a number, got %s" % type_name(value))
    if minimum is not None and value < minimum:
        raise InputError(option, "must be at least %s, got %s" % (minimum, value))
    if maximum is not None and value > maximum:
        raise InputError(option, "must be at most %s, got %s" % (maximum, value))
    return value


def require_list(option, value, item=None):
    """A list; ``item(option_of_item, value)`` checks (and may normalise) each element."""
    if not isinstance(value, (list, tuple)):
        raise InputError(option, "must be a list, got %s" % type_name(value))
    if item is None:
        return list(value)
    return [item("%s[%d]" % (option, index), element) for index, element in enumerate(value)]


def require_dict(option, value):
    """A dict whose keys are non-empty strings without control characters."""
    if not isinstance(value, dict):
        raise InputError(option, "must be a dict, got %s" % type_name(value))
    for key in value:
        require_str("%s key %r" % (option, key), key)
    return value


_BOOLEAN_WORDS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}


def require_boolean(option, value):
    """A bool, or one of the words Ansible's own ``bool`` options accept (``yes``/``no``, ``true``/``false``,
    ``on``/``off``, ``1``/``0``, any case): what a templated expression such as ``"{{ x == 'y' }}"`` gives inside
    a ``raw`` or ``dict`` option. Anything else (another word, a number, null, a list) is refused."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _BOOLEAN_WORDS:
        return _BOOLEAN_WORDS[value.strip().lower()]
    shown = repr(value) if isinstance(value, str) else type_name(value)
    raise InputError(option, "must be true or false, got %s" % shown)


def require_keys(option, value, allowed, required=()):
    """A dict with only the ``allowed`` keys and every ``required`` one; the message lists what is allowed."""
    require_dict(option, value)
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise InputError(option, "has unknown keys %s; allowed: %s" % (", ".join(unknown), ", ".join(allowed)))
    missing = [key for key in required if key not in value]
    if missing:
        raise InputError(option, "needs the keys %s" % ", ".join(missing))
    return value


def require_scalar(option, value):
    """A string, number or bool: what a config file holds as a single value. Null, lists and dicts are refused."""
    if isinstance(value, str):
        return require_str(option, value, allow_empty=True)
    if isinstance(value, (bool, int, float)):
        return value
    raise InputError(option, "must be a string, number or bool, got %s" % type_name(value))


def untagged(value):
    """Task arguments as plain Python values: Ansible's tagged str/dict/list subclasses become str/dict/list, so that
    renderers (tomlkit, PyYAML, json) see ordinary data. Nothing is checked or refused here (see ``plain_data``)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, dict):
        return {untagged(key): untagged(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [untagged(item) for item in value]
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return value


def plain_data(option, value):
    """Structured input (dicts, lists, strings, numbers, bools; Ansible's tagged subclasses included) as plain
    Python values, e.g. to render a TOML or JSON file. Null and other types are refused, naming where they are."""
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(require_str(option, value, allow_empty=True, multiline=True))
    if isinstance(value, (list, tuple)):
        return [plain_data("%s[%d]" % (option, index), item) for index, item in enumerate(value)]
    if isinstance(value, dict):
        require_dict(option, value)
        return {str(key): plain_data("%s.%s" % (option, key), item) for key, item in value.items()}
    raise InputError(option, "must be a string, number, bool, list or dict, got %s" % type_name(value))


def absolute_path(option, value):
    """An absolute path without ``..``; returned normalised (``//`` and ``/./`` collapsed, no trailing ``/``)."""
    require_str(option, value)
    if not value.startswith("/"):
        raise InputError(option, "must be an absolute path (starting with /), got %r" % value)
    if ".." in value.split("/"):
        raise InputError(option, "must not contain '..' components, got %r" % value)
    return os.path.normpath(value) if value != "/" else value


def safe_name(option, value, what="name", pattern=None, max_length=255):
    """A name that can become one path component and one command argument, never an option or a path.

    Refused: empty, ``.``/``..``, a ``/``, whitespace or control characters, a leading ``-``. ``pattern`` (a
    compiled regex) narrows the grammar further, e.g. to a kernel module name.
    """
    require_str(option, value, max_length=max_length)
    if value in (".", ".."):
        raise InputError(option, "%r is not a valid %s" % (value, what))
    if "/" in value:
        raise InputError(option, "%s %r must not contain '/'" % (what, value))
    if _WHITESPACE_RE.search(value):
        raise InputError(option, "%s %r must not contain whitespace" % (what, value))
    if value.startswith("-"):
        raise InputError(option, "%s %r must not start with '-' (it would be read as a command option)" % (what, value))
    if pattern is not None and not pattern.match(value):
        raise InputError(option, "%r is not a valid %s" % (value, what))
    return value


_FILE_NAME_RE = re.compile(r"^[A-Za-z0-9_@+-][A-Za-z0-9_.@+-]*$")


def file_name(option, value, suffixes=(), what="file name"):
    """One plain file name (no directory) made of ``[A-Za-z0-9_.@+-]``, not hidden, ending with one of ``suffixes``
    when given: the name of a drop-in that a tool reads only when it has that suffix (``.conf`` for
    systemd-modules-load, modprobe.d and sysctl.d)."""
    safe_name(option, value, what=what)
    if not _FILE_NAME_RE.match(value):
        raise InputError(option, "%s %r may only contain letters, digits and '_.@+-', and must not start with '.'"
                         % (what, value))
    if suffixes and not any(value.endswith(suffix) and len(value) > len(suffix) for suffix in suffixes):
        raise InputError(option, "%s %r must end with %s (other names are ignored by the tool that reads the directory)"
                         % (what, value, " or ".join(suffixes)))
    return value


def not_option(option, value):
    """A value passed as a command argument: a string that cannot be mistaken for an option."""
    require_str(option, value)
    if value.startswith("-"):
        raise InputError(option, "%r must not start with '-' (it would be read as a command option)" % value)
    return value


def host_name(option, value, allow_port=False):
    """A DNS name or an IP address literal (``[v6]`` with a port), as a registry host or an SAN is written."""
    require_str(option, value, max_length=253 + 8)
    host, port = value, None
    if allow_port:
        match = re.match(r"^(\[[0-9A-Fa-f:.]+\]|[^:]+):([0-9]{1,5})$", value)
        if match:
            host, port = match.group(1), int(match.group(2))
            if not 0 < port < 65536:
                raise InputError(option, "%r has port %d, outside 1-65535" % (value, port))
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if is_ip_address(bare):
        return value
    if host != bare or len(host) > 253 or not all(_DNS_LABEL_RE.match(label) for label in host.rstrip(".").split(".")):
        raise InputError(option, "%r is neither a DNS name nor an IP address" % value)
    return value


def is_ip_address(text):
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def path_under(root, parts, option="path"):
    """``root`` joined with ``parts`` (each one path component), proven to stay under ``root``.

    Each component must be a plain name: not empty, ``.`` or ``..``, and without ``/`` or NUL. The result is
    also checked lexically against ``root`` (``os.path.commonpath``), so no input can leave it.
    """
    root = os.path.normpath(root)
    for part in parts:
        if not isinstance(part, str) or part in ("", ".", "..") or "/" in part or "\x00" in part:
            raise InputError(option, "%r cannot be a path component under %s" % (part, root))
    joined = os.path.normpath(os.path.join(root, *parts))
    if os.path.commonpath([root, joined]) != root:
        raise InputError(option, "%s is outside %s" % (joined, root))
    return joined


def is_secret_key(key, extra=()):
    lowered = str(key).lower()
    return lowered in SECRET_KEYS or lowered in {str(k).lower() for k in extra}


def collect_secrets(data, extra=()):
    """Every string value held under a secret key anywhere in ``data`` (dicts and lists, recursively)."""
    found = []

    def walk(node, secret):
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, secret or is_secret_key(key, extra))
        elif isinstance(node, (list, tuple)):
            for value in node:
                walk(value, secret)
        elif secret and node not in (None, "") and not isinstance(node, bool):
            found.append(str(node))

    walk(data, False)
    return found


def mask_secrets(data, extra=()):
    """A copy of ``data`` with every value under a secret key replaced by ``MASK``."""
    if isinstance(data, dict):
        return {key: (MASK if is_secret_key(key, extra) and value not in (None, "") else mask_secrets(value, extra))
                for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [mask_secrets(value, extra) for value in data]
    return data


def _escaped_forms(secret):
    """How a secret can appear in rendered text: raw, TOML/JSON-escaped (quotes and backslashes, control characters
    as ``\\n`` or ``\\u001b`` in either case of hex, non-ASCII raw or as ``\\uXXXX``)."""
    forms = {secret, secret.replace("\\", "\\\\").replace('"', '\\"')}
    for ascii_only in (False, True):
        escaped = json.dumps(secret, ensure_ascii=ascii_only)[1:-1]
        forms.add(escaped)
        forms.add(re.sub(r"\\u([0-9a-f]{4})", lambda m: "\\u" + m.group(1).upper(), escaped))
    return forms


def mask_text(text, secrets):
    """``text`` with every occurrence of each secret (raw, and as TOML/JSON would escape it) replaced by ``MASK``."""
    forms = set()
    for secret in {s for s in secrets if s}:
        forms.update(_escaped_forms(secret))
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, MASK)
    return text


_SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")
_OCTAL_MODE_RE = re.compile(r"^0?[0-7]{3,4}$")


def sha256_checksum(option, value):
    """A sha256 checksum written ``sha256:<64 hex>`` or as the 64 hex digits alone; returned as lower-case hex."""
    require_str(option, value)
    text = value.strip()
    algorithm, _sep, digest = text.rpartition(":")
    if algorithm and algorithm.lower() != "sha256":
        raise InputError(option, "only sha256 checksums are supported (sha256:<64 hex digits>), got the algorithm %r" % algorithm)
    if not _SHA256_RE.match(digest):
        raise InputError(option, "must be a sha256 checksum, sha256:<64 hex digits>, got %r" % value)
    return digest.lower()


def octal_mode(option, value):
    """A file mode written as an octal string (``"0755"``); returned as an int.

    A YAML integer is refused: ``mode: 0755`` reaches a module as the decimal 493 (or as 755 when written without the
    leading 0), so the only unambiguous spelling is a quoted string.
    """
    if isinstance(value, bool) or not isinstance(value, str):
        raise InputError(option, "must be an octal string such as '0755' (quoted, so YAML keeps it octal), got %s" % type_name(value))
    if not _OCTAL_MODE_RE.match(value):
        raise InputError(option, "must be an octal mode such as '0755', got %r" % value)
    mode = int(value, 8)
    if mode > 0o7777:
        raise InputError(option, "%r is not a file mode (at most 07777)" % value)
    return mode


def url(option, value, schemes=("https", "http")):
    """A URL with one of ``schemes``, a host and no whitespace or control characters; returned unchanged."""
    require_str(option, value, max_length=8192)
    match = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)", value)
    if not match or match.group(1).lower() not in schemes:
        raise InputError(option, "must be a %s URL, got %r" % (" or ".join(schemes), value))
    if _WHITESPACE_RE.search(value):
        raise InputError(option, "must not contain whitespace (percent-encode it as %%20), got %r" % value)
    authority = match.group(2).rpartition("@")[2]
    if not authority:
        raise InputError(option, "has no host: %r" % value)
    return value
