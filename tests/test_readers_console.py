"""Console captures read as text logs: W&B `files/output.log` with tqdm bars redrawn by carriage returns,
ANSI colours and metrics printed as Python dicts; key=value lines."""
import json

from ntjax.cli import main
from ntjax.readers import read_run
from ntjax.readers.text import clean_console


def _capture(epochs=4):
    lines = []
    for ep in range(epochs):
        bar = ""
        for i in range(0, 101, 20):
            bar += (f"\rEpoch {ep}: {i:3d}%|\x1b[32m{'█' * (i // 10)}\x1b[0m| {i}/100 [00:0{i // 20}<00:10, "
                    f"9.5it/s, loss={2.3 - 0.4 * ep - 0.001 * i:.3f}]")
        lines.append(bar)
        lines.append("\x1b[1m{'eval_loss': %.4f, 'eval_accuracy': 0.%d, 'epoch': %d.0}\x1b[0m"
                     % (2.0 - 0.3 * ep, 5 + ep, ep + 1))
        lines.append("{'loss': %.4f, 'learning_rate': 4e-05, 'epoch': %d.0}" % (2.1 - 0.4 * ep, ep + 1))
    return "\n".join(lines) + "\n"


def test_clean_console_keeps_the_last_state_of_a_redrawn_line():
    text = clean_console("a\rb\rstep 3 loss=1.5\n\x1b[31mstep 4 loss=1.4\x1b[0m\n{'loss': 2.0}")
    assert text.split("\n") == ["step 3 loss=1.5", "step 4 loss=1.4", "{loss: 2.0}"]


def test_wandb_output_log_is_a_text_log(tmp_path, capsys):
    run = tmp_path / "run-20240101_000000-abc" / "files"
    run.mkdir(parents=True)
    (run / "output.log").write_text(_capture())
    table = read_run(run / "output.log")
    assert table.format == "text"
    ev = table.get("eval/loss")
    assert ev is not None and list(ev.step) == [1, 2, 3, 4]
    assert abs(ev.value[-1] - 1.1) < 1e-9
    assert table.get("eval/accuracy") is not None and table.get("train/lr") is not None
    assert main(["curves", str(run / "output.log"), "--json", "--no-plot", "--out", str(tmp_path)]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["metrics"]["eval/loss"]["last"] == 1.1


def test_key_value_console_lines(tmp_path):
    path = tmp_path / "train.out"
    path.write_text("".join(f"\x1b[2K\rstep={s} loss={3 - 0.01 * s:.3f} lr=1e-3\n" for s in range(1, 40)))
    table = read_run(path)
    assert len(table.get("train/loss")) == 39 and table.get("train/loss").step[-1] == 39
