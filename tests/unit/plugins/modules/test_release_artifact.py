# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""kubeforge.cluster.release_artifact on the node: downloads (a scripted server), the state file, remote_src and
package artifacts, with the node's files under tmp_path."""

from __future__ import annotations

import io
import json
import os
import urllib.error

import pytest
from ansible.module_utils import basic, urls
from artifact_builder import make_tarball, sha256, write_sums
from module_harness import ExitJson, FailJson, call_main
from ansible_collections.kubeforge.cluster.plugins.modules import release_artifact
from ansible_collections.kubeforge.cluster.plugins.module_utils import _packages

URL = "https://releases.example.invalid/cri-tools/v1.36.0/crictl-v1.36.0-linux-amd64.tar.gz"
CRICTL = b"crictl v1.36.0\n" * 100
CRICTL_NEXT = b"crictl v1.37.0\n" * 100


class Server:
    """open_url stand-in: serves bytes by URL and counts downloads."""

    def __init__(self):
        self.files = {}
        self.downloads = []

    def __call__(self, url, timeout=None, validate_certs=True, http_agent=None, **kwargs):
        self.downloads.append(url)
        if url not in self.files:
            raise urllib.error.HTTPError(url, 404, "Not Found", {}, None)
        return io.BytesIO(self.files[url])


@pytest.fixture
def server(monkeypatch):
    fake = Server()
    monkeypatch.setattr(urls, "open_url", fake)
    return fake


@pytest.fixture
def node(tmp_path):
    return {"bin": tmp_path / "usr" / "local" / "bin", "state": tmp_path / "var" / "lib" / "kubeforge" / "artifacts", "tmp": tmp_path}


def tarball_bytes(tmp_path, content, name="t.tar.gz"):
    path = make_tarball(tmp_path / name, {"crictl": content, "LICENSE": (b"license", 0o644)})
    data = path.read_bytes()
    path.unlink()
    return data


def url_args(node, data, **kwargs):
    args = {"url": URL, "checksum": "sha256:" + sha256(data), "members": ["crictl"], "dest": str(node["bin"]), "variable": "crictl_url",
            "state_dir": str(node["state"]), "owner": str(os.getuid()), "group": str(os.getgid()),
            "_ansible_remote_tmp": str(node["tmp"] / "remote-tmp")}
    args.update(kwargs)
    return args


def run(args, check_mode=False, diff=False):
    return call_main(release_artifact.main, args, check_mode=check_mode, diff=diff)


def test_url_install_records_state_and_a_converged_run_downloads_nothing(server, node, tmp_path):
    data = tarball_bytes(tmp_path, CRICTL)
    server.files[URL] = data
    kind, result = run(url_args(node, data), check_mode=True)
    assert (kind, result["changed"], result["installed"]) == (ExitJson, True, [str(node["bin"] / "crictl")])
    assert server.downloads == [], "a missing file is known to change without a download"

    kind, result = run(url_args(node, data))
    assert kind is ExitJson, result
    assert (result["changed"], result["transferred"], result["installed"]) == (True, True, [str(node["bin"] / "crictl")])
    assert (node["bin"] / "crictl").read_bytes() == CRICTL
    [state_file] = list(node["state"].iterdir())
    state = json.loads(state_file.read_text())
    assert state["checksum"] == sha256(data) and state["source"] == URL
    assert state["files"] == {str(node["bin"] / "crictl"): {"sha256": sha256(CRICTL), "mode": "0755"}}

    server.downloads.clear()
    for check_mode in (True, False):
        kind, result = run(url_args(node, data), check_mode=check_mode)
        assert (result["changed"], result["transferred"], result["reasons"]) == (False, False, [])
    assert server.downloads == []
    assert list(node["tmp"].joinpath("remote-tmp").glob("**/kubeforge-artifact-*")) == []


def test_url_drift_and_upgrade(server, node, tmp_path):
    data = tarball_bytes(tmp_path, CRICTL)
    server.files[URL] = data
    run(url_args(node, data))
    (node["bin"] / "crictl").write_bytes(b"replaced by hand")
    server.downloads.clear()
    kind, result = run(url_args(node, data), check_mode=True)
    assert result["changed"] is True and server.downloads == [], "the state file tells what the artifact holds"
    assert result["reasons"] == ["%s: content differs from crictl-v1.36.0-linux-amd64.tar.gz" % (node["bin"] / "crictl")]
    kind, result = run(url_args(node, data))
    assert (result["changed"], server.downloads) == (True, [URL])
    assert (node["bin"] / "crictl").read_bytes() == CRICTL

    newer = tarball_bytes(tmp_path, CRICTL_NEXT)
    server.files[URL] = newer
    kind, result = run(url_args(node, newer), diff=True)
    assert result["changed"] is True and (node["bin"] / "crictl").read_bytes() == CRICTL_NEXT
    assert "sha256:%s" % sha256(CRICTL) in result["diff"]["before"] and "sha256:%s" % sha256(CRICTL_NEXT) in result["diff"]["after"]


def test_url_mode_change_is_applied_without_a_download(server, node, tmp_path):
    data = tarball_bytes(tmp_path, CRICTL)
    server.files[URL] = data
    run(url_args(node, data))
    server.downloads.clear()
    kind, result = run(url_args(node, data, mode="0700"))
    assert (result["changed"], result["installed"], server.downloads) == (True, [], [])
    assert result["reasons"] == ["%s: mode 0755, wanted 0700" % (node["bin"] / "crictl")]
    assert os.stat(node["bin"] / "crictl").st_mode & 0o777 == 0o700


def test_url_state_missing_but_files_identical_is_no_change(server, node, tmp_path):
    data = tarball_bytes(tmp_path, CRICTL)
    server.files[URL] = data
    run(url_args(node, data))
    for path in node["state"].iterdir():
        path.unlink()
    server.downloads.clear()
    kind, result = run(url_args(node, data), check_mode=True)
    assert (result["changed"], server.downloads) == (False, [URL]), "check mode downloads to compare when nothing tells"
    assert not any(node["state"].iterdir())
    kind, result = run(url_args(node, data))
    assert (result["changed"], result["installed"]) == (False, [])
    assert len(list(node["state"].iterdir())) == 1, "the record is written again, so the next run needs no download"


def test_url_checksum_mismatch_leaves_the_old_binary(server, node, tmp_path):
    data = tarball_bytes(tmp_path, CRICTL)
    server.files[URL] = data
    run(url_args(node, data))
    server.files[URL] = tarball_bytes(tmp_path, CRICTL_NEXT)  # the server now serves something else
    kind, result = run(url_args(node, tarball_bytes(tmp_path, b"what the release page says")))
    assert kind is FailJson
    assert result["msg"].startswith("crictl_url: %s has sha256 %s, but checksum says " % (URL, sha256(server.files[URL])))
    assert result["msg"].endswith("; nothing was changed. Replace the file or fix the checksum")
    assert (node["bin"] / "crictl").read_bytes() == CRICTL
    assert sorted(p.name for p in node["bin"].iterdir()) == ["crictl"], "no staged files left behind"
    assert list(node["tmp"].joinpath("remote-tmp").glob("**/kubeforge-artifact-*")) == []


def test_url_not_found_names_the_variable(server, node, tmp_path):
    missing = URL.replace("v1.36.0", "v1.99.0")
    kind, result = run(url_args(node, b"x", url=missing))
    assert kind is FailJson
    assert result["msg"] == "crictl_url: %s could not be downloaded: HTTP Error 404: Not Found; nothing was changed" % missing


def test_binary_from_url_needs_no_state(server, node, tmp_path):
    binary_url = "https://releases.example.invalid/runc.amd64"
    server.files[binary_url] = b"runc"
    args = url_args(node, b"runc", url=binary_url, members=None, dest=str(node["bin"] / "runc"), mode="0700")
    kind, result = run(args)
    assert (result["changed"], result["files"]) == (True, {str(node["bin"] / "runc"): sha256(b"runc")})
    assert oct(os.stat(node["bin"] / "runc").st_mode & 0o777) == "0o700"
    server.downloads.clear()
    kind, result = run(args)
    assert (result["changed"], server.downloads) == (False, [])
    assert not node["state"].exists()


def kata_like_tarball(tmp_path, config=b"[hypervisor.qemu]\n", target="configuration-qemu.toml"):
    files = {"./opt/kata/share/defaults/configuration-qemu.toml": (config, 0o644),
             "./opt/kata/share/defaults/configuration-clh.toml": (b"[hypervisor.clh]\n", 0o644),
             "./opt/kata/bin/containerd-shim-kata-v2": b"shim"}
    path = make_tarball(tmp_path / "kata.tar.xz", files, links={"./opt/kata/share/defaults/configuration.toml": target})
    data = path.read_bytes()
    path.unlink()
    return data


def test_url_tarball_with_links_installs_them_as_links_idempotently(server, node, tmp_path):
    kata_url = "https://releases.example.invalid/kata-static-3.99.0-amd64.tar.xz"
    root = tmp_path / "root"
    data = kata_like_tarball(tmp_path)
    server.files[kata_url] = data
    args = url_args(node, data, url=kata_url, members=None, dest=str(root), variable="kata_url")
    kind, result = run(args, check_mode=True)
    assert (kind, result["changed"]) == (ExitJson, True) and not root.exists()
    kind, result = run(args, diff=True)
    assert (kind, result["changed"]) == (ExitJson, True), result
    link = root / "opt" / "kata" / "share" / "defaults" / "configuration.toml"
    assert os.readlink(link) == "configuration-qemu.toml" and link.read_bytes() == b"[hypervisor.qemu]\n"
    assert result["files"][str(link)] == "link:configuration-qemu.toml"
    assert "%s -> configuration-qemu.toml" % link in result["diff"]["after"]
    server.downloads.clear()
    for check_mode in (True, False):
        kind, result = run(args, check_mode=check_mode)
        assert (result["changed"], server.downloads) == (False, []), result

    os.unlink(link)
    os.symlink("configuration-clh.toml", link)  # an operator pointed it elsewhere
    kind, result = run(args, check_mode=True)
    assert result["reasons"] == ["%s: not a link to configuration-qemu.toml" % link] and server.downloads == []
    kind, result = run(args)
    assert result["changed"] and os.readlink(link) == "configuration-qemu.toml"
    assert sorted(p.name for p in link.parent.iterdir()) == ["configuration-clh.toml", "configuration-qemu.toml", "configuration.toml"]


def test_remote_src_with_a_checksum_file_on_the_node(node, tmp_path):
    artifacts = tmp_path / "srv"
    artifacts.mkdir()
    make_tarball(artifacts / "cri-dockerd-0.4.3.amd64.tgz", {"cri-dockerd/cri-dockerd": b"dockerd"})
    write_sums(artifacts, "cri-dockerd-0.4.3.amd64.tgz")
    args = {"src": str(artifacts / "cri-dockerd-0.4.3.amd64.tgz"), "remote_src": True, "checksum_file": str(artifacts / "SHA256SUMS"),
            "strip_components": 1, "dest": str(node["bin"]), "state_dir": str(node["state"]), "owner": str(os.getuid()),
            "group": str(os.getgid()), "variable": "cri_dockerd_artifacts_dir"}
    kind, result = run(args)
    assert (kind, result["changed"]) == (ExitJson, True), result
    assert (node["bin"] / "cri-dockerd").read_bytes() == b"dockerd"
    kind, result = run(args)
    assert result["changed"] is False
    kind, result = run(dict(args, src=str(artifacts / "cri-dockerd-0.4.2.amd64.tgz")))
    assert result["msg"] == "cri_dockerd_artifacts_dir: %s not found on the node" % (artifacts / "cri-dockerd-0.4.2.amd64.tgz")


def test_without_the_action_plugin_src_needs_remote_src(node):
    kind, result = run({"src": "/srv/a/x.tar.gz", "checksum": "0" * 64, "dest": "/usr/local/bin"})
    assert (kind, result["msg"]) == (FailJson, "remote_src: the module was called without its action plugin; with src on the node set remote_src=true")


class Dpkg:
    def __init__(self, debs):
        self.debs = debs
        self.installed = {}
        self.calls = []

    def __call__(self, argv, environ_update=None, **kwargs):
        self.calls.append(argv)
        if argv[0] == "/usr/bin/dpkg-deb":
            return 0, "%s\t%s\n" % self.debs[argv[-1]], ""
        if argv[0] == "/usr/bin/dpkg-query":
            names = argv[4:]
            return 0, "".join("%s\t%s\tinstall\tinstalled\n" % (n, self.installed[n]) for n in names if n in self.installed), ""
        if argv[:2] == ["/usr/bin/apt-get", "install"]:
            name, version = self.debs[argv[-1]]
            self.installed[name] = version
            return 0, "", ""
        raise AssertionError("unexpected %r" % argv)


def test_package_artifact_records_the_version_and_needs_no_transfer_once_installed(node, tmp_path, monkeypatch):
    deb = tmp_path / "cri-tools_1.36.0-1.1_amd64.deb"
    deb.write_bytes(b"!<arch>\ncri-tools")
    # fresh package lists of the test's own: the host's real lists may be older than cache_valid_time
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "deb_dists_stable_main_binary-amd64_Packages").write_text("")
    monkeypatch.setattr(_packages, "APT_LISTS", str(lists))
    monkeypatch.setattr(_packages, "APT_STAMP", str(lists / "update-success-stamp"))
    dpkg = Dpkg({str(deb): ("cri-tools", "1.36.0-1.1")})
    monkeypatch.setattr(basic.AnsibleModule, "run_command", lambda self, argv, **kw: dpkg(argv, **kw))
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", lambda self, name, required=False, opt_dirs=None: "/usr/bin/" + name
                        if name in ("dpkg-query", "dpkg-deb", "apt-get", "apt-mark") else None)
    base = {"src": str(deb), "checksum": sha256(deb.read_bytes()), "state_dir": str(node["state"]), "variable": "crictl_artifacts_dir"}
    kind, result = run(dict(base, compare_only=True))
    assert (result["changed"], result["transfer_needed"]) == (True, True)
    assert result["reasons"] == ["no record in %s that %s was installed" % (node["state"], deb.name)]
    kind, result = run(dict(base, remote_src=True))
    assert (kind, result["changed"], result["installed"], result["package"]) == (
        ExitJson, True, ["cri-tools"], {"name": "cri-tools", "version": "1.36.0-1.1"}), result
    assert json.loads((node["state"] / "package-cri-tools.json").read_text())["package_version"] == "1.36.0-1.1"
    dpkg.calls.clear()
    kind, result = run(dict(base, compare_only=True))
    assert (result["changed"], result.get("transfer_needed")) == (False, None)
    assert [c[0] for c in dpkg.calls] == ["/usr/bin/dpkg-query"]
