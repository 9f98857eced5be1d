# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What each node of an inventory runs: a line per node, a column per stage the inventory implies.

    python3 tools/lab_summary.py --inventory inventories/lab/hosts.yml   (also: tools/lab.py summary)

Which stages a node runs is read from the inventory (its groups and variables) through the table
in ``tools/lab_summary_stages.toml``; a stage that installs a service adds one line there. Each node
is probed over ssh once (systemd unit state, version, CRI sockets). Exit status 1 when a node does
not answer. Works on any inventory whose hosts take the ssh key of the inventory; stdlib only.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
import sys
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

TOOLS_DIR = Path(__file__).resolve().parent
if str(TOOLS_DIR) not in sys.path:
    sys.path.insert(0, str(TOOLS_DIR))

from kflab.hostcmd import run  # noqa: E402
from kflab.ssh import ssh_run  # noqa: E402

STAGES_FILE = TOOLS_DIR / "lab_summary_stages.toml"
STAGE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
VERSION_RE = re.compile(r"\bv?\d+\.\d+[0-9A-Za-z.~+:-]*")


class SummaryError(RuntimeError):
    """The inventory or the stage table cannot be used; the message names the file."""


# --- the stage table --------------------------------------------------------------------------

@dataclass(frozen=True)
class Stage:
    name: str
    group: str
    unit: str
    when: tuple[tuple[str, tuple[str, ...]], ...] = ()
    version: tuple[str, ...] = ()
    cri_socket: str | None = None
    column: str = ""

    def applies_to(self, host: str, inventory: Inventory) -> bool:
        if host not in inventory.groups.get(self.group, ()):
            return False
        hostvars = inventory.hostvars.get(host, {})
        return all(variable_text(hostvars.get(var)) in accepted for var, accepted in self.when)


@dataclass(frozen=True)
class StageTable:
    stages: tuple[Stage, ...]
    other_cri_sockets: tuple[str, ...] = ()

    def cri_sockets(self) -> list[str]:
        return list(dict.fromkeys([s.cri_socket for s in self.stages if s.cri_socket] + list(self.other_cri_sockets)))


def _strings(value, what: str, path: Path) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise SummaryError("%s: %s must be a list of strings" % (path, what))
    return tuple(value)


def load_stages(path: Path = STAGES_FILE) -> StageTable:
    """The stage table; a SummaryError names the file and the stage when an entry is malformed."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SummaryError("cannot read the stage table %s: %s" % (path, exc)) from exc
    stages = []
    known = {"group", "unit", "when", "version", "cri_socket", "column"}
    for name, entry in (data.get("stages") or {}).items():
        where = "stage %s" % name
        if not STAGE_NAME_RE.match(name) or not isinstance(entry, dict):
            raise SummaryError("%s: %s: a name of lower-case letters, digits, '-' and '_' = {inline table}" % (path, where))
        unknown = sorted(set(entry) - known)
        missing = sorted({"group", "unit"} - set(entry))
        if unknown or missing:
            raise SummaryError("%s: %s: %s" % (path, where, "; ".join(
                (["unknown field(s) %s (known: %s)" % (", ".join(unknown), ", ".join(sorted(known)))] if unknown else [])
                + (["missing %s" % ", ".join(missing)] if missing else []))))
        for key in ("group", "unit", "cri_socket", "column"):
            if key in entry and not (isinstance(entry[key], str) and entry[key]):
                raise SummaryError("%s: %s: %s must be a non-empty string" % (path, where, key))
        when = entry.get("when", {})
        if not isinstance(when, dict):
            raise SummaryError("%s: %s: when must be {variable = [values]}" % (path, where))
        stages.append(Stage(
            name=name, group=entry["group"], unit=entry["unit"], cri_socket=entry.get("cri_socket"),
            when=tuple((var, _strings(values, "%s: when.%s" % (where, var), path)) for var, values in when.items()),
            version=_strings(entry.get("version", []), "%s: version" % where, path),
            column=entry.get("column", name)))
    others = _strings((data.get("probe") or {}).get("other_cri_sockets", []), "probe.other_cri_sockets", path)
    return StageTable(tuple(stages), others)


def variable_text(value) -> str:
    """An inventory variable as the table compares it: undefined/None is "", booleans "true"/"false"."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# --- the inventory ----------------------------------------------------------------------------

@dataclass
class Inventory:
    hosts: list[dict] = field(default_factory=list)  # name, address, user, key
    groups: dict[str, set[str]] = field(default_factory=dict)  # group: every host in it (children included)
    hostvars: dict[str, dict] = field(default_factory=dict)


def _expand(direct: dict[str, set[str]], children: dict[str, set[str]]) -> dict[str, set[str]]:
    def members(group, seen):
        result = set(direct.get(group, ()))
        for child in children.get(group, ()):
            if child not in seen:
                result |= members(child, seen | {child})
        return result

    return {group: members(group, {group}) for group in set(direct) | set(children)}


def _host(name: str, hostvars: dict) -> dict:
    return {"name": name, "address": hostvars.get("ansible_host", name), "user": hostvars.get("ansible_user", "root"),
            "key": hostvars.get("ansible_ssh_private_key_file")}


def _from_ansible_inventory(data: dict) -> Inventory:
    hostvars = data.get("_meta", {}).get("hostvars", {})
    direct = {g: set(v.get("hosts", [])) for g, v in data.items() if g != "_meta" and isinstance(v, dict)}
    children = {g: set(v.get("children", [])) for g, v in data.items() if g != "_meta" and isinstance(v, dict)}
    groups = _expand(direct, children)
    groups["all"] = set(hostvars) | groups.get("all", set())
    return Inventory([_host(name, hostvars[name]) for name in sorted(hostvars)], groups, hostvars)


def parse_simple_yaml(text: str) -> dict:
    """The subset of YAML ``tools/lab.py`` writes: nested mappings, ``{}`` and plain or JSON-quoted scalars."""
    root: dict = {}
    stack = [(-1, root)]
    for raw in text.splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        indent = len(raw) - len(raw.lstrip(" "))
        key, _sep, value = raw.strip().partition(":")
        value = value.strip()
        while stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1]
        if not value:
            parent[key] = {}
            stack.append((indent, parent[key]))
        else:
            parent[key] = {} if value == "{}" else (json.loads(value) if value.startswith('"') else value)
    return root


def _from_yaml_tree(tree: dict) -> Inventory:
    direct, children, group_vars, host_vars, order = {}, {}, {}, {}, []

    def walk(name, node):
        node = node if isinstance(node, dict) else {}
        for host, hvars in (node.get("hosts") or {}).items():
            direct.setdefault(name, set()).add(host)
            host_vars.setdefault(host, {}).update(hvars or {})
            if host not in order:
                order.append(host)
        group_vars.setdefault(name, {}).update(node.get("vars") or {})
        for child, child_node in (node.get("children") or {}).items():
            children.setdefault(name, set()).add(child)
            walk(child, child_node)

    walk("all", tree.get("all") or {})
    groups = _expand(direct, children)
    groups["all"] = set(order)
    hostvars = {}
    for host in order:
        merged = dict(group_vars.get("all", {}))
        for group in sorted(g for g, members in groups.items() if host in members and g != "all"):
            merged.update(group_vars.get(group, {}))
        merged.update(host_vars[host])
        hostvars[host] = merged
    return Inventory([_host(host, hostvars[host]) for host in order], groups, hostvars)


def read_inventory(path: str) -> Inventory:
    """Hosts, groups and variables of an inventory: through ansible-inventory when available, else the
    lab's own format read directly."""
    if shutil.which("ansible-inventory"):
        proc = run(["ansible-inventory", "-i", path, "--list"], check=False, timeout=60)
        if proc.returncode == 0:
            return _from_ansible_inventory(json.loads(proc.stdout))
    return _from_yaml_tree(parse_simple_yaml(Path(path).read_text(encoding="utf-8")))


def inventory_hosts(path: str) -> list[dict]:
    return read_inventory(path).hosts


# --- probing a node -----------------------------------------------------------------------------

PROBE_HEADER = r"""
. /etc/os-release
echo "distro=$ID $VERSION_ID ($VERSION_CODENAME)"
probe() {  # probe KEY UNIT [VERSION-ARGV...]
  k=$1 u=$2; shift 2
  echo "active_$k=$(systemctl is-active "$u" 2>/dev/null | head -n1)"
  echo "load_$k=$(systemctl show -p LoadState --value "$u" 2>/dev/null)"
  [ $# -gt 0 ] && command -v "$1" >/dev/null 2>&1 && echo "version_$k=$("$@" 2>&1 | head -n1)"
  true
}
"""


def probe_script(stages: list[Stage], cri_sockets: list[str]) -> str:
    """The shell script (run with ``sh -s``) that reports on ``stages`` and the CRI sockets present."""
    lines = [PROBE_HEADER.strip()]
    lines.extend("probe %s" % shlex.join([stage.name, stage.unit, *stage.version]) for stage in stages)
    if cri_sockets:
        lines.append('for s in %s; do [ -S "$s" ] && echo "cri=$s"; done' % shlex.join(cri_sockets))
    lines.append("true")
    return "\n".join(lines) + "\n"


def parse_summary(output: str) -> dict:
    result = {"cri": []}
    for line in output.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        if key == "cri":
            result["cri"].append(value)
        else:
            result[key] = value
    return result


def version_of(text: str) -> str:
    """The first version-like word of a ``--version`` line ("Docker version 20.10.24+dfsg1, build" -> 20.10.24+dfsg1)."""
    match = VERSION_RE.search(text or "")
    return match.group(0) if match else (text or "").strip()[:20]


def summary_cell(info: dict, stage: str) -> str:
    """``active 1.7.24``, ``inactive``, or ``-`` when the service is not installed at all."""
    version = version_of(info.get("version_%s" % stage, ""))
    if info.get("load_%s" % stage) == "not-found" and not version:
        return "-"
    active = info.get("active_%s" % stage) or "?"
    return "%s %s" % (active, version) if version else active


# --- the table ----------------------------------------------------------------------------------

def columns(table: StageTable, inventory: Inventory) -> list[str]:
    """Columns of the stages at least one host runs, in table order."""
    shown = []
    for stage in table.stages:
        if stage.column not in shown and any(stage.applies_to(h["name"], inventory) for h in inventory.hosts):
            shown.append(stage.column)
    return shown


def summary_rows(table: StageTable, inventory: Inventory, outputs: dict[str, tuple[int, str, str]]) -> list[list[str]]:
    """Header and one row per host from each host's probe (rc, stdout, stderr); unreachable rows have 2 cells."""
    shown = columns(table, inventory)
    rows = [["NODE", "DISTRO", *shown, "CRI SOCKET"]]
    for host in inventory.hosts:
        rc, out, err = outputs[host["name"]]
        if rc != 0:
            rows.append([host["name"], "unreachable: %s" % (err or out).strip()])
            continue
        info = parse_summary(out)
        cells = dict.fromkeys(shown, "")
        for stage in table.stages:
            if stage.applies_to(host["name"], inventory):
                cells[stage.column] = summary_cell(info, stage.name)
        rows.append([host["name"], info.get("distro", "?"), *cells.values(), ",".join(info["cri"]) or "-"])
    return rows


def format_rows(rows: list[list[str]]) -> str:
    full = [row for row in rows if len(row) == len(rows[0])]
    widths = [max(len(row[i]) for row in full) for i in range(len(rows[0]) - 1)]
    lines = []
    for row in rows:
        if len(row) != len(rows[0]):
            lines.append("%-*s %s" % (widths[0], row[0], row[1]))
        else:
            lines.append(" ".join(cell.ljust(width) for cell, width in zip(row, widths)) + " " + row[-1])
    return "\n".join(line.rstrip() for line in lines) + "\n"


def probe_host(host: dict, script: str) -> tuple[int, str, str]:
    proc = ssh_run(host["address"], host.get("key"), "sh -s", timeout=60, user=host["user"], input_text=script)
    return proc.returncode, proc.stdout, proc.stderr


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lab_summary.py", description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", required=True, help="the inventory whose nodes are shown")
    parser.add_argument("--stages", default=str(STAGES_FILE), help="the stage table (default %(default)s)")
    args = parser.parse_args(argv)
    try:
        if not Path(args.inventory).exists():
            raise SummaryError("inventory %s does not exist: bring the lab up with `python3 tools/lab.py up --inventory %s`"
                               % (args.inventory, args.inventory))
        table = load_stages(Path(args.stages))
        inventory = read_inventory(args.inventory)
        if not inventory.hosts:
            raise SummaryError("inventory %s has no hosts" % args.inventory)
    except SummaryError as exc:
        print("lab_summary.py: error: %s" % exc, file=sys.stderr)
        return 1
    sockets = table.cri_sockets()
    scripts = {h["name"]: probe_script([s for s in table.stages if s.applies_to(h["name"], inventory)], sockets)
               for h in inventory.hosts}
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = {h["name"]: pool.submit(probe_host, h, scripts[h["name"]]) for h in inventory.hosts}
        outputs = {name: future.result() for name, future in futures.items()}
    sys.stdout.write(format_rows(summary_rows(table, inventory, outputs)))
    return 1 if any(rc != 0 for rc, _out, _err in outputs.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
