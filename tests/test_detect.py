"""`ntjax detect` on real scripts written to disk: imports parsed with ast, local modules followed."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from ntjax.diagnostics.framework import detect
from ntjax.errors import NtjaxError


def write(tmp_path, name: str, source: str):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return path


@pytest.mark.parametrize("source, framework, flavours", [
    ("import torch\nimport torch.nn as nn\nopt = torch.optim.AdamW([])\n", "pytorch", ["pytorch"]),
    ("import lightning as L\nimport torch\ntrainer = L.Trainer()\n", "pytorch", ["lightning"]),
    ("import pytorch_lightning as pl\n", "pytorch", ["lightning"]),
    ("from transformers import Trainer, TrainingArguments\n", "pytorch", ["hf_trainer"]),
    ("from trl import SFTTrainer\n", "pytorch", ["hf_trainer"]),
    ("import tensorflow as tf\nmodel = tf.keras.Sequential()\nmodel.fit(x, y)\n", "tensorflow", ["keras"]),
    ("import keras\n", "tensorflow", ["keras"]),
    ("import tensorflow as tf\nwith tf.GradientTape() as tape:\n    pass\n", "tensorflow", ["tf_tape"]),
    ("import jax\nfrom flax import nnx\nimport optax\n", "jax", ["jax"]),
    ("import jax\nimport torch\n", "mixed", ["pytorch", "jax"]),
    ("import numpy as np\n# import torch  (a comment is not an import)\ns = 'import jax'\n", "unknown", []),
])
def test_frameworks_and_flavours(tmp_path, source, framework, flavours):
    d = detect(write(tmp_path, "train.py", source))
    assert (d.framework, d.flavours) == (framework, flavours)
    assert [b["flavour"] for b in d.bridges] == flavours
    assert all(2 <= len(b["lines"]) <= (5 if b["flavour"] == "pytorch" else 3) for b in d.bridges)


def test_a_bridge_import_is_not_jax_and_marks_the_script_monitored(tmp_path):
    d = detect(write(tmp_path, "t.py", "import torch\nfrom ntjax.bridges.torch import TorchMonitor\n"))
    assert (d.framework, d.monitored) == ("pytorch", True)
    d = detect(write(tmp_path, "j.py", "import ntjax.bridges.tensorflow\nfrom ntjax import diagnostics\nimport keras\n"))
    assert d.framework == "tensorflow" and d.monitored
    assert not detect(write(tmp_path, "p.py", "import torch\n")).monitored


def test_follows_local_imports_one_level(tmp_path):
    write(tmp_path, "model.py", "import torch\nfrom deeper import thing\n")
    write(tmp_path, "deeper.py", "import tensorflow\n")  # two levels down: not read
    write(tmp_path, "utils/__init__.py", "import lightning\n")
    script = write(tmp_path, "train.py", "from model import Net\nimport utils\nimport os\n")
    d = detect(script)
    assert d.framework == "pytorch" and d.flavours == ["lightning"]
    assert d.imports["torch"] == [str(tmp_path / "model.py")]
    assert sorted(d.files_read) == sorted(str(p) for p in (script, tmp_path / "model.py", tmp_path / "utils/__init__.py"))


def test_relative_import_in_a_package(tmp_path):
    write(tmp_path, "pkg/__init__.py", "")
    write(tmp_path, "pkg/nets.py", "import flax.nnx as nnx\n")
    d = detect(write(tmp_path, "pkg/train.py", "from . import nets\n"))
    assert d.framework == "jax"


def test_bad_input_is_one_clear_error(tmp_path):
    with pytest.raises(NtjaxError, match="no such script"):
        detect(tmp_path / "missing.py")
    with pytest.raises(NtjaxError, match="cannot parse"):
        detect(write(tmp_path, "broken.py", "def f(:\n"))


def test_cli_json_and_human(tmp_path):
    script = write(tmp_path, "train.py", "from transformers import Trainer\n")
    out = subprocess.run([sys.executable, "-m", "ntjax.cli", "detect", str(script), "--json"],
                         capture_output=True, text=True, check=True)
    data = json.loads(out.stdout)
    assert data["framework"] == "pytorch" and data["bridges"][0]["bridge"] == "ntjax.bridges.torch.HFTrainerCallback"
    human = subprocess.run([sys.executable, "-m", "ntjax.cli", "detect", str(script)],
                           capture_output=True, text=True, check=True).stdout
    assert "HFTrainerCallback" in human and "PyTorch" in human
    bad = subprocess.run([sys.executable, "-m", "ntjax.cli", "detect", str(tmp_path / "nope.py")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "no such script" in bad.stderr
