"""Deployment files: the systemd unit verifies and is hardened; the Docker image is linted and non-root; every
edge package is pinned. The unit under a real systemd and the built image are checked by `make systemd-check`
and `make image-check` (root, minutes): here only that they skip cleanly elsewhere."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EDGE_PYTHON, ROOT

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
    assert score <= 1.0, out.stdout  # 1.0 measured, offline and under the running systemd 252


def test_unit_has_the_required_hardening():
    text = UNIT.read_text()
    for setting in ("DynamicUser=yes", "ProtectSystem=strict", "NoNewPrivileges=yes", "PrivateTmp=yes",
                    "RuntimeDirectory=reputation", "MemoryMax=", "Restart=on-failure", "StartLimitBurst=",
                    "EnvironmentFile=", "LoadCredential=auth_token:", "MemoryDenyWriteExecute=yes",
                    "SystemCallErrorNumber=EPERM", "ProtectProc=invisible"):
        assert setting in text
    # ProcSubset=pid hides /proc/cpuinfo: no XNNPACK delegate, inference several times slower.
    assert "ProcSubset=" not in "".join(line for line in text.splitlines() if not line.startswith("#"))
    # /bin/kill is procps, absent from minimal systems: reload through the shell's builtin.
    assert "ExecReload=/bin/sh -c 'kill -HUP \"$$MAINPID\"'" in text


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


def test_dockerfile_defects_stay_fixed():
    text = (ROOT / "Dockerfile.arm64").read_text()
    assert "# syntax=" not in text  # BuildKit would fetch a frontend image from a registry
    health = text[text.index("HEALTHCHECK"):].split("\n# ", 1)[0]
    assert "8080" not in health.replace("'8080')", "") and "PORT" in health  # the port it listens on
    assert "--gid 10001" in text and "USER 10001:10001" in text  # the group exists
    assert "apt-get clean" in text
    assert "deploy/constraints-edge.txt" in text  # transitive packages pinned
    assert "AUTH_TOKEN_FILE=/run/secrets/auth_token" in text  # refuses to start without a token


def test_dockerignore_sends_only_what_the_image_copies():
    ignore = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    assert ignore[0] == "*"
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    sources = set()
    for line in (ROOT / "Dockerfile.arm64").read_text().splitlines():
        if line.startswith("COPY "):
            sources.update(line.split()[1:-1])
    assert sources and sources <= allowed, sources - allowed


def _pins(path: Path) -> dict[str, set[str]]:
    pins: dict[str, set[str]] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins.setdefault(re.sub(r"[-_.]+", "-", name.strip()).lower(), set()).add(version.split(";")[0].strip())
    return pins


def test_every_edge_package_is_pinned():
    pins = _pins(ROOT / "requirements-edge.txt") | _pins(ROOT / "deploy" / "constraints-edge.txt")
    assert len(pins) >= 30
    if EDGE_PYTHON == sys.executable:
        pytest.skip("no edge virtual environment to compare with")
    out = subprocess.run([EDGE_PYTHON, "-m", "pip", "list", "--format=json", "--disable-pip-version-check"],
                         capture_output=True, text=True, check=True)
    installed = {re.sub(r"[-_.]+", "-", p["name"]).lower(): p["version"] for p in json.loads(out.stdout)}
    unpinned = {n: v for n, v in installed.items() if n not in pins and n not in ("pip", "setuptools", "wheel")}
    assert not unpinned, f"not in requirements-edge.txt or deploy/constraints-edge.txt: {unpinned}"
    differ = {n: (v, pins[n]) for n, v in installed.items() if n in pins and v not in pins[n]}
    assert not differ, f"installed versions differ from the pins: {differ}"


@pytest.mark.parametrize("script", ["systemd-check.sh", "image-check.sh"])
def test_root_checks_skip_saying_why_when_not_root(script):
    command = ["bash", str(ROOT / "deploy" / script)]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("root, and no setpriv to drop privileges")
        command = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    out = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "skipped: needs root" in out.stdout


def test_metrics_content_type_names_its_charset_once():
    # What Prometheus scrapes: werkzeug once appended a second "; charset=utf-8" to the mimetype.
    from app.config import Config
    from app.server import create_app
    from tests.conftest import TINY_BUNDLE

    response = create_app(Config(bundle=TINY_BUNDLE, threads=1)).test_client().get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
