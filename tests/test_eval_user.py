"""`ntjax eval` of the user's own model: a tiny randomly initialised HF causal LM with a locally built
tokenizer, trained by its own loop under `ntjax run`, evaluates to the loss that loop logged; the user's
own eval command; and clear one-line refusals instead of wrong numbers or tracebacks."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ntjax.readers import read_run

SCRIPTS = Path(__file__).parent / "userscripts"


def _ntjax(*args, timeout=600):
    out = subprocess.run([sys.executable, "-m", "ntjax.cli", *args], capture_output=True, text=True,
                         timeout=timeout, stdin=subprocess.DEVNULL)
    return out.returncode, out.stdout, out.stderr


@pytest.fixture(scope="module")
def hf_run(tmp_path_factory):
    pytest.importorskip("transformers")
    run_dir = tmp_path_factory.mktemp("hf") / "run"
    code, _, err = _ntjax("run", "--yes", "--quiet", "--out", str(run_dir), "--", sys.executable,
                          str(SCRIPTS / "hf_train.py"), "--out", str(run_dir), "--steps", "40", "--seq-len", "32")
    assert code == 0, err[-3000:]
    return run_dir


@pytest.mark.slow
def test_hf_model_eval_reproduces_the_loss_its_training_loop_logged(hf_run, tmp_path):
    code, out, err = _ntjax("eval", "--hf-model", str(hf_run / "model"), "--eval-data", str(hf_run / "eval.txt"),
                            "--seq-len", "32", "--out", str(tmp_path), "--json")
    assert code == 0, err[-3000:]
    data = json.loads(out)
    logged = read_run(hf_run).get("eval/loss")
    assert int(logged.step[-1]) == 40
    assert data["metrics"]["eval/loss"] == pytest.approx(float(logged.value[-1]), rel=1e-5)
    assert data["metrics"]["eval/ppl"] == pytest.approx(2.718281828 ** data["metrics"]["eval/loss"], rel=1e-6)
    assert 0 < data["metrics"]["eval/accuracy"] < 1
    assert data["hf"]["model_class"] == "GPT2LMHeadModel" and data["hf"]["seq_len"] == 32
    assert (tmp_path / "eval_report.md").is_file()


@pytest.mark.slow
def test_hf_model_without_its_tokenizer_is_refused(hf_run, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    for f in (hf_run / "model").iterdir():
        if "token" not in f.name and "special" not in f.name:
            shutil.copy(f, bare / f.name)
    code, out, err = _ntjax("eval", "--hf-model", str(bare), "--eval-data", str(hf_run / "eval.txt"), "--json")
    assert code == 2 and out == "" and "no tokenizer files" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_hf_model_with_a_too_long_context_is_refused(hf_run):
    code, _, err = _ntjax("eval", "--hf-model", str(hf_run / "model"), "--eval-data", str(hf_run / "eval.txt"),
                          "--seq-len", "128")
    assert code == 2 and "exceeds the model's context of 64" in err


def test_torch_state_dict_whose_forward_needs_more_args_is_refused(tmp_path):
    (tmp_path / "rnn.py").write_text(
        "import torch\n"
        "class RNNModel(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__(); self.emb = torch.nn.Embedding(256, 8); self.rnn = torch.nn.LSTM(8, 8)\n"
        "        self.out = torch.nn.Linear(8, 256)\n"
        "    def forward(self, x, hidden):\n"
        "        y, h = self.rnn(self.emb(x), hidden); return self.out(y), h\n"
        "def build():\n"
        "    return RNNModel()\n")
    sys.path.insert(0, str(tmp_path))
    try:
        import rnn
        import torch
        torch.save(rnn.build().state_dict(), tmp_path / "model.pt")
    finally:
        sys.path.remove(str(tmp_path))
    (tmp_path / "text.txt").write_text("hello world, " * 400)
    code, out, err = _ntjax("eval", str(tmp_path / "model.pt"), "--torch-model", f"{tmp_path / 'rnn.py'}:build",
                            "--data", str(tmp_path / "text.txt"), "--json")
    assert code == 2 and out == "", err
    assert "cannot be evaluated as a byte-level LM" in err and "hidden" in err and "internal error" not in err


@pytest.mark.slow
def test_eval_command_reports_the_metrics_the_users_eval_logs(tmp_path):
    code, out, err = _ntjax("eval", "--command", f"{sys.executable} {SCRIPTS / 'torch_train.py'} --steps 20",
                            "--out", str(tmp_path), "--json")
    assert code == 0, err[-3000:]
    data = json.loads(out)
    assert set(data["metrics"]) >= {"eval/loss", "eval/accuracy"} and data["step"] == 20
    logged = read_run(data["command"]["run_dir"])
    assert data["metrics"]["eval/accuracy"] == pytest.approx(float(logged.get("eval/accuracy").value[-1]))
