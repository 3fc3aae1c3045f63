"""`ntjax debug` on runs of a user's own PyTorch script: fixes name the flag or the line, `next` re-runs
the user's command (never ntjax's own model), `--fix` re-runs it and compares at equal steps, and a bridge
run never fails on its config.json."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent / "userscripts" / "torch_train.py"


def _ntjax(*args, timeout=600):
    out = subprocess.run([sys.executable, "-m", "ntjax.cli", *args], capture_output=True, text=True,
                         timeout=timeout, stdin=subprocess.DEVNULL)
    return out.returncode, out.stdout, out.stderr


@pytest.fixture(scope="module")
def slow_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("dbg") / "low"
    code, _, err = _ntjax("run", "--yes", "--quiet", "--out", str(run_dir), "--", sys.executable, str(SCRIPT),
                          "--lr", "3e-05", "--steps", "150")
    assert code == 0, err[-2000:]
    return run_dir


@pytest.mark.slow
def test_debug_names_the_flag_and_the_exact_rerun_command(slow_run):
    code, out, err = _ntjax("debug", str(slow_run), "--json")
    assert code == 0, err
    data = json.loads(out)
    top = data["hypotheses"][0]
    assert top["cause"] == "lr_too_low"
    assert "`--lr 0.0003`" in top["fix"]
    assert top["next"] == (f"ntjax run --out {slow_run}_fix --yes -- {sys.executable} {SCRIPT} --lr 0.0003 "
                           "--steps 150")
    assert not any(h["next"].startswith(("ntjax train", "ntjax sweep --param")) for h in data["hypotheses"])
    assert data["user_run"]["framework"] == "pytorch"


@pytest.mark.slow
def test_debug_fix_reruns_the_users_command_and_compares_at_equal_steps(slow_run):
    code, out, err = _ntjax("debug", str(slow_run), "--fix", "--json")
    assert code == 0, err[-2000:]
    fix = json.loads(out)["fix_result"]
    assert fix["applied"] == {"lr": 0.0003} and "--lr 0.0003" in fix["command"]
    assert fix["step"] == 150 and fix["improved"]
    assert fix["compare"]["eval/loss"]["after"] < fix["compare"]["eval/loss"]["before"]
    assert json.loads((Path(fix["out"]) / "run.json").read_text())["argv"][-3] == "0.0003"


@pytest.mark.slow
def test_a_hard_coded_lr_is_named_by_its_line(tmp_path):
    text = SCRIPT.read_text().replace("opt = torch.optim.SGD(model.parameters(), lr=args.lr)",
                                      "opt = torch.optim.SGD(model.parameters(), lr=0.00003)")
    text = text.replace('p.add_argument("--lr", type=float, default=0.05)\n', "")
    script = tmp_path / "train.py"
    script.write_text(text)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "lr=0.00003" in t)
    code, _, err = _ntjax("run", "--yes", "--quiet", "--out", str(tmp_path / "r"), "--", sys.executable, str(script),
                          "--steps", "150")
    assert code == 0, err[-2000:]
    code, out, err = _ntjax("debug", str(tmp_path / "r"), "--json")
    top = json.loads(out)["hypotheses"][0]
    assert top["cause"] == "lr_too_low" and f"{script}:{line}" in top["fix"] and "lr=0.0003" in top["fix"]
    assert top["next"].startswith(f"(after editing {script}) ntjax run")
    code, out, err = _ntjax("debug", str(tmp_path / "r"), "--fix")
    assert code == 2 and "has none for lr" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_bridge_run_without_run_json_gets_a_clear_refusal_not_a_config_error(tmp_path):
    subprocess.run([sys.executable, str(SCRIPT), "--lr", "3e-05", "--steps", "150", "--out", str(tmp_path / "b")],
                   check=True, capture_output=True, timeout=300)
    code, out, err = _ntjax("debug", str(tmp_path / "b"), "--json")
    assert code == 0 and json.loads(out)["hypotheses"][0]["next"].startswith("ntjax run --out")
    code, out, err = _ntjax("debug", str(tmp_path / "b"), "--fix")
    assert code == 2 and "not started with `ntjax run`" in err and "unknown field" not in err
