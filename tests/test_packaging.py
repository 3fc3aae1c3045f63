"""The package list in pyproject.toml covers every package folder, and bridges install only as
ntjax.bridges (never as a bare top-level `bridges`)."""
import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_folder_is_listed():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    found = {"ntjax"} | {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "ntjax").rglob("*/__init__.py")}
    assert found | {"ntjax.bridges"} == listed
    assert cfg["package-dir"] == {"ntjax.bridges": "bridges"}


def test_bridges_import_as_ntjax_bridges_only(tmp_path):
    code = ("import importlib.util, ntjax.bridges; "
            "print(importlib.util.find_spec('bridges') is None)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
