"""Which framework a training script uses, from its imports (parsed with `ast`, never run), and the
bridge lines that put its training stream into `metrics.jsonl`.

Local modules the script imports (a `helpers.py` or `helpers/__init__.py` beside it) are read too, one
level deep: a script whose model lives in `model.py` is still recognised.
"""
from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

from ntjax.diagnostics import framework_names as detect_names
from ntjax.errors import NtjaxError

# Top-level module -> framework (`ntjax` is none: its data, logger and bridges serve every framework).
_FRAMEWORK_OF = {
    "jax": "jax", "flax": "jax", "optax": "jax", "equinox": "jax", "haiku": "jax", "orbax": "jax",
    "torch": "pytorch", "torchvision": "pytorch", "torchaudio": "pytorch", "lightning": "pytorch",
    "pytorch_lightning": "pytorch", "accelerate": "pytorch", "trl": "pytorch", "peft": "pytorch",
    "tensorflow": "tensorflow", "keras": "tensorflow", "tf_keras": "tensorflow",
}
_HF_TRAINERS = {"Trainer", "Seq2SeqTrainer", "SFTTrainer", "DPOTrainer", "GRPOTrainer", "RewardTrainer"}

SNIPPETS = {
    "pytorch": ("ntjax.bridges.torch.TorchMonitor", [
        "from ntjax.bridges.torch import TorchMonitor",
        "monitor = TorchMonitor(model, optimizer)  # log_dir: $NTJAX_RUN_DIR (ntjax run), else a new runs/ folder",
        "monitor.log(step, loss)  # after loss.backward(), before optimizer.step(); monitor.close() at the end",
    ]),
    "lightning": ("ntjax.bridges.torch.LightningCallback", [
        "from ntjax.bridges.torch import LightningCallback",
        'trainer = L.Trainer(..., callbacks=[LightningCallback()])',
    ]),
    "hf_trainer": ("ntjax.bridges.torch.HFTrainerCallback", [
        "from ntjax.bridges.torch import HFTrainerCallback",
        'trainer.add_callback(HFTrainerCallback())  # or Trainer(..., callbacks=[...])',
    ]),
    "keras": ("ntjax.bridges.tensorflow.KerasCallback", [
        "from ntjax.bridges.tensorflow import KerasCallback",
        'model.fit(..., callbacks=[KerasCallback()])',
    ]),
    "tf_tape": ("ntjax.bridges.tensorflow.TFMonitor", [
        "from ntjax.bridges.tensorflow import TFMonitor",
        'monitor = TFMonitor(model=model, optimizer=optimizer)',
        "monitor.log(step, loss, grads, model.trainable_variables)  # before optimizer.apply_gradients",
    ]),
    "jax": ("ntjax (native)", [
        "ntjax train --out runs/jax  # or, in your own step:",
        "from ntjax import diagnostics; from ntjax.core.logger import MetricLogger",
        'logger = MetricLogger("runs/jax"); logger.log(step, {"train/loss": loss, '
        '"train/grad_norm": diagnostics.global_norm(grads)})',
    ]),
}


@dataclasses.dataclass(frozen=True)
class Detection:
    """What a script trains with. `framework`: jax, pytorch, tensorflow, mixed or unknown; `flavours`: the
    training styles found (plain, lightning, hf_trainer, keras, tf_tape, jax)."""

    script: str
    framework: str
    frameworks: list[str]
    flavours: list[str]
    imports: dict[str, list[str]]  # top-level module -> files importing it
    files_read: list[str]
    bridges: list[dict]  # {"flavour", "bridge", "lines"}
    monitored: bool  # it already imports an ntjax bridge


@dataclasses.dataclass
class _Scan:
    modules: set[str] = dataclasses.field(default_factory=set)
    dotted: set[str] = dataclasses.field(default_factory=set)  # full module names
    names: set[str] = dataclasses.field(default_factory=set)  # imported names and attribute names used
    local: list[str] = dataclasses.field(default_factory=list)  # candidate local module names


def _scan(tree: ast.AST) -> _Scan:
    """Imported top-level modules, names imported or used as attributes, and relative/local imports."""
    scan = _Scan()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                scan.modules.add(alias.name.split(".")[0])
                scan.dotted.add(alias.name)
                scan.local.append(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                scan.modules.add(node.module.split(".")[0])
                scan.dotted.update([node.module, *(f"{node.module}.{a.name}" for a in node.names)])
                scan.local.append(node.module)
            elif node.level > 0:  # `from . import x` / `from .x import y`
                scan.local.extend([node.module] if node.module else [a.name for a in node.names])
            scan.names.update(a.name for a in node.names)
        elif isinstance(node, ast.Attribute):
            scan.names.add(node.attr)
        elif isinstance(node, ast.Name):
            scan.names.add(node.id)
    return scan


def _parse(path: Path) -> ast.AST:
    try:
        return ast.parse(path.read_text(encoding="utf-8", errors="replace"), filename=str(path))
    except SyntaxError as e:
        raise NtjaxError(f"cannot parse {path}: {e.msg} (line {e.lineno})") from None


def _local_file(base: Path, dotted: str) -> Path | None:
    """`helpers` or `pkg.mod` as a file beside the script, if there is one."""
    rel = Path(*dotted.split("."))
    for candidate in (base / rel.with_suffix(".py"), base / rel / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _flavours(frameworks: set[str], modules: set[str], names: set[str]) -> list[str]:
    found = []
    if "pytorch" in frameworks:
        if modules & {"lightning", "pytorch_lightning"}:
            found.append("lightning")
        if modules & {"transformers", "trl"} and names & _HF_TRAINERS:
            found.append("hf_trainer")
        if not found:
            found.append("pytorch")
    if "tensorflow" in frameworks:
        found.append("tf_tape" if "GradientTape" in names else "keras")
    if "jax" in frameworks:
        found.append("jax")
    return found


def detect(script: str | Path) -> Detection:
    """Detect the framework of a training script from its imports and those of its local modules."""
    path = Path(script)
    if not path.is_file():
        raise NtjaxError(f"no such script: {path}")
    scans = {str(path): _scan(_parse(path))}
    for dotted in scans[str(path)].local:
        local = _local_file(path.parent, dotted)
        if local is not None and local.resolve() != path.resolve() and str(local) not in scans:
            scans[str(local)] = _scan(_parse(local))
    imports: dict[str, list[str]] = {}
    for file, scan in scans.items():
        for module in sorted(scan.modules):
            imports.setdefault(module, []).append(file)
    modules = set(imports)
    names = set().union(*(s.names for s in scans.values()))
    dotted = set().union(*(s.dotted for s in scans.values()))
    monitored = any(d.startswith("ntjax.bridges") for d in dotted)
    if "transformers" in modules and names & _HF_TRAINERS:
        modules.add("torch")  # the HF Trainer trains PyTorch models
    frameworks = sorted({_FRAMEWORK_OF[m] for m in modules if m in _FRAMEWORK_OF})
    flavours = _flavours(set(frameworks), modules, names)
    framework = frameworks[0] if len(frameworks) == 1 else "mixed" if frameworks else "unknown"
    bridges = [{"flavour": f, "bridge": SNIPPETS[f][0], "lines": SNIPPETS[f][1]} for f in flavours]
    for b in bridges:
        if b["flavour"] == "pytorch":  # a plain loop: lines in the script's own names
            names = detect_names.torch_names(_parse(path))
            b["lines"], b["names"] = detect_names.torch_lines(names), dataclasses.asdict(names)
    return Detection(script=str(path), framework=framework, frameworks=frameworks, flavours=flavours,
                     imports=imports, files_read=list(scans), bridges=bridges, monitored=monitored)
