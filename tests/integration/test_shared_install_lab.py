# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""kubeforge.cluster.packages and release_artifact on a real Debian machine of the lab (tools/lab.py, one machine).

packages installs, holds and removes real Debian packages from the Debian mirror (the machine has no python3-apt,
so check mode on it is the fresh-machine case), and installs atd with start_services=false under an operator's
policy-rc.d that allows everything: atd is not started and the operator's file is back afterwards. release_artifact installs the real crictl and cri-dockerd of
/work/shared/bin (../shared/bin beside the checkout), packed by the test into a tarball with a SHA256SUMS in a
temporary artifacts directory the way an air-gapped operator provides them, and the same tarball downloaded by the
machine from an HTTP server the test runs on the lab bridge (the lab's own network; nothing else is contacted).

One machine and five playbook runs, each proving several things (check mode -> apply -> converged -> errors), to keep
the CI cost near a minute once the lab's base image is cached.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
SHARED_BIN = next((p for p in (REPO.parent / "shared" / "bin", REPO.parents[1] / "shared" / "bin", Path("/work/shared/bin"))
                   if (p / "crictl").exists()), None)
ANSIBLE_PLAYBOOK = str(Path(sys.executable).with_name("ansible-playbook"))
LAB = "%s-shared-install" % (os.environ.get("KUBEFORGE_LAB_PREFIX") or "it")
TARBALL = "cri-tools-v1.36.0-cri-dockerd-v0.4.3-linux-amd64.tar.gz"


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def lab_tool(*args, timeout=600):
    return subprocess.run([sys.executable, str(REPO / "tools" / "lab.py"), *args], capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    if os.geteuid() != 0 or not all(shutil.which(tool) for tool in ("systemd-nspawn", "debootstrap", "ip", "iptables")):
        pytest.skip("the lab needs root and debootstrap, systemd-nspawn, iproute2, iptables (make deps)")
    if SHARED_BIN is None:
        pytest.skip("no shared/bin with the real crictl and cri-dockerd beside this checkout")
    work = tmp_path_factory.mktemp("lab")
    inventory = work / "hosts.yml"
    started = time.monotonic()
    up = lab_tool("up", "--lab", LAB, "--names", "node1", "--inventory", str(inventory), timeout=900)
    if up.returncode != 0:
        lab_tool("down", "--lab", LAB)
        pytest.fail("lab up failed:\n%s\n%s" % (up.stdout, up.stderr))
    print("lab %s up in %.0f s" % (LAB, time.monotonic() - started))
    address = yaml.safe_load(inventory.read_text())["all"]["hosts"]["node1"]["ansible_host"]
    try:
        yield {"inventory": inventory, "address": address, "bridge": address.rsplit(".", 1)[0] + ".1", "work": work}
    finally:
        down = lab_tool("down", "--lab", LAB)
        assert down.returncode == 0, down.stdout + down.stderr


def ssh(lab_info, command):
    proc = lab_tool("ssh", "--lab", LAB, "node1", "--", command, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def artifacts(lab):
    """The artifacts directory an operator would prepare: a release tarball and its SHA256SUMS."""
    directory = lab["work"] / "artifacts"
    directory.mkdir()
    with tarfile.open(directory / TARBALL, "w:gz", compresslevel=1) as archive:
        for name in ("crictl", "cri-dockerd"):
            archive.add(SHARED_BIN / name, arcname="release/" + name)
    (directory / "SHA256SUMS").write_text("%s  %s\n" % (sha256(directory / TARBALL), TARBALL))
    broken = lab["work"] / "tampered"
    broken.mkdir()
    data = bytearray((directory / TARBALL).read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the middle of the tarball
    (broken / TARBALL).write_bytes(bytes(data))
    shutil.copy(directory / "SHA256SUMS", broken / "SHA256SUMS")
    return directory


@pytest.fixture(scope="module")
def server(lab, artifacts):
    """An HTTP server on the lab bridge address serving the artifacts directory; records every GET."""
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(artifacts), **kwargs)

        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer((lab["bridge"], 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield {"url": "http://%s:%d/%s" % (lab["bridge"], httpd.server_address[1], TARBALL), "requests": requests}
    finally:
        httpd.shutdown()
        httpd.server_close()


PLAY = """
- name: Shared install pieces on a real machine
  hosts: node1
  gather_facts: false
  vars:
    results: {}
  tasks:
TASKS
    - name: Save the results for the test
      ansible.builtin.copy:
        content: "{{ results | to_nice_json }}"
        dest: "{{ out }}"
        mode: "0600"
      delegate_to: localhost
      check_mode: false
"""


def task(key, module, args, ignore_errors=False):
    """A task whose result is kept under ``key``."""
    text = "    - name: %s\n      %s: %s\n      register: r_%s\n" % (key, module, json.dumps(args), key)
    if ignore_errors:
        text += "      ignore_errors: true\n"
    text += "    - name: Keep %s\n      ansible.builtin.set_fact:\n        results: \"{{ results | combine({'%s': r_%s}) }}\"\n" % (key, key, key)
    return text


def play(lab, name, tasks, check=False, verbose=False):
    (lab["work"] / (name + ".yml")).write_text(PLAY.replace("TASKS\n", "".join(tasks)))
    out = lab["work"] / (name + ".json")
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=str(REPO / ".build" / "collections"),
               ANSIBLE_NOCOLOR="1", XDG_CACHE_HOME=str(lab["work"] / "controller-cache"))
    argv = [ANSIBLE_PLAYBOOK, "-i", str(lab["inventory"]), "-e", "out=" + str(out), str(lab["work"] / (name + ".yml"))]
    argv += (["--check", "--diff"] if check else []) + (["-vvv"] if verbose else [])
    started = time.monotonic()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, check=False)
    print("playbook %s: %.1f s" % (name, time.monotonic() - started))
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    return json.loads(out.read_text()), proc.stdout


def packages(names, **kwargs):
    return dict({"names": names}, **kwargs)


def local_artifact(directory, **kwargs):
    args = {"src": "%s/%s" % (directory, TARBALL), "checksum_file": "%s/SHA256SUMS" % directory, "strip_components": 1,
            "members": ["crictl", "cri-dockerd"], "dest": "/usr/local/bin", "mode": "0755", "variable": "crictl_artifacts_dir"}
    args.update(kwargs)
    return args


def url_artifact(url, checksum, **kwargs):
    args = {"url": url, "checksum": "sha256:" + checksum, "strip_components": 1, "members": ["crictl"], "dest": "/opt/kubeforge-url/bin",
            "mode": "0755", "variable": "crictl_url"}
    args.update(kwargs)
    return args


def test_packages_and_release_artifacts_on_a_real_machine(lab, artifacts, server):
    checksum = sha256(artifacts / TARBALL)
    crictl, dockerd = sha256(SHARED_BIN / "crictl"), sha256(SHARED_BIN / "cri-dockerd")
    converge = [task("pkgs", "kubeforge.cluster.packages", packages(["tree", "jq"])),
                task("local", "kubeforge.cluster.release_artifact", local_artifact(artifacts)),
                task("url", "kubeforge.cluster.release_artifact", url_artifact(server["url"], checksum))]

    # 1. check mode on the fresh machine (no python3-apt): predicts, changes nothing, transfers nothing
    results = play(lab, "1-check-fresh", converge, check=True)[0]
    assert results["pkgs"]["changed"] is True and results["pkgs"]["installed"] == ["jq", "tree"]
    assert results["local"]["changed"] is True and results["local"]["transferred"] is False
    assert sorted(results["local"]["installed"]) == ["/usr/local/bin/cri-dockerd", "/usr/local/bin/crictl"]
    assert results["url"]["changed"] is True and server["requests"] == []
    rc, out, err = ssh(lab, "dpkg-query -W -f='${db:Status-Status}' tree python3-apt; ls /usr/local/bin /opt/kubeforge-url 2>&1")
    assert "installed" not in out and "crictl" not in out

    # 2. apply
    results = play(lab, "2-apply", converge)[0]
    assert results["pkgs"]["changed"] is True and results["pkgs"]["packages"]["tree"]["version"]
    tree_version = results["pkgs"]["packages"]["tree"]["version"]
    assert (results["local"]["changed"], results["local"]["transferred"], results["local"]["checksum"]) == (True, True, checksum)
    assert results["local"]["files"] == {"/usr/local/bin/crictl": crictl, "/usr/local/bin/cri-dockerd": dockerd}
    assert (results["url"]["changed"], results["url"]["transferred"]) == (True, True) and server["requests"] == ["/" + TARBALL]
    rc, out, err = ssh(lab, "tree --version; jq --version; crictl --version; cri-dockerd --version 2>&1; "
                            "/opt/kubeforge-url/bin/crictl --version; sha256sum /usr/local/bin/crictl /usr/local/bin/cri-dockerd; "
                            "stat -c '%a %u:%g' /usr/local/bin/crictl")
    assert rc == 0, out + err
    assert "crictl version v1.36.0" in out and "cri-dockerd 0.4.3" in out and out.count("v1.36.0") == 2
    assert "%s  /usr/local/bin/crictl" % crictl in out and "%s  /usr/local/bin/cri-dockerd" % dockerd in out
    assert "755 0:0" in out

    # 3. converged: nothing changes, nothing is transferred (no PUT of the tarball at -vvv) or downloaded
    results, stdout = play(lab, "3-converged", converge, verbose=True)
    assert [results[k]["changed"] for k in ("pkgs", "local", "url")] == [False, False, False]
    assert results["local"]["transferred"] is False and results["url"]["transferred"] is False
    assert not [line for line in stdout.splitlines() if "PUT " in line and TARBALL in line]
    assert server["requests"] == ["/" + TARBALL]
    results = play(lab, "3-converged-check", converge, check=True)[0]
    assert [results[k]["changed"] for k in ("pkgs", "local", "url")] == [False, False, False]

    # 4. holds, pins, failures that leave everything as it was
    ssh(lab, "cd /root && apt-get download -q tree >/dev/null 2>&1")
    rc, deb, err = ssh(lab, "ls /root/tree_*.deb")
    assert rc == 0, "apt-get download tree on the machine: " + err
    deb = deb.strip()
    other = "sha256:" + "0" * 64
    # an operator's policy-rc.d that allows every start: start_services=false must still keep atd from starting
    operator_policy = "#!/bin/sh\n# operator policy: allow everything\nexit 0\n"
    rc, out, err = ssh(lab, "printf '%s' > /usr/sbin/policy-rc.d && chmod 0750 /usr/sbin/policy-rc.d" % operator_policy.replace("\n", "\\n"))
    assert rc == 0, out + err
    results = play(lab, "4-holds-and-errors", [
        task("quiet", "kubeforge.cluster.packages", packages(["at"], start_services=False)),
        task("hold", "kubeforge.cluster.packages", packages(["tree=" + tree_version, "jq"], hold=True)),
        task("hold_again", "kubeforge.cluster.packages", packages(["tree=" + tree_version.split("-")[0] + "*"], hold=True)),
        task("unknown", "kubeforge.cluster.packages", packages(["tree", "no-such-package-kubeforge"]), ignore_errors=True),
        task("tampered", "kubeforge.cluster.release_artifact", local_artifact(lab["work"] / "tampered"), ignore_errors=True),
        task("missing", "kubeforge.cluster.release_artifact", local_artifact(artifacts, src="%s/cri-tools-v1.99.0.tar.gz" % artifacts),
             ignore_errors=True),
        task("url_mismatch", "kubeforge.cluster.release_artifact", url_artifact(server["url"], other[7:], dest="/opt/kubeforge-url/bin"),
             ignore_errors=True),
        task("remove", "kubeforge.cluster.packages", packages(["tree"], state="absent")),
        task("deb", "kubeforge.cluster.packages", {"debs": [deb]}),
        task("deb_again", "kubeforge.cluster.packages", {"debs": [deb]}),
    ])[0]
    assert (results["quiet"]["changed"], results["quiet"]["installed"]) == (True, ["at"])
    rc, out, err = ssh(lab, "systemctl is-enabled atd; systemctl is-active atd; stat -c '%a' /usr/sbin/policy-rc.d; cat /usr/sbin/policy-rc.d; "
                            "ls /usr/sbin | grep -c 'policy-rc.d' ")
    assert out.split("\n", 3)[:3] == ["enabled", "inactive", "750"], "atd was started, or the operator's policy-rc.d changed: " + out + err
    assert out.split("\n", 3)[3] == operator_policy + "1\n", "the operator's policy-rc.d is back, nothing else left: " + out
    assert (results["hold"]["changed"], sorted(results["hold"]["held"])) == (True, ["jq", "tree"])
    assert results["hold_again"]["changed"] is False
    assert results["unknown"]["failed"] is True and results["unknown"]["rc"] == 100
    assert results["unknown"]["msg"].startswith("installing no-such-package-kubeforge with apt failed: E: Unable to locate package no-such-package-kubeforge")
    tampered = lab["work"] / "tampered" / TARBALL
    assert results["tampered"]["msg"] == (
        "crictl_artifacts_dir: %s has sha256 %s, but %s says %s; nothing was changed. Replace the file or fix the checksum"
        % (tampered, sha256(tampered), lab["work"] / "tampered" / "SHA256SUMS", checksum))
    assert results["missing"]["msg"] == "crictl_artifacts_dir: cri-tools-v1.99.0.tar.gz not found in %s" % artifacts
    assert results["url_mismatch"]["msg"] == (
        "crictl_url: %s has sha256 %s, but checksum says %s; nothing was changed. Replace the file or fix the checksum"
        % (server["url"], checksum, "0" * 64))
    assert (results["remove"]["changed"], results["remove"]["removed"]) == (True, ["tree"]), "a held package is released and removed"
    assert (results["deb"]["changed"], results["deb"]["installed"], results["deb_again"]["changed"]) == (True, ["tree"], False)
    rc, out, err = ssh(lab, "apt-mark showhold; crictl --version; /opt/kubeforge-url/bin/crictl --version; sha256sum /usr/local/bin/crictl; "
                            "ls -a /usr/local/bin /opt/kubeforge-url/bin")
    assert rc == 0, out + err
    assert "jq" in out.split() and "tree" not in out.split("crictl")[0].split()
    assert out.count("crictl version v1.36.0") == 2 and "%s  /usr/local/bin/crictl" % crictl in out, "the old binaries are intact"
    assert ".kubeforge-" not in out, "no staged files left behind"
