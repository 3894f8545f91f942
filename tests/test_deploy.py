"""Deployment files: the systemd unit verifies and is hardened; the Docker image is linted and non-root."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

UNIT = ROOT / "systemd" / "reputation.service"
needs_systemd = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")


@needs_systemd
def test_unit_verifies(tmp_path):
    # The unit names /opt/reputation: verify a copy pointing at an executable that exists here.
    unit = tmp_path / "reputation.service"
    unit.write_text(UNIT.read_text().replace("/opt/reputation/.venv-edge/bin/gunicorn", sys.executable))
    out = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert out.returncode == 0 and out.stderr.strip() == "", out.stderr


@needs_systemd
def test_unit_exposure_is_low():
    out = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(UNIT)], capture_output=True, text=True)
    score = float(re.search(r"Overall exposure level for \S+: ([\d.]+)", out.stdout).group(1))
    assert score <= 2.0, out.stdout


def test_unit_has_the_required_hardening():
    text = UNIT.read_text()
    for setting in ("DynamicUser=yes", "ProtectSystem=strict", "NoNewPrivileges=yes", "PrivateTmp=yes",
                    "RuntimeDirectory=reputation", "MemoryMax=", "Restart=on-failure", "StartLimitBurst=",
                    "EnvironmentFile=", "LoadCredential=auth_token:"):
        assert setting in text


def test_dockerfile_lints_clean_and_runs_as_non_root():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    dockerfile = ROOT / "Dockerfile.arm64"
    out = subprocess.run([hadolint, str(dockerfile)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    text = dockerfile.read_text()
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and all(not u.startswith(("0", "root")) for u in users)
    assert "HEALTHCHECK" in text and "/readyz" in text and "requirements-edge.txt" in text
    assert "requirements-build.txt" not in text
