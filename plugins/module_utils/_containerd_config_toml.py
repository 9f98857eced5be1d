# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Editing TOML text in place: the only part of containerd_config that uses tomlkit (public API only).

Reading is ``tomllib`` (plain data, fast). Writing applies a list of edits (``Set``, ``RemoveItems``,
``Table``) computed elsewhere from plain data, keeping every comment, blank line and key order.

tomlkit's parser is quadratic in the number of tables of a file (it deep-copies a table each time a
sub-table is added): a 300-line config.toml takes tens of milliseconds, a 2,000-line one seconds, and
minutes when tables are split over several places (benchmarks/containerd_config_merge.py). So the text
is cut at its table headers and only the sections an edit lands in are parsed, and a value changed in a
``key = value`` line is replaced in that line without parsing at all. Every result must read back (tomllib)
as exactly the data the edits were computed for, or the next, more general way is taken, down to parsing the
whole document (slow, but exact).
"""

from __future__ import annotations

import collections
import math
import re

from ansible_collections.kubeforge.cluster.plugins.module_utils._containerd_config_schema import ContainerdConfigError

try:
    import tomlkit
    HAS_TOMLKIT = True
    TOMLKIT_IMPORT_ERROR = None
except ImportError as _exc:  # only the controller needs it; the message says where to install it
    tomlkit = None
    HAS_TOMLKIT = False
    TOMLKIT_IMPORT_ERROR = _exc

# What tomlkit raises for an edit the document's structure cannot take (a key under an array of tables, a
# table in an inline table, a key it already holds elsewhere): builtin errors and tomlkit's own.
_EDIT_ERRORS = (KeyError, ValueError, TypeError, AttributeError, IndexError) + ((tomlkit.exceptions.TOMLKitError,) if HAS_TOMLKIT else ())

try:  # Python 3.11+: always the case on the controller (ansible-core 2.19)
    import tomllib
except ImportError:  # pragma: no cover - only reached by sanity tests on older Pythons
    tomllib = None

MASK = "********"

Set = collections.namedtuple("Set", "path value")  # set a key (not a table) to a value
RemoveItems = collections.namedtuple("RemoveItems", "path items")  # drop array items equal to any of ``items``
Table = collections.namedtuple("Table", "path")  # make sure an (empty) table exists

_HEADER_START = re.compile(r"^[ \t]*\[", re.MULTILINE)
_KEY_PART = r"""(?:[A-Za-z0-9_-]+|"[^"\\\n]*"|'[^'\n]*')"""
_HEADER = re.compile(r"^[ \t]*(\[\[?)[ \t]*(%s(?:[ \t]*\.[ \t]*%s)*)[ \t]*\]\]?[ \t]*(?:#.*)?$" % (_KEY_PART, _KEY_PART))
_KEY_PARTS = re.compile(_KEY_PART)
_POSITION = re.compile(r"\(at line (\d+), column (\d+)\)")


def require_tomlkit():
    if not HAS_TOMLKIT:
        raise ContainerdConfigError(
            "the Python library tomlkit is required on the Ansible controller, where containerd_config merges the file (%s); "
            "install it there, e.g. 'python3 -m pip install tomlkit' or the distribution package python3-tomlkit" % (TOMLKIT_IMPORT_ERROR,))


def loads(text, source):
    """TOML text -> plain data; a syntax error names the line and column (never the line's content)."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        reason = str(exc)
        where = _POSITION.search(reason)
        line, column = (int(where.group(1)), int(where.group(2))) if where else (None, None)
        reason = _POSITION.sub("", reason).strip()
        raise ContainerdConfigError(
            "%s is not valid TOML (line %s, column %s): %s. Fix the file by hand; nothing was changed" % (source, line, column, reason),
            line=line, column=column) from None


def same(a, b):
    """Data equality as TOML means it: types must match (true is not 1) and nan equals nan."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def insert_first_key(text, key, value):
    """``key = value`` before the file's first statement, after its leading comment block (licence headers)."""
    line = "%s = %s\n" % (key, tomlkit.item(value).as_string())
    lines = text.splitlines(True)
    for index, current in enumerate(lines):
        stripped = current.strip()
        if stripped and not stripped.startswith("#"):
            return "".join(lines[:index]) + line + "\n" + "".join(lines[index:])
    return text + ("\n" if text and not text.endswith("\n") else "") + line


def rename_tables(text, rename, expected, what):
    """Rewrite the key path of every table header through ``rename(path) -> path``; comments stay.

    ``expected`` is the plain data the result must read back as; tables defined other than by headers
    (inline tables, dotted keys) cannot be renamed this way, and ``what`` then says what to do by hand.
    """
    out, pos = [], 0
    for match in _HEADER_START.finditer(text):
        line_end = text.find("\n", match.start())
        line = text[match.start(): line_end if line_end >= 0 else len(text)]
        header = _HEADER.match(line)
        if not header:
            continue
        path = _header_path(header.group(2))
        new = rename(path)
        if new != path:
            out.append(text[pos: match.start() + header.start(2)])
            out.append(".".join(_quote(part) for part in new))
            pos = match.start() + header.end(2)
    out.append(text[pos:])
    result = "".join(out)
    if not same(loads(result, "the renamed file"), expected):
        raise ContainerdConfigError(what)
    return result


def apply_edits(text, edits, expected):
    """``text`` with ``edits`` applied; it must read back as ``expected`` (plain data).

    Tried in order until one reads back right: the section cut with values changed in their own line,
    the section cut with every edited section parsed by tomlkit, the whole document parsed by tomlkit.
    """
    require_tomlkit()
    if not edits:
        return text
    for split, in_line in ((True, True), (True, False)):
        sections = _Sections(text, split=split, in_line=in_line)
        if not sections.usable():
            break
        try:
            result = sections.apply_all(edits)
            if same(tomllib.loads(result), expected):
                return result
        except Exception:  # noqa: BLE001 - a surprise in the section cut only means: take the next, more general way
            pass
    result = _Sections(text, split=False).apply_all(edits)
    if not same(tomllib.loads(result), expected):
        raise ContainerdConfigError("internal error: the merged TOML does not read back as the intended data; nothing was changed")
    return result


def mask_values(text, data, is_secret, secrets):
    """``text`` with every value under a secret key shown as ``MASK``, or None when that cannot be done exactly.

    Values are replaced through the TOML structure (so escaped spellings are caught as well); any other
    occurrence of a secret (a comment, another key) is replaced in the text; the result is checked.
    """
    replacements = []
    masked = _masked(data, is_secret, (), replacements)
    try:
        result = apply_edits(text, [Set(path, value) for path, value in replacements], masked) if replacements else text
    except ContainerdConfigError:
        return None
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        escaped = secret.replace("\\", "\\\\").replace('"', '\\"')
        result = result.replace(secret, MASK).replace(escaped, MASK)
    try:
        reread = tomllib.loads(result)
    except tomllib.TOMLDecodeError:
        return None
    if any(secret and secret in result for secret in secrets) or _secret_left(reread, is_secret, secrets):
        return None
    return result


# --------------------------------------------------------------------------- internals


def _quote(part):
    if re.match(r"^[A-Za-z0-9_-]+$", part):
        return part
    return '"%s"' % part.replace("\\", "\\\\").replace('"', '\\"')


def _header_path(key_text):
    return tuple(p[1:-1] if p[0] in "\"'" else p for p in _KEY_PARTS.findall(key_text))


def _masked(data, is_secret, prefix, replacements):
    """A copy of ``data`` with secret values replaced by MASK; (key path, new value) of each replaced value is
    appended to ``replacements`` (a list holding a secret somewhere inside is replaced as a whole)."""
    out = {}
    for key, value in data.items():
        path = prefix + (key,)
        if isinstance(value, dict):
            out[key] = _masked(value, is_secret, path, replacements) if not is_secret(key) else _mask_all(value, path, replacements)
            continue
        new = _mask_plain(value, is_secret(key), is_secret)
        if not same(new, value):
            replacements.append((path, new))
        out[key] = new
    return out


def _mask_all(table, prefix, replacements):
    return _masked(table, lambda _key: True, prefix, replacements)


def _mask_plain(value, secret, is_secret):
    """``value`` (not a table) with secrets masked: all of it under a secret key, else secret keys of inline tables."""
    if isinstance(value, dict):
        return {k: _mask_plain(v, secret or is_secret(k), is_secret) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_plain(v, secret, is_secret) for v in value]
    if secret and value not in (None, "") and not isinstance(value, bool):
        return MASK
    return value


def _secret_left(data, is_secret, secrets, inside=False):
    if isinstance(data, dict):
        return any(_secret_left(v, is_secret, secrets, inside or is_secret(k)) for k, v in data.items())
    if isinstance(data, list):
        return any(_secret_left(v, is_secret, secrets, inside) for v in data)
    if isinstance(data, str):
        return (inside and data not in ("", MASK)) or any(s and s in data for s in secrets)
    return inside and not isinstance(data, bool) and data is not None


class _Sections:
    """TOML text cut at its table headers; a section is parsed with tomlkit only when an edit lands in it.

    With ``split`` false the whole text is one section (the exact, slow way). With ``in_line``, a new value for
    a key written as one ``key = value`` line of a section that is not parsed yet replaces the value's text in
    that line (no parse at all: most edits change one value).
    """

    def __init__(self, text, split, in_line=False):
        self.text = text
        self.split = split
        self.in_line = in_line and split
        self.chunks = [text]
        self.paths = [()]  # header key path of each chunk; () for the head, None for [[array]] elements
        self.docs = {}
        self.index = None  # header path -> section, built on first use
        if split:
            starts = [m.start() for m in _HEADER_START.finditer(text)]
            bounds = [0] + starts + [len(text)]
            self.chunks = [text[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
            self.paths = [()]
            for chunk in self.chunks[1:]:
                header = _HEADER.match(chunk.split("\n", 1)[0])
                if header is None:
                    self.paths = None  # a header-like line that is not one (inside a multi-line value)
                    break
                self.paths.append(None if header.group(1) == "[[" else _header_path(header.group(2)))

    def usable(self):
        """Every header-like line reads as a header. A line inside a multi-line value that looks like one is caught
        later: an edit there fails or does not read back as intended, and the next, more general way is taken."""
        return self.paths is not None and len(self.chunks) > 1

    def _route(self, table_path):
        """The section whose header is the longest prefix of ``table_path`` (the head for top-level keys)."""
        if self.index is None:
            self.index = {}
            for index, path in enumerate(self.paths):
                if path:
                    self.index.setdefault(path, index)
        for length in range(len(table_path), 0, -1):
            found = self.index.get(tuple(table_path[:length]))
            if found is not None:
                return found
        return 0

    def _container(self, table_path):
        index = self._route(table_path)
        if index not in self.docs:
            self.docs[index] = tomlkit.parse(self.chunks[index])
        container = self.docs[index]
        for part in table_path:
            if part not in container:
                container[part] = tomlkit.table(is_super_table=True)
            container = container[part]
        return container

    def _set_in_line(self, path, value):
        """Replace the value text of ``key = value`` in its own line of an unparsed section; False if not that simple."""
        index = self._route(path[:-1])
        section = self.paths[index]
        if index in self.docs or section is None or tuple(path[:len(section)]) != section or len(path) != len(section) + 1:
            return False
        chunk, key = self.chunks[index], path[-1]
        spellings = [re.escape("'%s'" % key), re.escape('"%s"' % key)] + ([re.escape(key)] if re.match(r"^[A-Za-z0-9_-]+$", key) else [])
        lines = list(re.finditer(r"^([ \t]*(?:%s)[ \t]*=[ \t]*)([^\n]*)$" % "|".join(spellings), chunk, re.MULTILINE))
        old = tomllib.loads(chunk)
        for part in path:
            if not isinstance(old, dict) or part not in old:
                return False
            old = old[part]
        if len(lines) != 1 or isinstance(old, (dict, list)):
            return False
        rest = lines[0].group(2)
        for end in [i for i, c in enumerate(rest) if c == "#"] + [len(rest)]:  # shortest first: a comment is not the value
            candidate = rest[:end].rstrip()
            try:
                if not candidate or not same(tomllib.loads("v = " + candidate)["v"], old):
                    continue
            except tomllib.TOMLDecodeError:
                continue
            if isinstance(value, str) and candidate.startswith("'") and "'" not in value and "\n" not in value:
                new = tomlkit.string(value, literal=True).as_string()
            else:
                new = tomlkit.item(value).as_string()
            start = lines[0].start(2)
            self.chunks[index] = chunk[:start] + new + chunk[start + len(candidate):]
            return True
        return False

    def apply(self, edit):
        if isinstance(edit, Set) and self.in_line and not isinstance(edit.value, (dict, list)) and self._set_in_line(edit.path, edit.value):
            return
        if isinstance(edit, Set):
            container = self._container(edit.path[:-1])
            key, value = edit.path[-1], edit.value
            if key in container and isinstance(value, str) and "'" not in value and "\n" not in value:
                old = container[key]
                if isinstance(old, tomlkit.items.String) and old.as_string().startswith("'"):
                    value = tomlkit.string(value, literal=True)  # keep containerd 2.x's 'literal' style
            container[key] = value
        elif isinstance(edit, RemoveItems):
            array = self._container(edit.path[:-1])[edit.path[-1]]
            for index in reversed(range(len(array))):
                item = array[index]
                if (item.unwrap() if hasattr(item, "unwrap") else item) in edit.items:
                    del array[index]
        elif isinstance(edit, Table):
            container = self._container(edit.path[:-1])
            if edit.path[-1] not in container:
                container[edit.path[-1]] = tomlkit.table()
        else:  # pragma: no cover - programming error
            raise TypeError("unknown edit %r" % (edit,))

    def apply_all(self, edits):
        for edit in edits:
            try:
                self.apply(edit)
            except _EDIT_ERRORS as exc:  # name the key, keep the traceback out
                if self.split:
                    raise
                raise ContainerdConfigError("cannot write %s into the file (%s: %s); nothing was changed"
                                            % (".".join(_quote(p) for p in edit.path), type(exc).__name__, exc)) from None
        return self.render()

    def render(self):
        out = []
        for index, chunk in enumerate(self.chunks):
            if index not in self.docs:
                out.append(chunk)
                continue
            rendered = tomlkit.dumps(self.docs[index])
            if chunk.endswith("\n\n") and not rendered.endswith("\n\n"):
                rendered += "\n"  # keep the blank line before the next header
            if index < len(self.chunks) - 1 and not rendered.endswith("\n"):
                rendered += "\n"
            out.append(rendered)
        return "".join(out)
