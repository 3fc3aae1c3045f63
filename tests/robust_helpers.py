"""Helpers shared by the robustness probes (tests/test_robust_*.py): run the real CLI, train a tiny run."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

NTJAX = [sys.executable, "-m", "ntjax.cli"]
TINY = ["train", "--preset", "tiny", "--yes", "--no-progress", "--steps", "6", "--ckpt-every", "3",
        "--eval-every", "3", "--probe-every", "3"]


def env(**extra: str) -> dict[str, str]:
    e = {**os.environ, "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "2"}
    e.pop("NTJAX_TRACEBACK", None)
    return {**e, **extra}


def ntjax(*args: str, timeout: float = 300, cwd: str | Path | None = None, **kw) -> subprocess.CompletedProcess:
    """Run `ntjax ARGS` to completion; stdin closed (no confirmation prompt)."""
    return subprocess.run([*NTJAX, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          stdin=subprocess.DEVNULL, env=kw.pop("env", None) or env(), **kw)


def train_tiny(out: Path, *extra: str) -> subprocess.CompletedProcess:
    p = ntjax(*TINY, "--out", str(out), *extra)
    assert p.returncode == 0, p.stderr[-2000:]
    return p


def one_line_error(p: subprocess.CompletedProcess, code: int = 2) -> str:
    """The process ended with `code` and one clear `ntjax ...: error:` line (no traceback); returns it."""
    assert p.returncode == code, (p.returncode, p.stderr[-3000:])
    assert "Traceback" not in p.stderr, p.stderr[-3000:]
    lines = [ln for ln in p.stderr.splitlines() if "error:" in ln]
    assert len(lines) == 1, p.stderr[-3000:]
    return lines[0]
