# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What an operator checks on a node after node_prep + containerd: a CRI-capable containerd with the requested
effective configuration, the kernel settings node_prep reports, crictl pointing at containerd, the imported image."""

from __future__ import annotations

import tomllib

import pytest


SOCKET = "unix:///run/containerd/containerd.sock"


@pytest.fixture(scope="module")
def hostvars(host):
    return host.ansible.get_variables()


def _run(host, command):
    result = host.run(command)
    assert result.rc == 0, "%s failed (rc %s): %s" % (command, result.rc, result.stderr)
    return result.stdout


@pytest.fixture(scope="module")
def config_dump(host):
    return tomllib.loads(_run(host, "containerd config dump"))


def test_containerd_running_and_enabled(host):
    service = host.service("containerd")
    assert service.is_running
    assert service.is_enabled


def test_cri_plugin_loaded(host):
    plugins = _run(host, "ctr plugins ls")
    cri = [line.split() for line in plugins.splitlines() if line.split()[:2] == ["io.containerd.grpc.v1", "cri"]]
    assert cri, "ctr plugins ls lists no cri plugin:\n" + plugins
    assert cri[0][-1] == "ok", "cri plugin is not ok:\n" + plugins


def test_effective_config(config_dump, hostvars):
    cri = config_dump["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["sandbox_image"] == hostvars["kubeforge_sandbox_image"]
    runc = cri["containerd"]["runtimes"]["runc"]
    assert runc["options"]["SystemdCgroup"] is True
    assert cri["registry"]["config_path"] == "/etc/containerd/certs.d"
    assert "cri" not in config_dump.get("disabled_plugins", [])


def test_registry_hosts_toml(host, hostvars):
    for name, wanted in hostvars["containerd_registries"].items():
        hosts_toml = host.file("/etc/containerd/certs.d/%s/hosts.toml" % name)
        assert hosts_toml.exists, name
        data = tomllib.loads(hosts_toml.content_string)
        assert data["server"] == wanted["server"]
        for mirror in wanted.get("mirrors", []):
            entry = data["host"][mirror["url"]]
            assert entry["capabilities"] == mirror.get("capabilities", ["pull", "resolve"])
            if "skip_verify" in mirror:
                assert entry["skip_verify"] is mirror["skip_verify"]
        if "auth" in wanted:
            assert hosts_toml.mode == 0o600
            assert data["header"]["Authorization"].startswith("Basic ")
        else:
            assert hosts_toml.mode == 0o644


def test_registry_pruning_keeps_user_directories(host):
    assert host.file("/etc/containerd/certs.d/user.lab.invalid/hosts.toml").exists
    assert not host.file("/etc/containerd/certs.d/stale.lab.invalid").exists


def test_crictl_points_to_containerd(host):
    crictl = host.file("/etc/crictl.yaml")
    assert crictl.exists
    import yaml  # the controller's PyYAML (Ansible needs it)

    data = yaml.safe_load(crictl.content_string)
    assert data["runtime-endpoint"] == SOCKET
    assert data["image-endpoint"] == SOCKET


def test_images_imported(host):
    names = _run(host, "ctr --namespace k8s.io images list --quiet").split()
    assert "registry.lab.invalid/kubeforge/test:1.0" in names
    assert "registry.lab.invalid/kubeforge/pause:3.10" in names
    assert not host.file("/var/cache/kubeforge/containerd/images/test.tar").exists


def test_kernel_modules_present(host):
    # ask the module node_prep uses, in check mode: nothing may be left to load and nothing may be missing
    # JSON arguments: the module refuses a comma-separated string (it would be one made-up module name)
    result = host.ansible("kubeforge.cluster.kernel_modules", '{"modules": ["overlay", "br_netfilter"]}',
                          check=True, become=True)
    assert result.get("failed") is not True and "modules" in result, result
    for module in result["modules"]:
        assert module["present"] is True, module
        assert module["status"] in ("loaded", "builtin"), module
        assert module["action"] == "none", module


def test_sysctls_as_node_prep_wrote_them(host):
    dropin = host.file("/etc/sysctl.d/99-kubeforge.conf")
    assert dropin.exists
    wanted = {}
    for line in dropin.content_string.splitlines():
        if line.strip() and not line.lstrip().startswith(("#", ";")):
            key, dummy, value = line.partition("=")
            wanted[key.strip()] = value.strip()
    for key in ("net.ipv4.ip_forward", "net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables"):
        assert wanted.get(key) == "1", key
    for key, value in wanted.items():
        actual = _run(host, "sysctl -n %s" % key).strip()
        if key.startswith("fs.inotify."):  # raise-only settings: a higher running value is fine
            assert int(actual) >= int(value), key
        else:
            assert actual == value, key
