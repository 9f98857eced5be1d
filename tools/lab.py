# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The kubeforge lab: real Debian machines with systemd as PID 1, booted with systemd-nspawn.

One cached debootstrap base per distribution, an overlayfs upper directory per machine, one
network namespace per machine with a veth into the lab's bridge, NAT to the Debian mirror,
sshd with a generated key and an Ansible inventory. Runs as root; stdlib only.

    python3 tools/lab.py up [--machines 3] [--distro bookworm] [--lab kubeforge] [--inventory PATH]
    python3 tools/lab.py status [--lab kubeforge]
    python3 tools/lab.py ssh node1 [-- systemctl is-system-running]
    python3 tools/lab.py down [--lab kubeforge]
    python3 tools/lab.py summary --inventory inventories/lab/hosts.yml

Every resource is recorded in ``.cache/lab/<lab>/state.json`` before it is created, and ``down``
also scans for resources carrying the lab's name prefix, so it cleans up after a crash halfway.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import ipaddress
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

TOOLS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TOOLS_DIR.parent
if str(TOOLS_DIR) not in sys.path:
    sys.path.insert(0, str(TOOLS_DIR))

from debfetch import DebFetchError, debian_mirror_uri  # noqa: E402

CACHE_ROOT = Path(os.environ.get("KUBEFORGE_CACHE", REPO_ROOT / ".cache")) / "lab"
DISTROS = ("bookworm", "trixie")
BASE_PACKAGES = "systemd,systemd-sysv,dbus,openssh-server,python3,iproute2,kmod,procps"
DEFAULT_LAB = "kubeforge"
MAX_MACHINES = 200
FIRST_HOST = 10  # node1 gets .11, node2 .12, ...; .1 is the bridge (gateway)
LAB_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
MACHINE_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
SSH_OPTIONS = [
    "-o", "StrictHostKeyChecking=no",
    "-o", "UserKnownHostsFile=/dev/null",
    "-o", "IdentitiesOnly=yes",
    "-o", "LogLevel=ERROR",
    "-o", "BatchMode=yes",
]
INVENTORY_SSH_ARGS = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes"
NSPAWN_ENV = {"SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "1", "SYSTEMD_NSPAWN_API_VFS_WRITABLE": "1"}
POWEROFF_GRACE = 20.0  # seconds a machine gets to power off before SIGTERM
TERM_GRACE = 10.0  # seconds after SIGTERM before SIGKILL
SUMMARY_SERVICES = ("containerd", "docker", "etcd", "nginx", "kubelet")
CRI_SOCKETS = (
    "/run/containerd/containerd.sock",
    "/run/cri-dockerd.sock",
    "/run/crio/crio.sock",
)


class LabError(RuntimeError):
    """Something failed; the message says what and how to clean up."""


class UsageError(LabError):
    """A request that cannot be carried out as asked; nothing was changed."""


# ---------------------------------------------------------------------------------------------
# Pure helpers (unit-tested)
# ---------------------------------------------------------------------------------------------

def lab_id(lab: str) -> str:
    """Six hex digits naming the lab's kernel objects (interface names are limited to 15 chars)."""
    return hashlib.sha256(lab.encode("utf-8")).hexdigest()[:6]


def bridge_name(lab: str) -> str:
    return "kfb-%s" % lab_id(lab)


def veth_name(lab: str, index: int) -> str:
    return "kfv-%s-%d" % (lab_id(lab), index)


def veth_peer_name(lab: str, index: int) -> str:
    return "kfp-%s-%d" % (lab_id(lab), index)


def netns_name(lab: str, machine: str) -> str:
    return "kf-%s-%s" % (lab_id(lab), machine)


def nat_comment(lab: str) -> str:
    return "kubeforge-lab:%s" % lab


def validate_lab_name(lab: str) -> str:
    if not LAB_NAME_RE.match(lab or ""):
        raise UsageError("invalid lab name %r: use letters, digits, '_', '.', '-' (at most 63 characters, "
                         "starting with a letter or digit)" % lab)
    return lab


def machine_names(count: int, names: list[str] | None = None) -> list[str]:
    """The machines' names: ``names`` when given, else node1..nodeN."""
    if names:
        if count and count != len(names):
            raise UsageError("--machines %d does not match the %d names given with --names (%s)"
                             % (count, len(names), ",".join(names)))
        count = len(names)
    if count < 1 or count > MAX_MACHINES:
        raise UsageError("--machines must be between 1 and %d, got %d" % (MAX_MACHINES, count))
    result = list(names) if names else ["node%d" % i for i in range(1, count + 1)]
    for name in result:
        if not MACHINE_NAME_RE.match(name):
            raise UsageError("invalid machine name %r: use lower-case letters, digits and '-' (a hostname label)" % name)
    if len(set(result)) != len(result):
        raise UsageError("machine names must be unique: %s" % ",".join(result))
    return result


def subnet_candidates(lab: str):
    """Deterministic /24 candidates in 10.100.0.0-10.199.255.0 derived from the lab name."""
    value = int(hashlib.sha256(("subnet:" + lab).encode("utf-8")).hexdigest(), 16)
    start = value % (100 * 256)
    for step in range(100 * 256):
        slot = (start + step) % (100 * 256)
        yield ipaddress.IPv4Network("10.%d.%d.0/24" % (100 + slot // 256, slot % 256))


def pick_subnet(lab: str, used: list) -> ipaddress.IPv4Network:
    """First candidate overlapping none of ``used`` (networks or addresses, as strings or objects)."""
    taken = []
    for item in used:
        try:
            taken.append(ipaddress.ip_network(str(item), strict=False))
        except ValueError:
            continue
    for candidate in subnet_candidates(lab):
        if not any(candidate.overlaps(net) for net in taken if net.version == 4 and net.prefixlen > 0):
            return candidate
    raise LabError("no free /24 left in 10.100.0.0/16-10.199.0.0/16 for lab %s" % lab)


def parse_routes(routes_json: str) -> list[str]:
    """Destinations of ``ip -j route show table all`` (default routes skipped)."""
    result = []
    for route in json.loads(routes_json or "[]"):
        dst = route.get("dst", "")
        if not dst or dst == "default":
            continue
        result.append(dst)
    return result


def parse_nameservers(resolv_conf: str) -> list[str]:
    return [line.split()[1] for line in resolv_conf.splitlines() if line.startswith("nameserver") and len(line.split()) > 1]


def gateway_address(subnet: str) -> str:
    return str(ipaddress.IPv4Network(subnet)[1])


def machine_address(subnet: str, index: int) -> str:
    """Address of the machine with 1-based ``index``."""
    net = ipaddress.IPv4Network(subnet)
    if index < 1 or FIRST_HOST + index >= net.num_addresses - 1:
        raise LabError("machine index %d does not fit in %s" % (index, subnet))
    return str(net[FIRST_HOST + index])


def assign_indexes(existing: dict, names: list[str]) -> dict[str, int]:
    """1-based machine indexes (they fix address and veth): kept for machines that exist, the lowest
    free ones for new machines, so growing or shrinking a running lab never renumbers a machine."""
    result = {name: existing[name] for name in names if existing.get(name)}
    taken = set(result.values())
    free = (i for i in range(1, MAX_MACHINES + len(taken) + 1) if i not in taken)
    for name in names:
        if name not in result:
            result[name] = next(free)
    return result


def group_layout(names: list[str], control_planes: int = 1) -> dict[str, list[str]]:
    """Inventory groups: the first ``control_planes`` machines are control planes, the rest workers;
    etcd runs on the first 3 machines (1 when there are fewer than 3) so it keeps a quorum."""
    if control_planes < 1 or control_planes > len(names):
        raise UsageError("--control-planes must be between 1 and the number of machines (%d), got %d"
                         % (len(names), control_planes))
    etcd_count = 3 if len(names) >= 3 else 1
    etcd_count = max(etcd_count, control_planes if control_planes % 2 else control_planes + 1)
    etcd_count = min(etcd_count, len(names))
    return {
        "control_plane": names[:control_planes],
        "workers": names[control_planes:],
        "etcd": names[:etcd_count],
    }


def _yaml_scalar(value) -> str:
    text = str(value)
    if re.match(r"^[A-Za-z0-9_./@:-]+$", text) and not re.match(r"^(true|false|yes|no|on|off|null|~|[0-9.]+)$", text, re.IGNORECASE):
        return text
    return json.dumps(text)


def render_inventory(state: dict) -> str:
    """The Ansible YAML inventory of a lab state."""
    names = sorted(state["machines"], key=lambda n: state["machines"][n]["index"])
    groups = state.get("groups") or group_layout(names)
    lines = [
        inventory_header(state),
        "all:",
        "  vars:",
        "    ansible_user: root",
        "    ansible_ssh_private_key_file: %s" % _yaml_scalar(state["key"]),
        "    ansible_python_interpreter: /usr/bin/python3",
        "    ansible_ssh_common_args: %s" % _yaml_scalar(INVENTORY_SSH_ARGS),
        "    kubeforge_lab_name: %s" % _yaml_scalar(state["lab"]),
        "  hosts:",
    ]
    for name in names:
        lines.append("    %s:" % name)
        lines.append("      ansible_host: %s" % state["machines"][name]["address"])
    lines.append("  children:")
    for group in ("etcd", "control_plane", "workers"):
        members = groups.get(group, [])
        if not members:
            lines.append("    %s: {}" % group)
            continue
        lines.append("    %s:" % group)
        lines.append("      hosts:")
        lines.extend("        %s: {}" % name for name in members)
    lines.extend([
        "    kube_nodes:",
        "      children:",
        "        control_plane: {}",
        "        workers: {}",
    ])
    return "\n".join(lines) + "\n"


def inventory_header(state: dict) -> str:
    return ("# Generated by tools/lab.py for lab %s (%s, %s); `python3 tools/lab.py down --lab %s` removes it."
            % (state["lab"], state["distro"], state["subnet"], state["lab"]))


def is_lab_inventory(path: Path, lab: str, sha256: str | None = None) -> bool:
    """True when ``path`` is an inventory ``up`` wrote for ``lab`` and nobody changed since
    (same digest when known, else the generated header naming the lab)."""
    try:
        data = path.read_bytes()
    except OSError:
        return False
    if sha256:
        return hashlib.sha256(data).hexdigest() == sha256
    first = data.split(b"\n", 1)[0].decode("utf-8", errors="replace")
    return first.startswith("# Generated by tools/lab.py for lab %s (" % lab)


def render_hosts_file(state: dict) -> str:
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback",
             "ff02::1\tip6-allnodes", "ff02::2\tip6-allrouters", "", "# kubeforge lab %s" % state["lab"]]
    for name in sorted(state["machines"], key=lambda n: state["machines"][n]["index"]):
        lines.append("%s\t%s" % (state["machines"][name]["address"], name))
    return "\n".join(lines) + "\n"


def parse_apt_sources(deb822_texts: list[str], one_line_text: str) -> list[dict]:
    """Debian archive entries (uri, suites, components) of the host's apt configuration.

    deb822 stanzas count when signed by the Debian archive keyring; one-line entries when their
    URI path is a Debian archive (``/debian`` or ``/debian-security``)."""
    entries = []
    for text in deb822_texts:
        for stanza in re.split(r"\n\s*\n", text):
            fields = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line or line[:1].isspace():
                    continue
                key, _sep, value = line.partition(":")
                fields[key.strip().lower()] = value.strip()
            if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
                continue
            if "debian-archive-keyring" not in fields.get("signed-by", ""):
                continue
            for uri in fields.get("uris", "").split():
                entries.append({"uri": uri, "suites": fields.get("suites", "").split(),
                                "components": fields.get("components", "main").split()})
    for line in one_line_text.splitlines():
        match = re.match(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s+(.+)$", line.strip())
        if match and re.search(r"/debian(-security)?/?$", match.group(1)):
            entries.append({"uri": match.group(1), "suites": [match.group(2)], "components": match.group(3).split()})
    return entries


def render_apt_sources(entries: list[dict], host_codename: str, distro: str) -> str:
    """A deb822 ``debian.sources`` for ``distro``: the host's Debian entries with the codename swapped."""
    stanzas = []
    seen = set()
    for entry in entries:
        suites = []
        for suite in entry["suites"]:
            if host_codename and (suite == host_codename or suite.startswith(host_codename + "-")):
                suite = distro + suite[len(host_codename):]
            if suite not in suites:
                suites.append(suite)
        key = (entry["uri"], tuple(suites))
        if not suites or key in seen:
            continue
        seen.add(key)
        stanzas.append("Types: deb\nURIs: %s\nSuites: %s\nComponents: %s\n"
                       "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
                       % (entry["uri"], " ".join(suites), " ".join(entry["components"])))
    if not stanzas:
        raise LabError("the host's apt sources have no Debian archive entry to give the machines; "
                       "add one (a deb822 .sources stanza signed by the Debian archive keyring)")
    return "\n".join(stanzas)


def plan_cleanup(lab: str, state: dict | None, scan: dict) -> list[tuple]:
    """Ordered cleanup actions from the state file (may be None/partial) and a scan of the host.

    ``scan`` keys: pids (nspawn pids of the lab), links, netns, mounts, nat_rules (lists).
    Actions: ("stop", machine, address, pid, pid_start), ("kill_netns", ns), ("umount", path),
    ("del_netns", ns), ("del_link", name), ("iptables", table, rule-args), ("ip_forward", value),
    ("rm", path).
    """
    state = state or {}
    machines = state.get("machines") or {}
    actions: list[tuple] = []
    known_pids = set()
    for name in sorted(machines, key=lambda n: machines[n].get("index", 0)):
        info = machines[name] or {}
        if info.get("pid"):
            known_pids.add(info["pid"])
        actions.append(("stop", name, info.get("address"), info.get("pid"), info.get("pid_start")))
    for pid in sorted(set(scan.get("pids", [])) - known_pids):
        actions.append(("stop", "pid %d" % pid, None, pid, None))
    netns = []
    for name in sorted(machines, key=lambda n: machines[n].get("index", 0)):
        ns = (machines[name] or {}).get("netns")
        if ns and ns not in netns:
            netns.append(ns)
    netns.extend(sorted(ns for ns in scan.get("netns", []) if ns not in netns))
    actions.extend(("kill_netns", ns) for ns in netns)
    mounts = []
    for name in sorted(machines, key=lambda n: machines[n].get("index", 0)):
        root = (machines[name] or {}).get("root")
        if root and root not in mounts:
            mounts.append(root)
    mounts.extend(sorted(m for m in scan.get("mounts", []) if m not in mounts))
    # deepest first, so nested mounts go before their parents
    actions.extend(("umount", path) for path in sorted(mounts, key=lambda p: p.count("/"), reverse=True))
    actions.extend(("del_netns", ns) for ns in netns)
    links = []
    for name in sorted(machines, key=lambda n: machines[n].get("index", 0)):
        veth = (machines[name] or {}).get("veth")
        if veth and veth not in links:
            links.append(veth)
    links.extend(sorted(link for link in scan.get("links", []) if link not in links and link != bridge_name(lab)))
    if state.get("bridge") or bridge_name(lab) in scan.get("links", []):
        links.append(state.get("bridge") or bridge_name(lab))
    actions.extend(("del_link", link) for link in links)
    rules = [tuple(rule) for rule in state.get("nat_rules", [])]
    rules.extend(tuple(rule) for rule in scan.get("nat_rules", []) if tuple(rule) not in rules)
    actions.extend(("iptables",) + rule for rule in rules)
    if scan.get("ip_forward_before") is not None:
        actions.append(("ip_forward", scan["ip_forward_before"]))
    actions.append(("rm", str(lab_dir(lab))))
    return actions


# ---------------------------------------------------------------------------------------------
# Host helpers
# ---------------------------------------------------------------------------------------------

def default_inventory(lab: str) -> Path:
    return REPO_ROOT / "inventories" / lab / "hosts.yml"


def lab_dir(lab: str) -> Path:
    return CACHE_ROOT / lab


def state_path(lab: str) -> Path:
    return lab_dir(lab) / "state.json"


def progress(lab: str, message: str) -> None:
    print("[lab %s %s] %s" % (lab, time.strftime("%H:%M:%S"), message), flush=True)


def run(argv: list[str], check: bool = True, timeout: float | None = None, env: dict | None = None,
        input_text: str | None = None) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, LANG="C", LC_ALL="C", LANGUAGE="C")
    if env:
        full_env.update(env)
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=timeout, env=full_env,
                              input=input_text, stdin=None if input_text is not None else subprocess.DEVNULL)
    except FileNotFoundError as exc:
        raise LabError("%s is not installed (%s): run `make deps` or "
                       "`apt-get install debootstrap systemd-container iproute2 iptables`" % (argv[0], exc)) from exc
    except subprocess.TimeoutExpired as exc:
        if check:
            raise LabError("%s timed out after %ss" % (shlex.join(argv), timeout)) from exc
        return subprocess.CompletedProcess(argv, 124, "", "timeout")
    if check and proc.returncode != 0:
        raise LabError("%s failed (rc=%d): %s" % (shlex.join(argv), proc.returncode, (proc.stderr or proc.stdout).strip()))
    return proc


def write_atomic(path: Path, content: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=str(path.parent), prefix=".%s." % path.name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def load_state(lab: str) -> dict | None:
    try:
        data = json.loads(state_path(lab).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def save_state(state: dict) -> None:
    write_atomic(state_path(state["lab"]), json.dumps(state, indent=2, sort_keys=True) + "\n", 0o600)


@contextlib.contextmanager
def file_lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    # released when the last descriptor closes (no LOCK_UN: a child given the descriptor keeps it)
    with open(path, "a", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield handle


def safe_rmtree(path: Path) -> None:
    """Remove ``path`` after unmounting whatever is mounted below it (debootstrap mounts /proc, /sys,
    /dev/pts in its target); refuse when a mount stays, so a host file system is never walked."""
    for mount in sorted(mounts_under(str(path)), key=lambda p: p.count("/"), reverse=True):
        run(["umount", "-l", mount], check=False)
    left = mounts_under(str(path))
    if left:
        raise LabError("cannot remove %s: still mounted below it: %s" % (path, ", ".join(left)))
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


HOST_TOOLS = {  # command: Debian package
    "debootstrap": "debootstrap", "systemd-nspawn": "systemd-container", "ip": "iproute2",
    "iptables": "iptables", "ssh": "openssh-client", "ssh-keygen": "openssh-client", "mount": "mount",
}


def require_tools() -> None:
    missing = sorted({package for command, package in HOST_TOOLS.items() if shutil.which(command) is None})
    if missing:
        raise LabError("the lab needs %s on this host: run `make deps` or `apt-get install %s`"
                       % (", ".join(missing), " ".join(missing)))


def require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces, overlay mounts, systemd-nspawn): run it as root")


def pid_start_time(pid: int) -> str | None:
    """Start time of ``pid`` (field 22 of /proc/PID/stat), None when gone or a zombie."""
    try:
        stat = Path("/proc/%d/stat" % pid).read_text(encoding="utf-8")
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):
        return None
    return fields[19]


def pid_alive(pid: int | None, start: str | None = None) -> bool:
    if not pid:
        return False
    current = pid_start_time(pid)
    return current is not None and (start is None or current == start)


def nspawn_pids(root_prefix: str) -> list[int]:
    """systemd-nspawn processes whose -D directory lies under ``root_prefix``."""
    result = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if not argv or not argv[0].endswith(b"systemd-nspawn"):
            continue
        for i, arg in enumerate(argv):
            if (arg == b"-D" and i + 1 < len(argv) and argv[i + 1].decode(errors="replace").startswith(root_prefix)
                    and pid_start_time(int(entry.name)) is not None):
                result.append(int(entry.name))
    return sorted(result)


def mounts_under(prefix: str) -> list[str]:
    result = []
    with open("/proc/self/mounts", encoding="utf-8") as handle:
        for line in handle:
            target = line.split()[1].replace("\\040", " ")
            if target == prefix or target.startswith(prefix.rstrip("/") + "/"):
                result.append(target)
    return result


def list_links() -> list[str]:
    out = run(["ip", "-j", "link", "show"]).stdout
    return [link["ifname"] for link in json.loads(out or "[]")]


def list_netns() -> list[str]:
    out = run(["ip", "netns", "list"], check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def nat_rules_of(lab: str) -> list[list[str]]:
    """iptables rules (table, chain, args...) carrying the lab's comment."""
    found = []
    comment = nat_comment(lab)
    for table in ("nat", "filter"):
        out = run(["iptables", "-w", "-t", table, "-S"], check=False).stdout
        for line in out.splitlines():
            if not line.startswith("-A "):
                continue
            args = shlex.split(line)
            if comment in args:
                found.append([table, args[1], *args[2:]])
    return found


def scan_host(lab: str) -> dict:
    prefix = "-%s-" % lab_id(lab)
    links = [name for name in list_links()
             if name == bridge_name(lab) or name.startswith(("kfv" + prefix, "kfp" + prefix))]
    return {
        "pids": nspawn_pids(str(lab_dir(lab)) + "/"),
        "links": links,
        "netns": [ns for ns in list_netns() if ns.startswith("kf" + prefix)],
        "mounts": mounts_under(str(lab_dir(lab))),
        "nat_rules": nat_rules_of(lab),
        "ip_forward_before": ip_forward_before(),
    }


def ip_forward_before() -> str | None:
    """The host's ip_forward value from before the first lab switched it on (None: not changed by a lab)."""
    try:
        value = (CACHE_ROOT / ".ip_forward_before").read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return value if value in ("0", "1") else None


def ssh_argv(state: dict, address: str, command: list[str] | None = None, timeout: int = 5) -> list[str]:
    argv = ["ssh", "-i", state["key"], *SSH_OPTIONS, "-o", "ConnectTimeout=%d" % timeout, "root@%s" % address]
    return argv + (command or [])


def ssh(state: dict, address: str, command: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return run(ssh_argv(state, address, [command], timeout=5), check=False, timeout=timeout)


# ---------------------------------------------------------------------------------------------
# Base image
# ---------------------------------------------------------------------------------------------

def host_codename() -> str:
    try:
        for line in Path("/etc/os-release").read_text(encoding="utf-8").splitlines():
            if line.startswith("VERSION_CODENAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return ""


def host_apt_entries() -> list[dict]:
    texts = []
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        texts.append(path.read_text(encoding="utf-8"))
    one_line = ""
    for path in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*.list"))]:
        if path.exists():
            one_line += path.read_text(encoding="utf-8") + "\n"
    return parse_apt_sources(texts, one_line)


def base_dir(distro: str) -> Path:
    return CACHE_ROOT / ("base-%s" % distro)


def ensure_base(lab: str, distro: str) -> Path:
    """The cached base tree of ``distro``; built with debootstrap into a temp dir, renamed when complete."""
    target = base_dir(distro)
    if target.is_dir():
        return target
    with file_lock(CACHE_ROOT / (".base-%s.lock" % distro)) as lock:
        if target.is_dir():
            return target
        for stale in CACHE_ROOT.glob(".base-%s.tmp-*" % distro):
            progress(lab, "removing the half-built base %s left by an earlier run" % stale)
            safe_rmtree(stale)
        try:
            mirror = debian_mirror_uri()
        except DebFetchError as exc:
            raise LabError(str(exc)) from exc
        sources = render_apt_sources(host_apt_entries(), host_codename(), distro)
        tmp = Path(tempfile.mkdtemp(dir=str(CACHE_ROOT), prefix=".base-%s.tmp-" % distro))
        started = time.monotonic()
        progress(lab, "building the %s base with debootstrap from %s (once; about a minute) ..." % (distro, mirror))
        log = CACHE_ROOT / ("base-%s.debootstrap.log" % distro)
        try:
            with open(log, "w", encoding="utf-8") as handle:
                proc = subprocess.run(
                    ["debootstrap", "--variant=minbase", "--include=%s" % BASE_PACKAGES, distro, str(tmp), mirror],
                    stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=False,
                    env=dict(os.environ, LANG="C", LC_ALL="C"),
                    # debootstrap keeps the lock when this process is killed: nobody removes its
                    # directory while it still runs
                    pass_fds=(lock.fileno(),))
            if proc.returncode != 0:
                tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
                raise LabError("debootstrap of %s failed (rc=%d, full log %s):\n  %s"
                               % (distro, proc.returncode, log, "\n  ".join(tail)))
            configure_base(tmp, sources)
            os.chmod(tmp, 0o755)
            os.rename(tmp, target)
        except BaseException:
            with contextlib.suppress(LabError, OSError):
                safe_rmtree(tmp)
            raise
        progress(lab, "base %s ready in %.0f s (%s)" % (distro, time.monotonic() - started, target))
    return target


def configure_base(root: Path, sources: str) -> None:
    """Settings shared by every machine; per-machine identity is written into each overlay."""
    apt = root / "etc/apt"
    with contextlib.suppress(FileNotFoundError):
        (apt / "sources.list").unlink()
    write_atomic(apt / "sources.list.d/debian.sources", sources)
    write_atomic(apt / "apt.conf.d/80kubeforge-lab", 'APT::Install-Recommends "false";\nAcquire::Retries "3";\n')
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()  # generated per machine
    write_atomic(root / "etc/ssh/sshd_config.d/kubeforge-lab.conf",
                 "PermitRootLogin prohibit-password\nPasswordAuthentication no\nUseDNS no\n")
    write_atomic(root / "etc/machine-id", "")
    with contextlib.suppress(FileNotFoundError):
        (root / "var/lib/dbus/machine-id").unlink()
    # units that cannot work in a container and would only mark the machine degraded
    for unit in ("systemd-networkd-wait-online.service",):
        link = root / "etc/systemd/system" / unit
        if not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink("/dev/null", link)


# ---------------------------------------------------------------------------------------------
# up
# ---------------------------------------------------------------------------------------------

def used_networks(lab: str) -> list[str]:
    used = parse_routes(run(["ip", "-j", "route", "show", "table", "all"]).stdout)
    with contextlib.suppress(OSError):
        used.extend(parse_nameservers(Path("/etc/resolv.conf").read_text(encoding="utf-8")))
    for other in CACHE_ROOT.glob("*/state.json"):
        if other.parent.name == lab:
            continue
        with contextlib.suppress(OSError, ValueError):
            subnet = json.loads(other.read_text(encoding="utf-8")).get("subnet")
            if subnet:
                used.append(subnet)
    return used


def new_state(lab: str, distro: str, names: list[str], control_planes: int) -> dict:
    with file_lock(CACHE_ROOT / ".subnet.lock"):
        subnet = str(pick_subnet(lab, used_networks(lab)))
        state = {
            "lab": lab, "id": lab_id(lab), "distro": distro, "subnet": subnet,
            "gateway": gateway_address(subnet), "bridge": bridge_name(lab),
            "key": str(lab_dir(lab) / "id_ed25519"), "machines": {}, "nat_rules": [],
            "inventory": None, "inventory_sha256": None,
            "groups": group_layout(names, control_planes),
        }
        lab_dir(lab).mkdir(parents=True, exist_ok=True)
        os.chmod(lab_dir(lab), 0o700)
        save_state(state)  # claims the subnet for concurrent labs
    return state


def ensure_key(state: dict) -> str:
    key = Path(state["key"])
    if not key.exists() or not key.with_suffix(".pub").exists():
        for path in (key, key.with_suffix(".pub")):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "kubeforge-lab-%s" % state["lab"], "-f", str(key)])
    os.chmod(key, 0o600)
    return key.with_suffix(".pub").read_text(encoding="utf-8")


def ensure_network(state: dict) -> None:
    lab = state["lab"]
    bridge = state["bridge"]
    if bridge not in list_links():
        run(["ip", "link", "add", bridge, "type", "bridge"])
    addrs = json.loads(run(["ip", "-j", "addr", "show", "dev", bridge]).stdout or "[]")
    have = {"%s/%s" % (a["local"], a["prefixlen"]) for link in addrs for a in link.get("addr_info", [])}
    wanted = "%s/%d" % (state["gateway"], ipaddress.IPv4Network(state["subnet"]).prefixlen)
    if wanted not in have:
        run(["ip", "addr", "add", wanted, "dev", bridge])
    run(["ip", "link", "set", bridge, "up"])
    forward = Path("/proc/sys/net/ipv4/ip_forward")
    current = forward.read_text(encoding="utf-8").strip()
    if current != "1":
        # remembered outside any lab's state: restored by the `down` of the last lab
        memo = CACHE_ROOT / ".ip_forward_before"
        if not memo.exists():
            write_atomic(memo, current + "\n")
        forward.write_text("1\n", encoding="utf-8")
    comment = ["-m", "comment", "--comment", nat_comment(lab)]
    rules = [
        ["nat", "POSTROUTING", "-s", state["subnet"], "!", "-d", state["subnet"], *comment, "-j", "MASQUERADE"],
        ["filter", "FORWARD", "-i", bridge, *comment, "-j", "ACCEPT"],
        ["filter", "FORWARD", "-o", bridge, *comment, "-j", "ACCEPT"],
    ]
    for rule in rules:
        if rule not in state["nat_rules"]:
            state["nat_rules"].append(rule)
            save_state(state)
        table, chain, *args = rule
        if run(["iptables", "-w", "-t", table, "-C", chain, *args], check=False).returncode != 0:
            verb = "-A" if table == "nat" else "-I"
            run(["iptables", "-w", "-t", table, verb, chain, *args])
    progress(lab, "network: bridge %s %s, NAT to the outside through the host" % (bridge, wanted))


def ensure_machine_net(state: dict, name: str) -> None:
    info = state["machines"][name]
    ns, veth, peer = info["netns"], info["veth"], veth_peer_name(state["lab"], info["index"])
    if ns not in list_netns():
        run(["ip", "netns", "add", ns])
    links = list_links()
    inside = json.loads(run(["ip", "-n", ns, "-j", "link", "show"]).stdout or "[]")
    if "eth0" not in {link["ifname"] for link in inside}:
        for stale in (veth, peer):
            if stale in links:
                run(["ip", "link", "del", stale])
        run(["ip", "link", "add", veth, "type", "veth", "peer", "name", peer])
        run(["ip", "link", "set", peer, "netns", ns])
        run(["ip", "-n", ns, "link", "set", peer, "name", "eth0"])
    run(["ip", "link", "set", veth, "master", state["bridge"]])
    run(["ip", "link", "set", veth, "up"])
    prefix = ipaddress.IPv4Network(state["subnet"]).prefixlen
    addrs = json.loads(run(["ip", "-n", ns, "-j", "addr", "show", "dev", "eth0"]).stdout or "[]")
    have = {"%s/%s" % (a["local"], a["prefixlen"]) for link in addrs for a in link.get("addr_info", [])}
    if "%s/%d" % (info["address"], prefix) not in have:
        run(["ip", "-n", ns, "addr", "add", "%s/%d" % (info["address"], prefix), "dev", "eth0"])
    run(["ip", "-n", ns, "link", "set", "lo", "up"])
    run(["ip", "-n", ns, "link", "set", "eth0", "up"])
    run(["ip", "-n", ns, "route", "replace", "default", "via", state["gateway"]])


def ensure_overlay(state: dict, name: str, base: Path) -> None:
    info = state["machines"][name]
    mdir = Path(info["dir"])
    for sub in ("upper", "work", "root"):
        (mdir / sub).mkdir(parents=True, exist_ok=True)
    if info["root"] in mounts_under(info["root"]):
        return
    run(["mount", "-t", "overlay", "overlay", "-o",
         "lowerdir=%s,upperdir=%s,workdir=%s" % (base, mdir / "upper", mdir / "work"), info["root"]])


def personalise(state: dict, name: str, pubkey: str) -> None:
    root = Path(state["machines"][name]["root"])
    write_atomic(root / "etc/hostname", name + "\n")
    write_atomic(root / "etc/hosts", render_hosts_file(state))
    resolv = root / "etc/resolv.conf"
    if resolv.is_symlink():
        resolv.unlink()
    write_atomic(resolv, Path("/etc/resolv.conf").read_text(encoding="utf-8"))
    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(ssh_dir, 0o700)
    write_atomic(ssh_dir / "authorized_keys", pubkey, 0o600)
    machine_id = root / "etc/machine-id"
    if not machine_id.exists() or not machine_id.read_text(encoding="utf-8").strip():
        write_atomic(machine_id, uuid.uuid4().hex + "\n", 0o444)
    if not (root / "etc/ssh/ssh_host_ed25519_key").exists():
        run(["ssh-keygen", "-A", "-f", str(root)])


def nspawn_argv(state: dict, name: str) -> list[str]:
    info = state["machines"][name]
    return [
        "systemd-nspawn", "--keep-unit", "--register=no", "--capability=all",
        "--system-call-filter=add_key keyctl request_key", "--resolv-conf=off", "--console=read-only",
        "-D", info["root"], "-b", "--network-namespace-path=/run/netns/%s" % info["netns"], "-M", name,
    ]


NSPAWN_REBOOT = 133  # systemd-nspawn's exit status when the machine rebooted


def start_machine(state: dict, name: str) -> None:
    """Start the machine's supervisor (``lab.py _boot``) detached, in its own session."""
    info = state["machines"][name]
    log = Path(info["dir"]) / "console.log"
    argv = [sys.executable, str(Path(__file__).resolve()), "_boot", "--lab", state["lab"], name]
    with open(log, "ab") as handle:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True)
    info["pid"] = proc.pid
    info["pid_start"] = None
    for _attempt in range(50):
        info["pid_start"] = pid_start_time(proc.pid)
        if info["pid_start"]:
            break
        time.sleep(0.02)
    save_state(state)


def cmd_boot(args) -> int:
    """Supervisor of one machine: runs systemd-nspawn, boots it again when the machine reboots (nspawn
    exits 133; on a host with systemd its unit's RestartForceExitStatus does that) and passes
    SIGTERM/SIGINT/SIGHUP on, which nspawn turns into a clean poweroff."""
    state = require_state(validate_lab_name(args.lab))
    argv = nspawn_argv(state, args.name)
    child: list[subprocess.Popen] = []
    stopping = []

    def forward(signum, _frame):
        stopping.append(signum)
        if child and child[-1].poll() is None:
            child[-1].send_signal(signal.SIGTERM)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    while True:
        print("==== %s: boot %s ====" % (time.strftime("%Y-%m-%dT%H:%M:%S"), args.name), flush=True)
        child.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL, env=dict(os.environ, **NSPAWN_ENV), close_fds=True))
        if stopping:
            child[-1].send_signal(signal.SIGTERM)
        rc = child[-1].wait()
        print("==== %s: systemd-nspawn exited %d ====" % (time.strftime("%Y-%m-%dT%H:%M:%S"), rc), flush=True)
        if rc != NSPAWN_REBOOT or stopping:
            return 0 if rc in (0, NSPAWN_REBOOT) else rc
        child.clear()


def wait_ready(state: dict, name: str, deadline: float) -> str:
    """Wait until ssh answers and systemd reports running/degraded; return that state."""
    info = state["machines"][name]
    log = Path(info["dir"]) / "console.log"
    hint = "see %s; clean up with `python3 tools/lab.py down --lab %s`" % (log, state["lab"])
    while True:
        if not pid_alive(info.get("pid"), info.get("pid_start")):
            tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-12:] if log.exists() else []
            raise LabError("machine %s: systemd-nspawn exited during boot (%s):\n  %s" % (name, hint, "\n  ".join(tail)))
        proc = ssh(state, info["address"], "systemctl is-system-running --wait", timeout=max(5, deadline - time.monotonic()))
        status = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
        if status in ("running", "degraded"):
            return status
        if time.monotonic() > deadline:
            raise LabError("machine %s did not come up (ssh rc=%d, systemd %r, %s): %s"
                           % (name, proc.returncode, status, proc.stderr.strip(), hint))
        time.sleep(0.5)


def cmd_up(args) -> int:
    require_root()
    lab = validate_lab_name(args.lab)
    names = machine_names(args.machines, args.names.split(",") if args.names else None)
    group_layout(names, args.control_planes)
    require_tools()
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    t_start = time.monotonic()
    with file_lock(CACHE_ROOT / (".%s.lock" % lab)):
        state = load_state(lab)
        if state and state.get("machines") and state.get("distro") != args.distro:
            raise UsageError("lab %s has %s machines (%s); their overlays cannot move to %s: "
                             "run `python3 tools/lab.py down --lab %s` first, or use another --lab"
                             % (lab, state.get("distro"), ",".join(sorted(state["machines"])), args.distro, lab))
        if state is None or not state.get("subnet"):
            if state_path(lab).exists():
                progress(lab, "state file %s is unreadable: cleaning up what the lab left first" % state_path(lab))
                down(lab)
            state = new_state(lab, args.distro, names, args.control_planes)
        state["distro"] = args.distro
        state["groups"] = group_layout(names, args.control_planes)
        for old in [m for m in state["machines"] if m not in names]:
            progress(lab, "removing machine %s (not requested any more)" % old)
            stop_and_remove_machine(state, old)
        base = ensure_base(lab, args.distro)
        pubkey = ensure_key(state)
        indexes = assign_indexes({n: m.get("index") for n, m in state["machines"].items()}, names)
        for name in names:
            index = indexes[name]
            info = state["machines"].setdefault(name, {})
            info.update({
                "index": index, "address": machine_address(state["subnet"], index),
                "netns": netns_name(lab, name), "veth": veth_name(lab, index),
                "dir": str(lab_dir(lab) / "machines" / name), "root": str(lab_dir(lab) / "machines" / name / "root"),
            })
        save_state(state)
        ensure_network(state)
        booting = []
        for name in names:
            info = state["machines"][name]
            if not pid_alive(info.get("pid"), info.get("pid_start")):
                # started by an earlier run killed before it could record the pid: adopt it
                for pid in nspawn_pids(info["root"]):
                    info["pid"], info["pid_start"] = pid, pid_start_time(pid)
                    save_state(state)
            if pid_alive(info.get("pid"), info.get("pid_start")):
                progress(lab, "%s: already running (pid %d, %s)" % (name, info["pid"], info["address"]))
                continue
            ensure_machine_net(state, name)
            ensure_overlay(state, name, base)
            personalise(state, name, pubkey)
            start_machine(state, name)
            booting.append(name)
            info = state["machines"][name]
            progress(lab, "%s: booting %s (pid %d, %s)" % (name, args.distro, info["pid"], info["address"]))
        # /etc/hosts lists every machine: refresh it in running machines too
        for name in names:
            if name not in booting:
                write_atomic(Path(state["machines"][name]["root"]) / "etc/hosts", render_hosts_file(state))
        deadline = time.monotonic() + args.timeout
        for name in names:
            status = wait_ready(state, name, deadline)
            state["machines"][name]["systemd"] = status
            progress(lab, "%s: systemd %s, ssh ok (%.1f s since start)" % (name, status, time.monotonic() - t_start))
        inventory = (Path(args.inventory) if args.inventory else default_inventory(lab)).resolve()
        text = render_inventory(state)
        write_atomic(inventory, text)
        state["inventory"] = str(inventory)
        state["inventory_sha256"] = hashlib.sha256(text.encode()).hexdigest()
        save_state(state)
    progress(lab, "up: %d machines in %.1f s; inventory %s" % (len(names), time.monotonic() - t_start, inventory))
    lab_arg = "" if lab == DEFAULT_LAB else " --lab " + lab
    progress(lab, "try: python3 tools/lab.py ssh%s %s; remove with: python3 tools/lab.py down%s" % (lab_arg, names[0], lab_arg))
    return 0


# ---------------------------------------------------------------------------------------------
# down
# ---------------------------------------------------------------------------------------------

def wait_pid_gone(pid: int, start: str | None, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not pid_alive(pid, start):
            return True
        time.sleep(0.1)
    return not pid_alive(pid, start)


def parent_pid(pid: int) -> int | None:
    try:
        return int(Path("/proc/%d/stat" % pid).read_text(encoding="utf-8").rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def stop_machines(lab: str, stops: list[tuple], key: str | None) -> list[str]:
    """Power machines off over ssh (in parallel), then SIGTERM/SIGKILL what is left.

    ``stops``: ("stop", name, address, pid, pid_start); an entry without an address is a
    systemd-nspawn found by the scan: stopped along with its supervisor when it has one, else
    SIGTERMed at once (nspawn turns SIGTERM into a clean poweroff of the machine)."""
    errors = []
    running = [(name, address, pid, start) for _kind, name, address, pid, start in stops if pid_alive(pid, start)]
    supervisors = {pid for _name, address, pid, _start in running if address}
    pending = []
    for name, address, pid, _start in running:
        if not address:
            if parent_pid(pid) in supervisors:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        elif key and Path(key).exists():
            argv = ["ssh", "-i", key, *SSH_OPTIONS, "-o", "ConnectTimeout=3", "root@%s" % address, "systemctl poweroff --no-block"]
            pending.append((pid, subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        progress(lab, "%s: stopping (pid %d)" % (name, pid))
    for pid, proc in pending:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.returncode != 0:  # no ssh yet (still booting) or already gone
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + POWEROFF_GRACE
    for name, _address, pid, start in running:
        if wait_pid_gone(pid, start, max(0.5, deadline - time.monotonic())):
            continue
        progress(lab, "%s: no poweroff within %.0f s, sending SIGTERM to pid %d" % (name, POWEROFF_GRACE, pid))
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if wait_pid_gone(pid, start, TERM_GRACE):
            continue
        progress(lab, "%s: sending SIGKILL to pid %d" % (name, pid))
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        if not wait_pid_gone(pid, start, 5):
            errors.append("%s: pid %d does not die" % (name, pid))
    return errors


def stop_and_remove_machine(state: dict, name: str) -> None:
    info = state["machines"][name]
    stops = [("stop", name, info.get("address"), info.get("pid"), info.get("pid_start"))]
    stops += [("stop", "%s (nspawn)" % name, None, pid, None) for pid in nspawn_pids(info["root"]) if pid != info.get("pid")]
    errors = stop_machines(state["lab"], stops, state["key"])
    for ns_pid in run(["ip", "netns", "pids", info["netns"]], check=False).stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(ns_pid), signal.SIGKILL)
    if info.get("root") and mounts_under(info["root"]):
        run(["umount", info["root"]])
    run(["ip", "netns", "del", info["netns"]], check=False)
    if info.get("veth") in list_links():
        run(["ip", "link", "del", info["veth"]], check=False)
    if info.get("veth") in list_links():
        errors.append("%s: cannot delete %s" % (name, info["veth"]))
    if errors:
        raise LabError("; ".join(errors))
    safe_rmtree(Path(info["dir"]))
    del state["machines"][name]
    save_state(state)


def down(lab: str) -> list[str]:
    """Remove everything of ``lab``; return the errors (empty when all is gone)."""
    state = load_state(lab)
    if state is None and state_path(lab).exists():
        progress(lab, "state file %s is unreadable: scanning the host for the lab's resources" % state_path(lab))
    scan = scan_host(lab)
    actions = plan_cleanup(lab, state, scan)
    key = (state or {}).get("key") or str(lab_dir(lab) / "id_ed25519")
    errors = stop_machines(lab, [a for a in actions if a[0] == "stop"], key)
    for action in actions:
        kind = action[0]
        if kind == "kill_netns":
            for pid in run(["ip", "netns", "pids", action[1]], check=False).stdout.split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
        elif kind == "umount":
            if action[1] in mounts_under(action[1]):
                if run(["umount", action[1]], check=False).returncode != 0:
                    time.sleep(1)
                    if run(["umount", action[1]], check=False).returncode != 0:
                        run(["umount", "-l", action[1]], check=False)
                if action[1] in mounts_under(action[1]):
                    errors.append("cannot unmount %s" % action[1])
        elif kind == "del_netns":
            if action[1] in list_netns():
                proc = run(["ip", "netns", "del", action[1]], check=False)
                if proc.returncode != 0:
                    errors.append("ip netns del %s: %s" % (action[1], proc.stderr.strip()))
        elif kind == "del_link":
            if action[1] in list_links():
                proc = run(["ip", "link", "del", action[1]], check=False)
                # a veth also goes away on its own when its peer's namespace is deleted
                if proc.returncode != 0 and action[1] in list_links():
                    errors.append("ip link del %s: %s" % (action[1], proc.stderr.strip()))
        elif kind == "iptables":
            table, chain, *args = action[1:]
            while run(["iptables", "-w", "-t", table, "-C", chain, *args], check=False).returncode == 0:
                proc = run(["iptables", "-w", "-t", table, "-D", chain, *args], check=False)
                if proc.returncode != 0:
                    errors.append("iptables -t %s -D %s: %s" % (table, chain, proc.stderr.strip()))
                    break
        elif kind == "ip_forward":
            if not any(name.startswith("kfb-") for name in list_links()):
                Path("/proc/sys/net/ipv4/ip_forward").write_text("%s\n" % action[1], encoding="utf-8")
                (CACHE_ROOT / ".ip_forward_before").unlink()
        elif kind == "rm":
            path = Path(action[1])
            if errors:
                continue
            if mounts_under(str(path)):
                errors.append("mounts remain under %s: %s" % (path, ", ".join(mounts_under(str(path)))))
                continue
            for inventory in {(state or {}).get("inventory") or "", str(default_inventory(lab))} - {""}:
                if is_lab_inventory(Path(inventory), lab, (state or {}).get("inventory_sha256")):
                    Path(inventory).unlink()
                    with contextlib.suppress(OSError):
                        Path(inventory).parent.rmdir()  # only when empty
            safe_rmtree(path)
    return errors


def cmd_down(args) -> int:
    require_root()
    lab = validate_lab_name(args.lab)
    started = time.monotonic()
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    with file_lock(CACHE_ROOT / (".%s.lock" % lab)):
        errors = down(lab)
    if errors:
        raise LabError("down left resources behind:\n  %s\nfix the cause and run `python3 tools/lab.py down --lab %s` again"
                       % ("\n  ".join(errors), lab))
    progress(lab, "down: everything removed in %.1f s" % (time.monotonic() - started))
    return 0


# ---------------------------------------------------------------------------------------------
# status, ssh, summary
# ---------------------------------------------------------------------------------------------

def require_state(lab: str) -> dict:
    state = load_state(lab)
    if not state or not state.get("machines"):
        raise LabError("lab %s is not up (no %s): start it with `python3 tools/lab.py up%s`"
                       % (lab, state_path(lab), "" if lab == DEFAULT_LAB else " --lab " + lab))
    return state


def cmd_status(args) -> int:
    lab = validate_lab_name(args.lab)
    state = require_state(lab)
    print("lab %s: %s, subnet %s, bridge %s, inventory %s" % (lab, state["distro"], state["subnet"], state["bridge"],
                                                              state.get("inventory")))
    print("%-12s %-15s %-8s %-6s %s" % ("MACHINE", "ADDRESS", "PID", "ALIVE", "SYSTEMD"))
    for name in sorted(state["machines"], key=lambda n: state["machines"][n]["index"]):
        info = state["machines"][name]
        alive = pid_alive(info.get("pid"), info.get("pid_start"))
        systemd = "-"
        if alive:
            proc = ssh(state, info["address"], "systemctl is-system-running", timeout=10)
            systemd = proc.stdout.strip() or ("ssh failed: %s" % proc.stderr.strip())
        print("%-12s %-15s %-8s %-6s %s" % (name, info["address"], info.get("pid") or "-", "yes" if alive else "no", systemd))
    return 0


def cmd_ssh(args) -> int:
    lab = validate_lab_name(args.lab)
    state = require_state(lab)
    if args.name not in state["machines"]:
        raise LabError("no machine %s in lab %s (machines: %s)" % (args.name, lab, ", ".join(sorted(state["machines"]))))
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    argv = ssh_argv(state, state["machines"][args.name]["address"], command)
    if sys.stdin.isatty() and not command:
        argv.insert(1, "-t")
    os.execvp("ssh", argv)
    return 0  # not reached


def instance_config(state: dict) -> list[dict]:
    """Molecule's instance config (default driver): one dict per machine."""
    return [{"instance": name, "address": state["machines"][name]["address"], "user": "root", "port": 22,
             "identity_file": state["key"]}
            for name in sorted(state["machines"], key=lambda n: state["machines"][n]["index"])]


def cmd_instances(args) -> int:
    lab = validate_lab_name(args.lab)
    print(json.dumps(instance_config(require_state(lab)), indent=2))
    return 0


SUMMARY_SCRIPT = r"""
. /etc/os-release
echo "distro=$ID $VERSION_ID ($VERSION_CODENAME)"
for s in %(services)s; do
  echo "active_$s=$(systemctl is-active $s 2>/dev/null | head -n1)"
  echo "load_$s=$(systemctl show -p LoadState --value $s 2>/dev/null)"
done
v() { "$@" 2>&1 | head -n1; }
command -v containerd >/dev/null && echo "version_containerd=$(v containerd --version | awk '{print $3}')"
command -v docker >/dev/null && echo "version_docker=$(v docker --version | sed 's/^Docker version \([^,]*\).*/\1/')"
command -v etcd >/dev/null && echo "version_etcd=$(etcd --version 2>&1 | sed -n 's/^etcd Version: //p')"
command -v nginx >/dev/null && echo "version_nginx=$(v nginx -v | sed 's|.*nginx/||')"
command -v kubelet >/dev/null && echo "version_kubelet=$(v kubelet --version | awk '{print $2}')"
for s in %(sockets)s; do [ -S "$s" ] && echo "cri=$s"; done
true
"""


def inventory_hosts(path: str) -> list[dict]:
    """Hosts of an inventory: through ansible-inventory when available, else the lab's own format."""
    if shutil.which("ansible-inventory"):
        proc = run(["ansible-inventory", "-i", path, "--list"], check=False, timeout=60)
        if proc.returncode == 0:
            data = json.loads(proc.stdout)
            hosts = []
            for name, hostvars in sorted(data.get("_meta", {}).get("hostvars", {}).items()):
                hosts.append({"name": name, "address": hostvars.get("ansible_host", name),
                              "user": hostvars.get("ansible_user", "root"),
                              "key": hostvars.get("ansible_ssh_private_key_file")})
            return hosts
    text = Path(path).read_text(encoding="utf-8")
    key = re.search(r"ansible_ssh_private_key_file:\s*\"?([^\"\n]+)", text)
    hosts = []
    for match in re.finditer(r"^    ([A-Za-z0-9_.-]+):\n      ansible_host: (\S+)", text, re.MULTILINE):
        hosts.append({"name": match.group(1), "address": match.group(2), "user": "root",
                      "key": key.group(1).strip() if key else None})
    return hosts


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


def summary_cell(info: dict, service: str) -> str:
    """``active 1.7.24``, ``inactive``, or ``-`` when the service is not installed at all."""
    version = info.get("version_%s" % service)
    if info.get("load_%s" % service) == "not-found" and not version:
        return "-"
    active = info.get("active_%s" % service) or "?"
    return "%s %s" % (active, version) if version else active


def cmd_summary(args) -> int:
    if not Path(args.inventory).exists():
        raise LabError("inventory %s does not exist: bring the lab up with `python3 tools/lab.py up --inventory %s`"
                       % (args.inventory, args.inventory))
    hosts = inventory_hosts(args.inventory)
    if not hosts:
        raise LabError("inventory %s has no hosts" % args.inventory)
    script = SUMMARY_SCRIPT % {"services": " ".join(SUMMARY_SERVICES), "sockets": " ".join(CRI_SOCKETS)}
    header = "%-10s %-22s" % ("NODE", "DISTRO") + "".join(" %-18s" % s for s in SUMMARY_SERVICES) + " CRI SOCKET"
    print(header)
    failed = 0
    for host in hosts:
        argv = ["ssh", *SSH_OPTIONS, "-o", "ConnectTimeout=5"]
        if host.get("key"):
            argv += ["-i", host["key"]]
        argv += ["%s@%s" % (host["user"], host["address"]), "sh -s"]
        proc = run(argv, check=False, timeout=60, input_text=script)
        if proc.returncode != 0:
            failed += 1
            print("%-10s unreachable: %s" % (host["name"], (proc.stderr or proc.stdout).strip()))
            continue
        info = parse_summary(proc.stdout)
        cells = []
        for service in SUMMARY_SERVICES:
            cells.append(" %-18s" % summary_cell(info, service))
        print("%-10s %-22s" % (host["name"], info.get("distro", "?")) + "".join(cells) + " " + (",".join(info["cri"]) or "-"))
    return 1 if failed else 0


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lab.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="action", required=True, metavar="{up,down,status,ssh,instances,summary}")
    up = sub.add_parser("up", help="bring the lab up (idempotent: running machines are kept)")
    up.add_argument("--machines", type=int, default=None, help="number of machines (default 3, or the number of --names)")
    up.add_argument("--names", help="comma-separated machine names (default node1..nodeN)")
    up.add_argument("--distro", choices=DISTROS, default="bookworm")
    up.add_argument("--lab", default=DEFAULT_LAB)
    up.add_argument("--inventory", help="where to write the Ansible inventory (default inventories/<lab>/hosts.yml)")
    up.add_argument("--control-planes", type=int, default=1, help="how many machines form the control plane (default 1)")
    up.add_argument("--timeout", type=int, default=300, help="seconds to wait for the machines to boot (default 300)")
    down_p = sub.add_parser("down", help="remove every machine, namespace, veth, bridge and NAT rule of the lab")
    down_p.add_argument("--lab", default=DEFAULT_LAB)
    status = sub.add_parser("status", help="machines, pids, addresses and systemd state")
    status.add_argument("--lab", default=DEFAULT_LAB)
    ssh_p = sub.add_parser("ssh", help="ssh into a machine: ssh NAME [-- command]")
    ssh_p.add_argument("--lab", default=DEFAULT_LAB)
    ssh_p.add_argument("name")
    ssh_p.add_argument("command", nargs=argparse.REMAINDER)
    boot = sub.add_parser("_boot")  # internal: the supervisor of one machine, started by `up`
    boot.add_argument("--lab", default=DEFAULT_LAB)
    boot.add_argument("name")
    instances = sub.add_parser("instances", help="the machines as molecule's instance config (JSON)")
    instances.add_argument("--lab", default=DEFAULT_LAB)
    summary = sub.add_parser("summary", help="what each node of an inventory runs")
    summary.add_argument("--inventory", required=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.action == "up" and args.machines is None:
        args.machines = 0 if args.names else 3
    handlers = {"up": cmd_up, "down": cmd_down, "status": cmd_status, "ssh": cmd_ssh, "instances": cmd_instances, "_boot": cmd_boot,
                "summary": cmd_summary}
    try:
        return handlers[args.action](args)
    except LabError as exc:
        lab = getattr(args, "lab", DEFAULT_LAB)
        print("lab.py %s: error: %s" % (args.action, exc), file=sys.stderr)
        if args.action == "up" and not isinstance(exc, UsageError):
            print("lab.py: to remove what was created: python3 tools/lab.py down --lab %s" % lab, file=sys.stderr)
        return 1
    except OSError as exc:
        print("lab.py %s: error: %s" % (args.action, exc), file=sys.stderr)
        if args.action in ("up", "down"):
            print("lab.py: to remove what was created: python3 tools/lab.py down --lab %s"
                  % getattr(args, "lab", DEFAULT_LAB), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lab.py %s: interrupted; clean up with: python3 tools/lab.py down --lab %s"
              % (args.action, getattr(args, "lab", DEFAULT_LAB)), file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
