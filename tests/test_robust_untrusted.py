"""Opening someone else's run folder never runs its code: a spec named by config.json is imported only when
the user names it (--spec) or passes --trust-run-code. The planted spec writes a marker file when imported."""
from __future__ import annotations

import json
import shutil

import pytest

from tests.robust_helpers import ntjax, one_line_error, train_tiny

PLANTED = """from pathlib import Path
Path({marker!r}).write_text("the planted spec ran")
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("untrusted")
    good = root / "good"
    train_tiny(good)
    planted = root / "downloaded"
    shutil.copytree(good, planted)
    marker = root / "MARKER"
    spec = root / "evil_spec.py"
    spec.write_text(PLANTED.format(marker=str(marker)))
    cfg = json.loads((planted / "config.json").read_text())
    cfg["train"]["spec"] = str(spec)
    (planted / "config.json").write_text(json.dumps(cfg))
    return {"good": good, "planted": planted, "marker": marker, "spec": spec}


@pytest.mark.parametrize("argv", [
    ["eval", "{planted}"],
    ["eval", "{good}", "--baseline", "{planted}"],
    ["lr-find", "--run", "{planted}", "--steps", "10", "--out", "{root}/lrf"],
    ["debug", "{planted}", "--fix"],
    ["train", "--preset", "tiny", "--yes", "--no-progress", "--out", "{planted}"],
], ids=["eval", "eval-baseline", "lr-find", "debug-fix", "resume"])
def test_planted_spec_is_not_imported(runs, argv):
    names = {"planted": runs["planted"], "good": runs["good"], "root": runs["planted"].parent}
    p = ntjax(*[a.format(**names) for a in argv])
    line = one_line_error(p)
    assert "--trust-run-code" in line and str(runs["spec"]) in line
    assert not runs["marker"].exists()


def test_naming_the_spec_or_trusting_the_folder_runs_it(runs):
    p = ntjax("eval", str(runs["planted"]), "--spec", str(runs["spec"]))
    assert p.returncode == 2 and runs["marker"].exists()  # imported (then refused: it defines no model)
    assert "must define" in p.stderr
    runs["marker"].unlink()
    p = ntjax("eval", str(runs["planted"]), "--trust-run-code")
    assert p.returncode == 2 and runs["marker"].exists()
    runs["marker"].unlink()
