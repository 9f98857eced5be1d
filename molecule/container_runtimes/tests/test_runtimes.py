# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What an operator checks after the container-runtime stage on a mixed lab: the Docker node (node2) serves CRI
through cri-dockerd only, with the flags that matter, and the real crictl talks to it; the containerd node (node1)
serves CRI through containerd, which knows the kata runtime while runc stays the default; each node's endpoint is the
one kubeadm will get. No Kata binary exists here: node1's Kata is the stand-in of tools/make_kata_standin.py."""

from __future__ import annotations

import json
import tomllib

import pytest
import yaml
from testinfra.modules.ansible import AnsibleException

CRI_DOCKERD = "unix:///run/cri-dockerd.sock"
CONTAINERD = "unix:///run/containerd/containerd.sock"
SANDBOX_IMAGE = "registry.lab.invalid/kubeforge/pause:3.10"


def run(host, command):
    result = host.run(command)
    assert result.rc == 0, "%s failed (rc %s): %s %s" % (command, result.rc, result.stdout, result.stderr)
    return result.stdout


def runtime_of(host):
    return host.ansible.get_variables().get("kubeforge_container_runtime", "containerd")


@pytest.fixture(scope="module")
def hostvars(host):
    return host.ansible.get_variables()


def ansible(host, module, args=""):
    """The module's result, also when it failed (testinfra raises then)."""
    try:
        return host.ansible(module, args, check=False, become=True)
    except AnsibleException as exc:
        return exc.result


@pytest.fixture(scope="module")
def probe(host, hostvars):
    """kubeforge.cluster.cri_socket with the input the kubeadm stage gives it (kubeforge_cri_socket)."""
    return ansible(host, "kubeforge.cluster.cri_socket", "preferred=%s" % hostvars.get("kubeforge_cri_socket", ""))


def test_each_node_gets_the_endpoint_of_its_runtime_and_it_is_the_only_one(host, probe):
    expected = CRI_DOCKERD if runtime_of(host) == "docker" else CONTAINERD
    assert probe.get("cri_socket") == expected, probe
    capable = [e["endpoint"] for e in probe["endpoints"] if e["cri"] and e["alias_of"] is None]
    assert capable == [expected], "kubeadm autodetection needs one endpoint: %s" % capable


# --------------------------------------------------------------------------- node2: Docker Engine + cri-dockerd


@pytest.fixture
def docker_node(host):
    if runtime_of(host) != "docker":
        pytest.skip("not the Docker node")
    return host


def test_cri_dockerd_units_enabled_and_the_socket_listening(docker_node):
    for unit in ("cri-docker.socket", "cri-docker.service", "docker.service"):
        service = docker_node.service(unit)
        assert service.is_enabled and service.is_running, unit
    assert docker_node.socket(CRI_DOCKERD).is_listening
    assert run(docker_node, "systemctl show -p Listen --value cri-docker.socket").strip() == "/run/cri-dockerd.sock (Stream)"


def test_cri_dockerd_runs_with_the_cni_plugin_and_the_pause_image(docker_node):
    pid = run(docker_node, "systemctl show -p MainPID --value cri-docker.service").strip()
    argv = docker_node.file("/proc/%s/cmdline" % pid).content_string.split("\0")
    assert argv[0] == "/usr/local/bin/cri-dockerd"
    assert "--network-plugin=cni" in argv
    assert "--pod-infra-container-image=%s" % SANDBOX_IMAGE in argv
    assert "--container-runtime-endpoint=fd://" in argv


def test_real_crictl_reaches_docker_through_cri_dockerd(docker_node):
    version = run(docker_node, "crictl --runtime-endpoint %s version" % CRI_DOCKERD)
    fields = dict(line.split(":", 1) for line in version.splitlines() if ":" in line)
    assert fields["RuntimeName"].strip() == "docker" and fields["RuntimeApiVersion"].strip() == "v1"
    info = json.loads(run(docker_node, "crictl --runtime-endpoint %s info" % CRI_DOCKERD))
    assert info["config"]["sandboxImage"] == SANDBOX_IMAGE
    # crictl.yaml written for the node's endpoint: plain `crictl` finds cri-dockerd too
    assert yaml.safe_load(docker_node.file("/etc/crictl.yaml").content_string)["runtime-endpoint"] == CRI_DOCKERD


def test_daemon_json_merged_and_effective_in_dockerd(docker_node):
    config = json.loads(docker_node.file("/etc/docker/daemon.json").content_string)
    assert config["exec-opts"] == ["native.cgroupdriver=systemd"]
    assert config["log-driver"] == "json-file" and config["log-opts"] == {"max-size": "100m", "max-file": "5"}
    assert config["live-restore"] is True
    info = json.loads(run(docker_node, "docker info --format '{{json .}}'"))
    assert info["CgroupDriver"] == "systemd" and info["LoggingDriver"] == "json-file" and info["LiveRestoreEnabled"] is True
    assert "https://mirror.lab.invalid/" in info["RegistryConfig"]["Mirrors"]
    assert "registry.lab.invalid:5000" in info["RegistryConfig"]["IndexConfigs"]


def test_dockers_containerd_serves_no_cri_and_docker_still_works(docker_node):
    dump = tomllib.loads(run(docker_node, "containerd config dump"))
    assert "io.containerd.grpc.v1.cri" in dump["disabled_plugins"]
    assert not [line for line in run(docker_node, "ctr plugins ls").splitlines() if "io.containerd.grpc.v1" in line and " cri " in line]
    assert run(docker_node, "docker version --format '{{.Server.Version}}'").strip().startswith("20.10")


# --------------------------------------------------------------------------- node1: containerd + Kata (stand-in)


@pytest.fixture
def kata_node(host, hostvars):
    if not hostvars.get("kubeforge_kata_enabled"):
        pytest.skip("not the Kata node")
    return host


def test_containerd_knows_kata_and_runc_stays_the_default(kata_node):
    cri = tomllib.loads(run(kata_node, "containerd config dump"))["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]
    assert cri["default_runtime_name"] == "runc"
    kata = cri["runtimes"]["kata"]
    assert kata["runtime_type"] == "io.containerd.kata.v2"
    assert kata["runtime_path"] == "/opt/kata/bin/containerd-shim-kata-v2"
    assert kata["options"]["ConfigPath"] == "/opt/kata/share/defaults/kata-containers/configuration.toml"
    assert kata["pod_annotations"] == ["io.katacontainers.*"]
    assert cri["runtimes"]["runc"]["options"]["SystemdCgroup"] is True


def test_the_kata_stand_in_is_laid_down_with_its_links(kata_node):
    config = kata_node.file("/opt/kata/share/defaults/kata-containers/configuration.toml")
    assert config.is_symlink and config.linked_to == "/opt/kata/share/defaults/kata-containers/configuration-qemu.toml"
    assert kata_node.file("/opt/kata/share/kata-containers/vmlinux.container").is_symlink
    shim = kata_node.file("/opt/kata/bin/containerd-shim-kata-v2")
    assert shim.mode == 0o755 and "stand-in" in shim.content_string
    assert kata_node.file("/etc/modules-load.d/kubeforge-kata.conf").exists is False, "the lab kernel has no vhost modules to persist"


def test_the_runtimeclass_file_for_the_kubeadm_stage(kata_node):
    runtimeclass = yaml.safe_load(kata_node.file("/etc/kubernetes/addons/kata-runtimeclass.yaml").content_string)
    assert (runtimeclass["apiVersion"], runtimeclass["kind"], runtimeclass["handler"]) == ("node.k8s.io/v1", "RuntimeClass", "kata")
    assert runtimeclass["overhead"]["podFixed"] == {"memory": "160Mi", "cpu": "250m"}
    assert runtimeclass["scheduling"]["nodeSelector"] == {"katacontainers.io/kata-runtime": "true"}
    pod = yaml.safe_load(kata_node.file("/etc/kubernetes/examples/kata-sample-pod.yaml").content_string)
    assert pod["spec"]["runtimeClassName"] == "kata"


def test_the_preflight_says_why_the_lab_cannot_run_kata(kata_node):
    result = ansible(kata_node, "kubeforge.cluster.kata_preflight")
    assert result["supported"] is False and result.get("msg", "").startswith("This host cannot run Kata Containers: (1)"), result
    assert "cpu virtualization:" in result["msg"] and "neither vmx (Intel VT-x) nor svm (AMD-V)" in result["msg"]
    assert "/dev/kvm does not exist" in result["msg"]
    assert "kernel module vhost_vsock" in result["msg"]
