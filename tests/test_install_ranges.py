"""Installing ntjax into someone else's environment: pyproject.toml declares ranges (the exact set lives in
constraints.txt), and installing the PyTorch bridge into an environment that holds other versions of numpy,
protobuf and torch changes none of them."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent


def declared() -> dict[str, list[Requirement]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = {"": project["dependencies"], **project["optional-dependencies"]}
    return {k: [Requirement(r) for r in v] for k, v in groups.items()}


def pins() -> dict[str, Version]:
    out = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            out[name.lower()] = Version(version)
    return out


def test_dependencies_are_ranges_that_hold_the_pinned_set():
    exact = pins()
    for group, reqs in declared().items():
        for req in reqs:
            if req.name == "ntjax":  # `cli` names the other extras
                continue
            assert not any(s.operator in ("==", "===") for s in req.specifier), f"{group}: {req} is a pin"
            assert req.name.lower() in exact, f"{req.name} has no pin in constraints.txt"
            assert exact[req.name.lower()] in req.specifier, f"{req} excludes the pinned {exact[req.name.lower()]}"


def test_ranges_accept_the_versions_users_commonly_hold():
    by_name = {r.name: r.specifier for reqs in declared().values() for r in reqs}
    for name, versions in {"numpy": ["2.0.2", "2.1.3", "2.2.6", "2.3.5"],
                           "torch": ["2.1.2", "2.4.1", "2.6.0", "2.8.0", "2.13.0"],
                           "protobuf": ["4.25.8", "5.29.5", "6.31.1"]}.items():
        assert all(Version(v) in by_name[name] for v in versions), (name, by_name[name])


def test_the_bare_package_is_the_slim_bridge_install():
    assert [r.name for r in declared()[""]] == ["numpy"]
    code = ("import sys, ntjax.bridges.torch, ntjax.bridges.tensorflow, ntjax.bridges.record; "
            "heavy = {'jax', 'flax', 'optax', 'scipy', 'matplotlib', 'optuna', 'wandb', 'tensorboardX'}; "
            "print(sorted(heavy & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"  # what the bridges import is what the slim install declares


def test_makefile_installs_with_the_constraints():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"pip install .*-c \$\(CONSTRAINTS\) -e", makefile)
    assert "CONSTRAINTS := constraints.txt" in makefile
    assert pins()["torch"] == Version("2.13.0")


@pytest.mark.slow
def test_installing_the_torch_bridge_changes_no_user_package(tmp_path):
    """A user's venv: torch (2.13.0+cpu, from the main environment), numpy 2.2.6 and protobuf 5.29.5 (other
    than the pins). `pip install --dry-run 'ntjax[torch]'` would install ntjax alone."""
    venv = tmp_path / "user-venv"
    # No pip or setuptools of its own: the base's (a newer pip) serve, as in an environment the user built.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # The installed torch's environment is the user's base; it comes after the venv's own packages, so the
    # venv's numpy and protobuf are the ones seen. (That environment also holds an older ntjax: an upgrade.)
    torch_site = Path(pytest.importorskip("torch").__file__).resolve().parents[1]
    Path(site, "zz_user_base.pth").write_text(f"{torch_site}\n")
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run([str(py), "-m", "pip", "install", "--quiet", "numpy==2.2.6", "protobuf==5.29.5"],
                   check=True, timeout=300, env=env, capture_output=True)
    report = tmp_path / "report.json"
    proc = subprocess.run([str(py), "-m", "pip", "install", "--dry-run", "--quiet", "--report", str(report),
                           "-e", f"{ROOT}[torch]"], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    would = {i["metadata"]["name"].lower(): i["metadata"]["version"] for i in json.loads(report.read_text())["install"]}
    assert would == {"ntjax": "0.1.0"}, would
    held = subprocess.run([str(py), "-c", "import numpy, google.protobuf, torch; "
                           "print(numpy.__version__, google.protobuf.__version__, torch.__version__)"],
                          capture_output=True, text=True, check=True).stdout.split()
    assert held == ["2.2.6", "5.29.5", held[2]] and held[2].startswith("2.13.0")


def test_cli_in_the_slim_install_names_the_extra(tmp_path):
    """Without JAX (the bare package), a command that needs it ends with one clear line, not a traceback."""
    code = ("import sys; sys.modules['jax'] = None; from ntjax.cli import main; "
            f"sys.exit(main(['train', '--yes', '--steps', '1', '--out', {str(tmp_path / 'r')!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("ntjax train: error: this command needs jax")
    assert "pip install 'ntjax[cli]'" in proc.stderr and "Traceback" not in proc.stderr
