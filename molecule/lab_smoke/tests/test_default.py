# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Testinfra checks of the lab_smoke scenario: the lab machines are real systemd machines."""

from __future__ import annotations

import os

import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts("all")


def test_systemd_is_pid1_and_running(host):
    assert host.file("/proc/1/comm").content_string.strip() == "systemd"
    state = host.run("systemctl is-system-running").stdout.strip()
    assert state in ("running", "degraded"), state


def test_sshd_is_active(host):
    assert host.service("ssh").is_running
    assert host.socket("tcp://0.0.0.0:22").is_listening


def test_hostname_and_hosts_file(host):
    name = host.backend.get_hostname()
    assert host.run("hostname").stdout.strip() == name
    hosts = host.file("/etc/hosts").content_string
    for other in testinfra_hosts:
        assert other in hosts


def test_python_for_ansible(host):
    assert host.file("/usr/bin/python3").exists
