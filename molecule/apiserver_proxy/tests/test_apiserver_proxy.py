# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""kubeforge.cluster.apiserver_proxy on the lab, in order (the tests share one lab and build on each other):

nginx (converged by molecule, which also proved idempotence and a truthful --check): spread from every node and the
host's own nginx.service untouched, failover, cp3 added to the control plane (--check --diff predicts it, then a
reload: master PID kept, a connection opened before survives), five kinds of bad input refused in one run with the
proxy untouched; then w1 switched to haproxy (the role's strict forward check passes, spread, the package's
haproxy.service off). haproxy's failover and reload are proven against the real binary by
tests/integration/test_apiserver_proxy_real.py; longer measurements are benchmarks/apiserver_proxy_latency.py.

The apiservers are STAND-INS (tools/apiserver_standin.py, a small TLS server naming its machine), because
kube-apiserver cannot run in the lab. Every client runs on a lab machine against its own 127.0.0.1 listener.
"""

from __future__ import annotations

import json
import re
import resource
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

STANDIN = "kubeforge-standin-apiserver"
CONFIG = {"nginx": "/etc/kube-apiserver-proxy/nginx.conf", "haproxy": "/etc/kube-apiserver-proxy/haproxy.cfg"}
# cp3 (a kube node with a stand-in apiserver) joins the control plane: its stand-in becomes an upstream of every proxy.
GROWN = {"control_plane": {"hosts": {"cp3": {}}}}


def nodes(lab):
    return sorted(lab.groups["kube_nodes"])


def control_planes(lab, grown=False):
    return sorted(lab.groups["control_plane"] + (["cp3"] if grown else []))


def assert_spread(lab, backend, grown=False, requests=30, on=None):
    results = lab.spread(on or nodes(lab), requests)
    lab.figure("%s spread (%d requests from each node's 127.0.0.1:6443, least_conn)%s" % (backend, requests, " with cp3" if grown else ""),
               {node: result["counts"] for node, result in results.items()})
    for node, result in results.items():
        assert result["errors"] == [], "%s: %s" % (node, result["errors"])
        assert sorted(result["counts"]) == control_planes(lab, grown), "%s reached %s" % (node, result["counts"])


def timed_converge(lab, *extra, **kwargs):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    rc, output, recap = lab.converge(*extra, **kwargs)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return rc, output, recap, {"wall_s": round(time.monotonic() - started, 1), "controller_cpu_s": round(cpu, 1)}


def failover(lab, backend, victim="cp2", client="w1"):
    """A bounded client loop on ``client`` while ``victim``'s stand-in is stopped for 2 s and started again."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        loop = pool.submit(lab.client, client, "loop --requests 3000 --seconds 10 --interval 0.005", 90)
        time.sleep(1.5)
        stop_begin, stop_end = map(float, lab.ssh(victim, "date +%%s.%%N; systemctl stop %s; date +%%s.%%N" % STANDIN).split())
        time.sleep(2.0)
        started = float(lab.ssh(victim, "systemctl start %s; date +%%s.%%N" % STANDIN).split()[-1])
        rows = [json.loads(line) for line in loop.result().splitlines()]
    # The window: from the stop until the first request that began after the stand-in was surely gone and succeeded.
    first_clean = next(row for row in rows if row[0] >= stop_end and row[2])
    window_ms = (first_clean[1] - stop_begin) * 1000
    failed_before = [row for row in rows if row[0] < stop_begin and not row[2]]
    failed_in_window = [row for row in rows if stop_begin <= row[0] < first_clean[0] and not row[2]]
    failed_after = [row for row in rows if row[0] > first_clean[0] and not row[2]]
    to_victim_while_down = [row for row in rows if stop_end <= row[0] and row[1] < started and row[3] == victim]
    back = [row for row in rows if row[0] >= started and row[2] and row[3] == victim]
    down_latency = [(row[1] - row[0]) * 1000 for row in rows if stop_begin <= row[0] < started and row[2]]
    normal_latency = [(row[1] - row[0]) * 1000 for row in rows if row[0] < stop_begin and row[2]]
    lab.figure("%s failover (%s stopped for 2 s, client loop on %s)" % (backend, victim, client), {
        "requests": len(rows),
        "failover_window_ms": round(window_ms, 1),
        "failed_in_window": len(failed_in_window),
        "failed_after_window": len(failed_after),
        "median_ms_before_stop": round(statistics.median(normal_latency), 2),
        "max_ms_while_down": round(max(down_latency), 2),
        "first_request_to_%s_after_its_start_s" % victim: round(back[0][0] - started, 2) if back else None,
        "requests_to_%s_after_its_start" % victim: len(back),
    })
    assert not failed_before, failed_before[:3]
    assert not failed_after, "requests failed after the failover window: %s" % failed_after[:5]
    assert not to_victim_while_down, to_victim_while_down[:3]
    assert back, "%s got no traffic again within %.1f s of its start" % (victim, rows[-1][0] - started)


def start_held_connection(lab, client="w1"):
    lab.ssh(client, "rm -f /tmp/hold.ready /tmp/hold.go /tmp/hold.out; systemctl reset-failed kf-hold 2>/dev/null; "
                    "systemd-run --unit=kf-hold --collect python3 /usr/local/bin/apiserver_proxy_client.py hold "
                    "--ready /tmp/hold.ready --go /tmp/hold.go --out /tmp/hold.out --seconds 300")
    return json.loads(lab.ssh(client, "for i in $(seq 100); do [ -s /tmp/hold.ready ] && break; sleep 0.1; done; cat /tmp/hold.ready"))


def finish_held_connection(lab, client="w1"):
    return json.loads(lab.ssh(client, "touch /tmp/hold.go; for i in $(seq 100); do [ -s /tmp/hold.out ] && break; sleep 0.1; done; "
                                      "cat /tmp/hold.out"))


def reload_keeps_master(lab, backend, change, inventories, before_nodes, grown_after):
    """Converge an upstream change; the master PIDs stay, new workers appear, a connection opened before survives."""
    held = start_held_connection(lab)
    before = lab.proxy_processes(before_nodes)
    rc, output, recap, cost = timed_converge(lab, "-e", "apiserver_proxy_backend=%s" % backend, inventories=inventories)
    assert rc == 0, output[-3000:]
    after = lab.proxy_processes(before_nodes)
    result = finish_held_connection(lab)
    lab.figure("%s reload (%s)" % (backend, change), {
        "master_pid_before_after": {node: [before[node]["master"], after[node]["master"]] for node in before_nodes},
        "new_worker_pids": {node: sorted(set(after[node]["workers"]) - set(before[node]["workers"])) for node in before_nodes},
        "held_connection": {"opened_before_reload_to": held["first"], "answer_after_reload_from": result.get("second"),
                            "error": result.get("error")},
        "converge": cost,
    })
    for node in before_nodes:
        assert recap[node]["changed"] >= 1, recap
        assert after[node]["master"] == before[node]["master"], "%s: master %s became %s (restarted, not reloaded)" % (
            node, before[node]["master"], after[node]["master"])
        assert set(after[node]["workers"]) - set(before[node]["workers"]), "%s: no new worker, so no reload" % node
    assert "error" not in result and result["second"] == held["first"], result
    assert_spread(lab, backend, grown=grown_after, requests=24)


def operator_nginx_intact(lab):
    """The host's own nginx.service (cp1, w2) keeps running with the same master and serving :80; elsewhere the
    package's nginx.service stays off, as it was before the role installed the package."""
    for node in lab.groups["operator_nginx"]:
        recorded = int(lab.ssh(node, "cat /root/operator-nginx-pid").strip())
        assert lab.main_pid(node, "nginx") == recorded, "%s: the operator's nginx.service was restarted" % node
        assert lab.ssh(node, "systemctl is-enabled nginx.service").strip() == "enabled"
        status = lab.ssh(node, "python3 -c \"import urllib.request; print(urllib.request.urlopen('http://127.0.0.1/').status)\"")
        assert status.strip() == "200"
    for node in sorted(set(nodes(lab)) - set(lab.groups["operator_nginx"])):
        state = lab.ssh(node, "systemctl is-enabled nginx.service; systemctl is-active nginx.service", check=False).split()
        assert state[-1] == "inactive" and state[0] in ("disabled", "not-found"), "%s: nginx.service is %s" % (node, state)


# --- nginx ---------------------------------------------------------------------------------------------------------

def test_nginx_spread_from_every_node_beside_the_hosts_own_nginx(lab):
    assert {node: state["exe"] for node, state in lab.proxy_processes(nodes(lab)).items()} == dict.fromkeys(nodes(lab), "/usr/sbin/nginx")
    assert set(lab.on_all(nodes(lab), "systemctl is-enabled kube-apiserver-proxy").values()) == {"enabled\n"}
    assert "Before=kubelet.service" in lab.ssh("w1", "systemctl cat kube-apiserver-proxy")
    assert_spread(lab, "nginx")
    operator_nginx_intact(lab)
    listeners = lab.ssh("w1", "ss -ltnp")
    assert re.search(r"127\.0\.0\.1:6443 .*nginx", listeners) and re.search(r"0\.0\.0\.0:80 .*nginx", listeners), listeners


def test_nginx_failover(lab):
    failover(lab, "nginx")


def test_nginx_new_control_plane_check_diff_then_reload(lab):
    grown = lab.write_inventory("grown.yml", GROWN)
    cp3 = lab.address("cp3")
    before = lab.sha(nodes(lab), CONFIG["nginx"])
    rc, output, _recap = lab.converge("--check", "--diff", "--limit", "w1", inventories=[grown])
    # check_unchanged (molecule.yml) ends a --check run that predicts changes with rc 3 and lists them
    assert rc == 3, output[-3000:]
    predicted = re.findall(r"^\s+(\S+): (?:kubeforge\.cluster\.apiserver_proxy : )?(.+)$",
                           output.split("predicted", 1)[-1].split("PLAY RECAP")[0], re.MULTILINE)
    assert sorted(predicted) == [("w1", "Reload apiserver proxy"), ("w1", "Write and validate the proxy configuration and its systemd unit")]
    assert re.search(r"^\+\s+server %s:5443 " % re.escape(cp3), output, re.MULTILINE), "the diff does not show cp3"
    assert lab.sha(nodes(lab), CONFIG["nginx"]) == before, "--check changed a file"
    lab.figure("nginx --check --diff with cp3 added predicts (w1)", sorted({task for _host, task in predicted}))
    reload_keeps_master(lab, "nginx", "cp3 added to control_plane", [grown], nodes(lab), grown_after=True)


def test_bad_input_changes_nothing(lab):
    """Each bad input fails with a message naming the cause; the running proxy keeps its config, master and workers.
    All cases in one run (bad_input.yml applies the role once per case and records each outcome)."""
    extra_inventory = lab.write_inventory("bad.yml", {**GROWN, "empty_control_plane": {"hosts": {}}})
    out = lab.ephemeral / "bad-input.json"
    out.unlink(missing_ok=True)
    lab.ssh("w1", "systemctl reset-failed kf-squatter 2>/dev/null; systemd-run --unit=kf-squatter --collect "
                  "python3 -m http.server 6444 --bind 127.0.0.1; for i in $(seq 50); do ss -ltn | grep -q :6444 && break; sleep 0.1; done")
    expected = {
        "missing group": r"inventory group\s+'no_such_group' \(apiserver_proxy_control_plane_group\) does not exist",
        "empty group": r"'empty_control_plane' \(apiserver_proxy_control_plane_group\) is empty",
        "not an address or name": r"apiserver_proxy_upstreams\[1\]: 'cp 2!' is neither an IP address nor a DNS name",
        "port held by another process": r"127\.0\.0\.1:6444 is held by python3 \(pid \d+, kf-squatter\.service\)",
        "the binary refuses the candidate": r"nginx refuses the new configuration .*host not found in upstream \"no-such-apiserver\.invalid:5443\"",
    }
    before = lab.proxy_processes(["w1"]), lab.sha(["w1"], CONFIG["nginx"])
    try:
        rc, output, _recap = lab.converge("-e", "bad_input_out=%s" % out, inventories=[extra_inventory], playbook="bad_input.yml")
    finally:
        lab.ssh("w1", "systemctl stop kf-squatter", check=False)
    assert rc == 0, output[-3000:]
    refused = json.loads(out.read_text())
    assert sorted(refused) == sorted(expected), refused
    messages = {}
    for name, pattern in expected.items():
        flat = " ".join(refused[name].split())
        assert re.search(pattern, flat), "%s: no %r in %r" % (name, pattern, refused[name])
        messages[name] = re.search(pattern, flat).group(0)
    assert (lab.proxy_processes(["w1"]), lab.sha(["w1"], CONFIG["nginx"])) == before, "a refused run changed the proxy"
    lab.figure("bad input (each refused, proxy unchanged; one run)", messages)
    assert_spread(lab, "nginx", grown=True, requests=12, on=["w1"])


# --- haproxy ---------------------------------------------------------------------------------------------------------

def test_haproxy_on_w1(lab):
    """w1 switches to haproxy (a restart; the package's own haproxy.service is neither started nor enabled, the host's
    own nginx.service keeps running); the role's strict forward check passed inside the run, and requests spread."""
    grown = str(lab.ephemeral / "grown.yml")
    before = lab.proxy_processes(["w1"])["w1"]
    rc, output, recap, cost = timed_converge(lab, "--limit", "w1", "-e", "apiserver_proxy_backend=haproxy", inventories=[grown])
    assert rc == 0, output[-3000:]
    assert "Check that the proxy forwards to every apiserver that answers" in output
    after = lab.proxy_processes(["w1"])["w1"]
    assert after["exe"] == "/usr/sbin/haproxy" and after["master"] != before["master"], after
    assert lab.ssh("w1", "test -e %s && test ! -e %s && echo ok" % (CONFIG["haproxy"], CONFIG["nginx"])) == "ok\n"
    state = lab.ssh("w1", "systemctl is-enabled haproxy.service; systemctl is-active haproxy.service; "
                          "test -e /usr/sbin/policy-rc.d && echo policy-rc.d left behind", check=False).split()
    assert state == ["disabled", "inactive"], "haproxy.service: %s" % state
    operator_nginx_intact(lab)
    assert_spread(lab, "haproxy", grown=True, on=["w1"])
    lab.figure("haproxy switch on w1 (installs haproxy)", cost)
