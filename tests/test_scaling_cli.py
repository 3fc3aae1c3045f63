"""`ntjax scale fit CSV --json` on the real Chinchilla points: the contract's object, a plot, clear errors."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

CSV = Path(__file__).parent / "fixtures" / "chinchilla" / "svg_extracted_data.csv"


def _ntjax(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ntjax.cli", *args], capture_output=True, text=True, timeout=300)


def test_scale_fit_json_contract(tmp_path):
    png = tmp_path / "fit.png"
    out = _ntjax("scale", "fit", str(CSV), "--drop-highest", "5", "--bootstrap", "100", "--budget", "1e21,5.88e23",
                 "--unique-tokens", "1e11", "--plot", str(png), "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert set(data["params"]) == {"E", "A", "B", "alpha", "beta"} and data["n_points"] == 240
    assert set(data["ci95"]) == set(data["params"])
    for name, (lo, hi) in data["ci95"].items():
        assert lo <= data["params"][name] <= hi
    co = data["compute_optimal"]
    assert co["a"] + co["b"] == pytest.approx(1.0)
    assert co["a"] == pytest.approx(data["params"]["beta"] / (data["params"]["alpha"] + data["params"]["beta"]))
    assert set(co["tokens_per_param"]) == {"1e21", "5.88e23"}
    assert 15 < co["tokens_per_param"]["1e21"] < 30
    table = data["comparison"]["5.88e23"]
    assert table["kaplan"]["tokens_per_param"] < table["fit"]["tokens_per_param"]
    assert table["data_constrained"]["epochs"] > 1
    assert data["extrapolation"] == {"1e21": False, "5.88e23": True}
    assert data["plots"] == [str(png)] and png.stat().st_size > 10_000


def test_scale_fit_bad_input(tmp_path):
    missing = _ntjax("scale", "fit", str(tmp_path / "nope.csv"), "--json")
    assert missing.returncode == 2 and missing.stdout == "" and "no such CSV" in missing.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text("width,score\n1,2\n")
    cols = _ntjax("scale", "fit", str(bad))
    assert cols.returncode == 2 and "no column for parameters" in cols.stderr
    assert len(cols.stderr.strip().splitlines()) == 1
