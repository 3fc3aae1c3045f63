"""Files are created safely: plots of loose logs go to a private per-user folder, and a symlink planted where
a plot, the lock file or the per-user folder will be is replaced or refused, never written through."""
from __future__ import annotations

import json
import os
import stat

import pytest

from ntjax.core.safefile import private_dir, save_figure, write_atomic
from ntjax.errors import NtjaxError
from tests.robust_helpers import env, ntjax

CSV = "step,loss\n" + "".join(f"{i},{3.0 / (1 + 0.1 * i):.4f}\n" for i in range(1, 40))


def test_curves_of_a_loose_log_never_writes_through_a_planted_link(tmp_path):
    log = tmp_path / "mine.csv"
    log.write_text(CSV)
    cache = tmp_path / "cache"
    e = env(XDG_CACHE_HOME=str(cache))
    p = ntjax("curves", str(log), "--json", env=e)
    assert p.returncode == 0, p.stderr
    (png,) = json.loads(p.stdout)["plots"]
    folder = cache / "ntjax" / "plots"
    assert os.path.dirname(png) == str(folder)
    st = os.stat(folder)
    assert stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == os.getuid()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    os.unlink(png)
    os.symlink(victim, png)  # the attack: the next plot's predictable name points at another file
    p = ntjax("curves", str(log), "--json", env=e)
    assert p.returncode == 0, p.stderr
    assert victim.read_text() == "precious"
    assert not os.path.islink(png) and open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_private_folder_refuses_a_planted_link(tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "cache" / "ntjax").mkdir(parents=True)
    os.symlink(elsewhere, tmp_path / "cache" / "ntjax" / "plots")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(NtjaxError, match="not a folder of yours"):
        private_dir("plots")


def test_private_folder_is_tightened(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "c"))
    (tmp_path / "c" / "ntjax" / "plots").mkdir(parents=True, mode=0o777)
    os.chmod(tmp_path / "c" / "ntjax" / "plots", 0o777)
    d = private_dir("plots")
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700


def test_write_atomic_replaces_a_link_and_leaves_no_temp_on_failure(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    target = tmp_path / "out.png"
    os.symlink(victim, target)
    from matplotlib.figure import Figure
    save_figure(Figure(figsize=(1, 1)), target)
    assert victim.read_text() == "precious" and not target.is_symlink()

    def boom(f):
        f.write(b"half")
        raise RuntimeError("writer failed")
    with pytest.raises(RuntimeError):
        write_atomic(tmp_path / "x.bin", boom)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png", "victim"]
