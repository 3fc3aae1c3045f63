"""`ntjax eval MODEL.pt --torch-model file.py:function`: a PyTorch state_dict of a user's byte LM is
evaluated on the same held-out windows and metrics as an ntjax run."""
import json
import math
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="evaluating a PyTorch checkpoint needs torch")

from ntjax.cli import main  # noqa: E402
from ntjax.core.data import load_corpus  # noqa: E402

MODEL_FILE = textwrap.dedent("""
    import torch

    class Bigram(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.table = torch.nn.Embedding(256, 256)

        def forward(self, tokens):
            return self.table(tokens)

    def build():
        return Bigram()
""")


@pytest.fixture
def setup(tmp_path):
    (tmp_path / "lm.py").write_text(MODEL_FILE)
    text = tmp_path / "text.txt"
    text.write_bytes(load_corpus()[:60_000])
    return tmp_path, text


def eval_torch(capsys, ckpt, spec, text) -> dict:
    capsys.readouterr()
    assert main(["eval", str(ckpt), "--torch-model", spec, "--data", str(text), "--seq-len", "32", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_uniform_and_trained_bigram(setup, capsys):
    folder, text = setup
    import importlib.util
    spec = importlib.util.spec_from_file_location("lm", folder / "lm.py")
    lm = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lm)
    model = lm.build()
    torch.nn.init.zeros_(model.table.weight)  # uniform prediction: loss is exactly ln 256
    torch.save(model.state_dict(), folder / "uniform.pt")
    out = eval_torch(capsys, folder / "uniform.pt", f"{folder / 'lm.py'}:build", text)
    assert out["metrics"]["eval/loss"] == pytest.approx(math.log(256), abs=1e-5)
    assert out["metrics"]["eval/ppl"] == pytest.approx(256, rel=1e-4)
    # the same model trained on the text's bigram counts predicts it far better
    data = np.frombuffer(text.read_bytes(), np.uint8).astype(np.int64)
    counts = np.ones((256, 256))
    np.add.at(counts, (data[:-1], data[1:]), 1)
    with torch.no_grad():
        model.table.weight.copy_(torch.from_numpy(np.log(counts / counts.sum(1, keepdims=True))))
    torch.save(model.state_dict(), folder / "bigram.pt")
    trained = eval_torch(capsys, folder / "bigram.pt", f"{folder / 'lm.py'}:build", text)
    assert trained["metrics"]["eval/loss"] < 3.0 < math.log(256)
    assert trained["metrics"]["eval/accuracy"] > 0.1
    assert (folder / "eval_report.md").read_text().count("PyTorch state_dict") == 1


def test_pickled_code_is_refused(setup, capsys):
    folder, text = setup
    torch.save({"table.weight": torch.zeros(256, 256), "extra": print}, folder / "evil.pt")
    assert main(["eval", str(folder / "evil.pt"), "--torch-model", f"{folder / 'lm.py'}:build",
                 "--data", str(text)]) == 2
    assert "cannot load the state_dict" in capsys.readouterr().err
