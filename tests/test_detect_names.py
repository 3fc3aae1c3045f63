"""`ntjax detect` prints bridge lines in a PyTorch script's own names, including a script with no optimizer
object (PyTorch's word_language_model style); pasted where they say, the lines make the script log."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import pytest

from ntjax.diagnostics.framework import detect

# The shape of PyTorch's examples/word_language_model/main.py: a sequence-first LSTM LM, a hand-written SGD
# update with clipping, an evaluate() per epoch, LR decay, and torch.save(model) at the best checkpoint.
WORD_LM = textwrap.dedent('''\
    import argparse

    import torch
    import torch.nn as nn

    parser = argparse.ArgumentParser()
    parser.add_argument('--lr', type=float, default=2.0)
    parser.add_argument('--clip', type=float, default=0.25)
    parser.add_argument('--epochs', type=int, default=2)
    parser.add_argument('--batch_size', type=int, default=8)
    parser.add_argument('--bptt', type=int, default=12)
    parser.add_argument('--save', type=str, default='model.pt')
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    ntokens = 30


    class RNNModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.Embedding(ntokens, 16)
            self.rnn = nn.LSTM(16, 16)
            self.decoder = nn.Linear(16, ntokens)

        def forward(self, input, hidden):
            output, hidden = self.rnn(self.encoder(input), hidden)
            return torch.log_softmax(self.decoder(output), -1).view(-1, ntokens), hidden

        def init_hidden(self, bsz):
            return (torch.zeros(1, bsz, 16), torch.zeros(1, bsz, 16))


    def batchify(n, bsz):
        return (torch.arange(n) * 7 % ntokens).view(bsz, -1).t().contiguous()


    train_data, val_data = batchify(8 * 60, args.batch_size), batchify(8 * 24, args.batch_size)
    model = RNNModel()
    criterion = nn.NLLLoss()


    def get_batch(source, i):
        seq_len = min(args.bptt, len(source) - 1 - i)
        return source[i:i + seq_len], source[i + 1:i + 1 + seq_len].reshape(-1)


    def evaluate(data_source):
        model.eval()
        total_loss = 0.
        hidden = model.init_hidden(args.batch_size)
        with torch.no_grad():
            for i in range(0, data_source.size(0) - 1, args.bptt):
                data, targets = get_batch(data_source, i)
                output, hidden = model(data, hidden)
                total_loss += len(data) * criterion(output, targets).item()
        return total_loss / (len(data_source) - 1)


    def train():
        model.train()
        hidden = model.init_hidden(args.batch_size)
        for batch, i in enumerate(range(0, train_data.size(0) - 1, args.bptt)):
            data, targets = get_batch(train_data, i)
            model.zero_grad()
            hidden = tuple(h.detach() for h in hidden)
            output, hidden = model(data, hidden)
            loss = criterion(output, targets)
            loss.backward()

            torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
            for p in model.parameters():
                p.data.add_(p.grad, alpha=-lr)


    lr = args.lr
    best_val_loss = None
    for epoch in range(1, args.epochs + 1):
        train()
        val_loss = evaluate(val_data)
        if not best_val_loss or val_loss < best_val_loss:
            with open(args.save, 'wb') as f:
                torch.save(model, f)
            best_val_loss = val_loss
        else:
            lr /= 4.0
''')

WITH_OPTIMIZER = textwrap.dedent('''\
    import torch
    net = torch.nn.Linear(4, 1)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    for it in range(100):
        pred = net(torch.randn(8, 4))
        mse = pred.pow(2).mean()
        opt.zero_grad()
        mse.backward()
        opt.step()
        if it % 10 == 0:
            dev_loss = validate(net)
''')


def line_of(source: str, text: str) -> int:
    return next(i for i, line in enumerate(source.splitlines(), 1) if text in line)


def test_lines_use_the_scripts_own_names_without_an_optimizer(tmp_path):
    (tmp_path / "main.py").write_text(WORD_LM)
    d = detect(tmp_path / "main.py")
    (bridge,) = d.bridges
    names = bridge["names"]
    assert (names["model"], names["optimizer"], names["loss"], names["lr"]) == ("model", None, "loss", "lr")
    assert names["step"] is None  # `batch` restarts every epoch: not a run-wide step
    assert names["backward_line"] == line_of(WORD_LM, "loss.backward()")
    assert names["clip_line"] == line_of(WORD_LM, "clip_grad_norm_")
    assert names["eval_value"] == "val_loss" and names["eval_line"] == line_of(WORD_LM, "val_loss = evaluate")
    text = "\n".join(bridge["lines"])
    assert "TorchMonitor(model)" in text and "monitor.log(monitor.step, loss, lr=lr)" in text
    assert f"before line {names['clip_line']}" in text and "before clipping" in text
    assert 'monitor.log_eval(monitor.step, {"loss": val_loss})' in text and "optimizer" not in text


def test_lines_name_the_optimizer_and_the_step_counter(tmp_path):
    (tmp_path / "fit.py").write_text(WITH_OPTIMIZER)
    names = detect(tmp_path / "fit.py").bridges[0]["names"]
    assert (names["model"], names["optimizer"], names["loss"], names["step"]) == ("net", "opt", "mse", "it")
    assert names["update_line"] == line_of(WITH_OPTIMIZER, "opt.step()")
    lines = detect(tmp_path / "fit.py").bridges[0]["lines"]
    assert "monitor = TorchMonitor(net, opt)  # after line 3" in lines[1]
    assert lines[2].startswith("monitor.log(it, mse)  # after line 8") and "before line 9" in lines[2]
    assert lines[3].startswith('monitor.log_eval(it, {"loss": dev_loss})')


def paste(source: str, lines: list[str]) -> str:
    """Put each printed line where its comment says (`after line N`, at that line's indentation)."""
    out = source.splitlines()
    inserts = []
    for line in lines[1:]:
        m = re.search(r"after line (\d+)", line)
        if m:
            n = int(m.group(1))
            indent = re.match(r"\s*", out[n - 1]).group(0)
            inserts.append((n, indent + line))
    for n, text in sorted(inserts, reverse=True):
        out.insert(n, text)
    return "\n".join([lines[0], *out, lines[-1].split("#")[0].strip()]) + "\n"


@pytest.mark.slow
def test_pasted_lines_make_the_word_language_model_log(tmp_path):
    pytest.importorskip("torch")
    (tmp_path / "main.py").write_text(WORD_LM)
    out = subprocess.run([sys.executable, "-m", "ntjax.cli", "detect", "main.py", "--json"], cwd=tmp_path,
                         capture_output=True, text=True, check=True, timeout=120)
    lines = json.loads(out.stdout)["bridges"][0]["lines"]
    (tmp_path / "main.py").write_text(paste(WORD_LM, lines))
    env = {**os.environ, "NTJAX_RUN_DIR": str(tmp_path / "run")}
    proc = subprocess.run([sys.executable, "main.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "model.pt").is_file()  # torch.save(model) with the monitor attached
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if "train/loss" in r]
    evals = [r for r in records if "eval/loss" in r]
    per_epoch = len(range(0, 60 - 1, 12))
    assert [r["step"] for r in train] == list(range(2 * per_epoch))
    assert [r["train/lr"] for r in train[:per_epoch]] == [2.0] * per_epoch
    assert [r["step"] for r in evals] == [per_epoch, 2 * per_epoch]
    assert all(r["train/grad_norm"] > 0 for r in train)
    assert all("train/throughput" in r for r in train[1:])  # from dimension 1 of the [seq, batch] input
    assert json.loads((tmp_path / "run" / "status.json").read_text())["state"] == "finished"
