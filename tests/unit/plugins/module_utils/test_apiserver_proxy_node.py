# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Node evidence for the apiserver proxy: /proc/net/tcp parsing and socket owners on fake trees and on this
process's real sockets, the bind probe, a replaced binary, nginx's build options."""

from __future__ import annotations

import ipaddress
import os
import socket

import pytest
from ansible_collections.kubeforge.cluster.plugins.module_utils import _apiserver_proxy_node as node

# Real lines (kernel format): 127.0.0.1:6443 LISTEN inode 1001, 0.0.0.0:80 LISTEN 1002, an ESTABLISHED one on 6443.
TCP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:192B 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1001 1 0000000000000000 100 0 0 10 0
   1: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1002 1 0000000000000000 100 0 0 10 0
   2: 0100007F:192B 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 1003 1 0000000000000000 20 4 30 10 -1
"""
# [::]:6443 LISTEN inode 2001, [::1]:6444 LISTEN 2002
TCP6 = """  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:192B 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2001 1
   1: 00000000000000000000000001000000:192C 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2002 1
"""


def test_parse_proc_net_tcp():
    assert node.parse_proc_net_tcp(TCP) == [(ipaddress.ip_address("127.0.0.1"), 6443, 1001), (ipaddress.ip_address("0.0.0.0"), 80, 1002)]
    assert node.parse_proc_net_tcp(TCP6) == [(ipaddress.ip_address("::"), 6443, 2001), (ipaddress.ip_address("::1"), 6444, 2002)]
    assert node.parse_proc_net_tcp("header only\n  0: garbage\n") == []


def make_proc(tmp_path, processes):
    """A fake /proc: net/tcp{,6} and, per pid, comm, cmdline, cgroup and fd/N -> socket:[inode]."""
    proc = tmp_path / "proc"
    (proc / "net").mkdir(parents=True)
    (proc / "net" / "tcp").write_text(TCP)
    (proc / "net" / "tcp6").write_text(TCP6)
    for pid, (comm, cmdline, unit, inodes) in processes.items():
        base = proc / str(pid)
        (base / "fd").mkdir(parents=True)
        (base / "comm").write_text(comm + "\n")
        (base / "cmdline").write_text("\x00".join(cmdline) + "\x00")
        (base / "cgroup").write_text("1:name=systemd:/system.slice/%s\n0::/system.slice/%s\n" % (unit, unit) if unit else "0::/user.slice\n")
        for number, inode in enumerate(inodes, start=3):
            os.symlink("socket:[%d]" % inode, base / "fd" / str(number))
        os.symlink("/dev/null", base / "fd" / "0")
    (proc / "self").mkdir()
    return str(proc)


def test_port_users_separates_the_units_own_sockets(tmp_path):
    proc = make_proc(tmp_path, {
        100: ("nginx", ["nginx: master process /usr/sbin/nginx -e stderr -c /etc/kube-apiserver-proxy/nginx.conf"],
              "kube-apiserver-proxy.service", [1001]),
        101: ("nginx", ["nginx: worker process"], "kube-apiserver-proxy.service", [1001]),
        200: ("python3", ["python3", "-m", "http.server", "6444", "--bind", "::1"], "squatter.service", [2002]),
        300: ("socat", ["socat", "TCP6-LISTEN:6443,fork", "-"], "", [2001]),
    })
    foreign, ours = node.port_users(proc, "127.0.0.1", 6443, "kube-apiserver-proxy")
    assert ours == [ipaddress.ip_address("127.0.0.1")]
    assert foreign == []  # [::]:6443 is another family: only the kernel can tell (IPV6_V6ONLY), see probe_bind
    foreign, ours = node.port_users(proc, "::1", 6443, "kube-apiserver-proxy")
    assert [(info["pid"], info["name"], info["address"]) for info in foreign] == [(300, "socat", "[::]:6443")]
    assert node.describe_process(foreign[0]) == "socat (pid 300): socat TCP6-LISTEN:6443,fork -"
    foreign, _ours = node.port_users(proc, "::", 6444, "kube-apiserver-proxy")
    assert node.describe_process(foreign[0]) == "python3 (pid 200, squatter.service): python3 -m http.server 6444 --bind ::1"
    users = node.all_port_users(proc, 6443)
    assert sorted((info["pid"], info["address"]) for info in users) == [(100, "127.0.0.1:6443"), (101, "127.0.0.1:6443"), (300, "[::]:6443")]


@pytest.mark.parametrize("wanted, held, conflict", [
    ("127.0.0.1", "127.0.0.1", True), ("127.0.0.1", "0.0.0.0", True), ("0.0.0.0", "10.0.0.1", True),
    ("127.0.0.1", "10.0.0.1", False), ("::1", "::", True), ("127.0.0.1", "::", False), ("::1", "fd00::1", False),
])
def test_addresses_conflict(wanted, held, conflict):
    assert node.addresses_conflict(wanted, ipaddress.ip_address(held)) is conflict


def test_real_sockets_of_this_process():
    """The live /proc sees a socket this test listens on, owned by this process, outside any proxy unit."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        foreign, ours = node.port_users("/proc", "127.0.0.1", port, "kube-apiserver-proxy")
        assert ours == []
        assert os.getpid() in [info["pid"] for info in foreign]
        assert node.probe_bind("127.0.0.1", port) == "address already in use"
    assert node.probe_bind("127.0.0.1", port) is None
    assert "has no address" in node.probe_bind("192.0.2.1", port)  # TEST-NET-1 is on no interface here


def test_running_binary_replaced(tmp_path):
    proc = tmp_path / "proc"
    (proc / "10").mkdir(parents=True)
    os.symlink("/usr/sbin/nginx", proc / "10" / "exe")
    (proc / "10" / "maps").write_text("7f00 r-xp 0 08:01 12 /usr/lib/nginx/modules/ngx_stream_module.so\n")
    (proc / "11").mkdir()
    os.symlink("/usr/sbin/nginx (deleted)", proc / "11" / "exe")
    (proc / "12").mkdir()
    os.symlink("/usr/sbin/nginx", proc / "12" / "exe")
    (proc / "12" / "maps").write_text("7f00 r-xp 0 08:01 12 /usr/lib/nginx/modules/ngx_stream_module.so (deleted)\n")
    module = ("/usr/lib/nginx/modules/ngx_stream_module.so",)
    assert node.running_binary_replaced(str(proc), 10, "/usr/sbin/nginx", module) is None
    assert "replaced on disk" in node.running_binary_replaced(str(proc), 11, "/usr/sbin/nginx", module)
    assert "replaced module" in node.running_binary_replaced(str(proc), 12, "/usr/sbin/nginx", module)
    assert node.running_binary_replaced(str(proc), 0, "/usr/sbin/nginx") is None
    assert node.running_binary_replaced(str(proc), 99, "/usr/sbin/nginx") is None


@pytest.mark.parametrize("text, support", [
    ("nginx version: nginx/1.22.1\nconfigure arguments: --prefix=/usr/share/nginx --modules-path=/usr/lib/nginx/modules "
     "--with-stream=dynamic --with-stream_ssl_module", ("dynamic", "/usr/lib/nginx/modules")),
    ("configure arguments: --prefix=/etc/nginx --with-stream --with-stream_ssl_module", ("static", None)),
    ("configure arguments: --with-stream=dynamic", ("dynamic", "/usr/lib/nginx/modules")),
    ("configure arguments: --with-http_ssl_module", (None, None)),
])
def test_nginx_stream_support(text, support):
    assert node.nginx_stream_support(text) == support


def test_parse_systemctl_show():
    assert node.parse_systemctl_show("ActiveState=active\nMainPID=42\nLoadState=loaded\n") == {
        "ActiveState": "active", "MainPID": "42", "LoadState": "loaded"}
