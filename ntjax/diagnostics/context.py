"""What a run is, read before any rule fires: optimizer family and settings, architecture, task and its
trivial baselines, pretrain vs fine-tune, and resume points.

Sources: the run's `config.json` (ntjax's and the bridges' shape: `optimizer.class` and `param_groups`,
`model.class`, parameter count and module tree), HF/Lightning configs when attached, and the names and
values of the logged metrics. Pure: takes the parsed config and the `RunTable`, reads no files.
"""
from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable
from typing import Any

import numpy as np

from ntjax.diagnostics.runtable import RunTable

ADAM_TYPE = re.compile(r"adam|nadam|radam|lamb|adabelief|adan|sophia", re.I)
SGD_TYPE = re.compile(r"^(sgd|momentum|nesterov)", re.I)
RESUME_TIME_GAP = 20.0  # a wall-clock gap of 20x the median step time (and over a minute): the run restarted
RESUME_MIN_GAP_S = 60.0
LEVEL_SHIFT_RISE = 0.08  # eval 8% above the two evals before, and train 8% above its level just before
LEVEL_SHIFT_MAX = 1.5  # a restart costs up to ~1.5x; a taller step is a spike
LEVEL_SHIFT_WINDOW = 0.05  # train levels compared over 5% of the run on each side
LR_RESTART = math.log(2)
LR_RESTART_TO_PEAK = math.log(1.3)  # back to its earlier peak in one step after decaying 30%: a restart


@dataclasses.dataclass
class ResumePoint:
    """A step where the run restarted or its settings changed, and what changed."""

    step: int
    what: str
    kind: str = "restart"  # restart (clock gap, schedule back to its peak, loss level shift) | lr_raised


@dataclasses.dataclass
class RunContext:
    """The facts rules depend on; None where the logs do not say."""

    optimizer: str | None = None  # the class as written (AdamW, SGD, adamw...)
    family: str = "unknown"  # adam | sgd | lion | muon | adafactor | other | unknown
    lr: float | None = None
    beta1: float | None = None
    beta2: float | None = None
    eps: float | None = None
    momentum: float | None = None
    weight_decay: float | None = None
    clip_norm: float | None = None
    warmup: int | None = None
    schedule: str | None = None
    steps: int | None = None
    n_params: int | None = None
    vocab_size: int | None = None
    n_classes: int | None = None
    arch: str = "unknown"  # transformer | cnn | rnn | mlp | unknown
    task: str = "unknown"  # lm | classification | regression | unknown
    finetune: bool = False
    framework: str | None = None
    preset: str | None = None
    has_config: bool = False
    baselines: dict[str, float] = dataclasses.field(default_factory=dict)  # name -> trivial loss value
    resumes: list[ResumePoint] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)

    def summary(self) -> str:
        """One line: the context a rule assumed."""
        parts = [f"optimizer {self.optimizer or '?'} ({self.family})"]
        if self.lr is not None:
            parts.append(f"lr {self.lr:g}")
        if self.beta2 is not None:
            parts.append(f"beta2 {self.beta2:g}")
        if self.momentum:
            parts.append(f"momentum {self.momentum:g}")
        if self.weight_decay is not None:
            parts.append(f"weight decay {self.weight_decay:g}")
        parts.append(f"clip {self.clip_norm:g}" if self.clip_norm else "no clipping logged")
        parts.append(f"{self.arch} {self.task}" + (" fine-tune" if self.finetune else ""))
        if self.n_params:
            parts.append(f"{self.n_params:,} parameters")
        return ", ".join(parts)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["resumes"] = [dataclasses.asdict(r) for r in self.resumes]
        return {k: v for k, v in d.items() if v not in (None, [], {})}


def _find(tree: Any, keys: Iterable[str]) -> Any:
    """The first scalar under any of `keys` in a nested dict/list, searched breadth first."""
    keys = tuple(keys)
    queue = [tree]
    while queue:
        node = queue.pop(0)
        if isinstance(node, dict):
            for k in keys:
                if k in node and not isinstance(node[k], (dict, list)) and node[k] is not None:
                    return node[k]
            queue += list(node.values())
        elif isinstance(node, list):
            queue += node
    return None


def _num(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def optimizer_family(name: str | None) -> str:
    """adam | sgd | lion | muon | adafactor | other | unknown, from an optimizer's class name."""
    if not name:
        return "unknown"
    low = str(name).lower()
    for fam in ("lion", "muon", "adafactor"):
        if fam in low:
            return fam
    if ADAM_TYPE.search(low):
        return "adam"
    if SGD_TYPE.search(low):
        return "sgd"
    return "other"


def _module_classes(model: dict) -> list[str]:
    mods = model.get("modules") if isinstance(model, dict) else None
    return [str(m.get("class", "")) for m in mods if isinstance(m, dict)] if isinstance(mods, list) else []


def architecture(config: dict, names: list[str]) -> str:
    """transformer | cnn | rnn | mlp | unknown from the model class, its modules and the metric names."""
    model = config.get("model", {}) if isinstance(config.get("model"), dict) else {}
    text = " ".join([str(model.get("class", "")), *_module_classes(model)]).lower()
    if config.get("framework") == "ntjax" and not _find(config.get("train", {}), ("spec",)):
        return "transformer"
    if re.search(r"lstm|gru|\brnn|rnnbase|elman", text):
        return "rnn"
    if re.search(r"attention|transformer|gpt|bert|llama|\bt5|vit\b|whisper|mistral|qwen", text) or \
            any(n.startswith(("attn_", "attn/")) for n in names):
        return "transformer"
    if re.search(r"conv|resnet|vgg|pool", text):
        return "cnn"
    if re.search(r"linear|dense|mlp|perceptron", text):
        return "mlp"
    return "unknown"


def task_of(config: dict, names: list[str], arch: str) -> str:
    """lm | classification | regression | unknown from the config and the metric names."""
    low = [n.lower() for n in names]
    if _find(config, ("vocab_size", "n_vocab")) or any("ppl" in n or "perplex" in n or "bpb" in n for n in low):
        return "lm"
    if any(re.search(r"acc|f1|auc|top1|error_rate", n) for n in low) or _find(config, ("num_labels", "n_classes",
                                                                                       "num_classes")):
        return "classification"
    if any(re.search(r"\b(mse|mae|rmse|r2|huber)\b|/(mse|mae|rmse|r2)$", n) for n in low):
        return "regression"
    loss_fn = str(_find(config, ("loss", "loss_fn", "criterion")) or "").lower()
    if "mse" in loss_fn or "l1" in loss_fn:
        return "regression"
    if "cross" in loss_fn or "nll" in loss_fn:
        return "classification"
    return "lm" if arch == "rnn" and _find(config, ("ntoken", "ntokens")) else "unknown"


def resume_points(table: RunTable) -> list[ResumePoint]:
    """Steps where the run restarted (a wall-clock gap) or the LR jumped back up after decaying."""
    out: list[ResumePoint] = []
    loss = table.get("train/loss")
    if loss is not None and len(loss) >= 10:
        t = loss.time
        ok = np.isfinite(t)
        if ok.sum() >= 10:
            st, tt = loss.step[ok], t[ok]
            dt = np.diff(tt) / np.maximum(np.diff(st), 1)
            med = float(np.median(dt[dt > 0])) if np.any(dt > 0) else 0.0
            step_dt = np.diff(tt)
            gaps = np.flatnonzero(step_dt > np.maximum(RESUME_MIN_GAP_S,
                                                       RESUME_TIME_GAP * med * np.maximum(np.diff(st), 1)))
            for g in gaps[:3]:
                out.append(ResumePoint(int(st[g + 1]), f"a {step_dt[g]:.0f} s pause in wall-clock time "
                                                       f"before step {int(st[g + 1])} (a restart)"))
    lr = table.get("train/lr")
    if lr is not None and len(lr.finite()) >= 5:
        s = lr.finite()
        v = np.maximum(s.value, 1e-30)
        rises = np.diff(v) > 0
        # the initial warmup: a steady climb from the first point (every step up) is not a restart
        warm_end = int(np.argmin(rises)) if not rises.all() else v.size - 1
        warm_end = warm_end if rises[:max(warm_end, 1)].all() and v[0] < 0.5 * v[warm_end] else 0
        low_i = warm_end
        for i in range(warm_end + 1, v.size):
            if v[i] <= v[low_i]:
                low_i = i
            elif math.log(v[i] / v[low_i]) >= LR_RESTART or (
                    v[i] >= 0.9 * float(v[:i].max()) and math.log(v[i] / v[low_i]) >= LR_RESTART_TO_PEAK):
                what = ("jumped back up" if v[low_i] < 0.7 * float(v[:i].max()) else "jumped up")
                out.append(ResumePoint(int(s.step[low_i + 1]),
                                       f"the LR {what} from {v[low_i]:.3g} at step {int(s.step[low_i])} to "
                                       f"{v[i]:.3g} at step {int(s.step[i])}" +
                                       (" (the schedule restarted)" if what == "jumped back up" else
                                        " (a config change)"),
                                       "restart" if what == "jumped back up" else "lr_raised"))
                break
    if not out and (lr is None or len(lr.finite()) < 5):
        out += level_shifts(table)
    out.sort(key=lambda r: r.step)
    merged: list[ResumePoint] = []
    for r in out:  # a restart that also restarted the LR is one event with two facts
        if merged and abs(r.step - merged[-1].step) <= max(2, 0.01 * (r.step or 1)):
            merged[-1] = ResumePoint(merged[-1].step, merged[-1].what + "; " + r.what, "restart")
        else:
            merged.append(r)
    return merged


def _med(s, lo: float, hi: float) -> float | None:
    keep = (s.step >= lo) & (s.step < hi)
    return float(np.median(s.value[keep])) if keep.sum() >= 2 else None


def level_shifts(table: RunTable) -> list[ResumePoint]:
    """Without an LR or a clock, a restart shows only as train loss stepping up and staying up (a spike is
    gone within a few percent of the run), with the eval loss up too."""
    tr, ev = table.get("train/loss"), table.get("eval/loss")
    if tr is None or ev is None or len(tr.finite()) < 60 or len(ev.finite()) < 4:
        return []
    tr, ev = tr.finite(), ev.finite()
    if np.any(tr.value <= 0):
        return []
    y = np.log(tr.value)
    n = y.size
    w = max(5, int(LEVEL_SHIFT_WINDOW * n))
    sm_y = np.array([np.median(y[max(0, i - 1):i + 2]) for i in range(n)])
    best = None
    for c in range(2 * w, n - 3 * w):
        before = float(np.median(y[c - w:c]))
        now = float(np.median(y[c:c + w]))
        later = float(np.median(y[c + w:c + 3 * w]))
        peak = float(np.max(sm_y[c:c + w]))
        if now - before >= math.log(1 + 2 * LEVEL_SHIFT_RISE) and later - before >= math.log(1 + LEVEL_SHIFT_RISE) \
                and peak - before <= math.log(LEVEL_SHIFT_MAX):  # taller is a spike
            if best is None or now - before > best[1]:
                best = (c, now - before)
    if best is None:
        return []
    c = best[0]
    cut = int(tr.step[c])
    e_before = ev.value[ev.step < cut]
    e_after = ev.value[ev.step >= cut]
    if e_before.size == 0 or e_after.size < 2 or \
            float(np.median(e_after[:2])) < (1 + LEVEL_SHIFT_RISE / 2) * e_before[-1]:
        return []
    return [ResumePoint(cut, f"train loss stepped up x{math.exp(best[1]):.2f} at step {cut} and stayed up, eval loss "
                             f"with it (a restart or a config change; no LR or clock logged to say which)")]


def _dict(x: Any) -> dict:
    return x if isinstance(x, dict) else {}


def _list(x: Any) -> list:
    return x if isinstance(x, list) else []


def read_context(table: RunTable) -> RunContext:
    """The run's context from `table.meta["config"]` (when present) and its metrics."""
    config = table.meta.get("config") or {}
    if not isinstance(config, dict):
        config = {}
    names = table.names()
    opt = _dict(config.get("optimizer"))
    groups = _list(opt.get("param_groups"))
    g0 = _dict(groups[0] if groups else None)
    train = _dict(config.get("train"))
    ctx = RunContext(has_config=bool(config), framework=config.get("framework"))
    ctx.optimizer = (opt.get("class") or train.get("optimizer") or
                     (config.get("optimizer") if isinstance(config.get("optimizer"), str) else None) or
                     _find(config, ("optim", "optimizer_name")))
    ctx.family = optimizer_family(ctx.optimizer)
    lrs = [_num(g.get("lr")) for g in groups if isinstance(g, dict) and _num(g.get("lr"))]
    ctx.lr = max(lrs) if lrs else _num(_find(config, ("lr", "learning_rate")))
    betas = g0.get("betas") or ([train.get("b1"), train.get("b2")] if "b2" in train else None)
    if isinstance(betas, (list, tuple)) and len(betas) == 2:
        ctx.beta1, ctx.beta2 = _num(betas[0]), _num(betas[1])
    else:
        ctx.beta2 = _num(_find(config, ("beta2", "adam_beta2", "b2")))
    ctx.eps = _num(g0.get("eps", _find(config, ("eps", "adam_epsilon"))))
    ctx.momentum = _num(g0.get("momentum", _find(config, ("momentum",))))
    wds = [_num(g.get("weight_decay")) for g in groups
           if isinstance(g, dict) and _num(g.get("weight_decay")) is not None]
    ctx.weight_decay = max(wds) if wds else _num(_find(config, ("weight_decay",)))
    ctx.clip_norm = _num(_find(config, ("clip_norm", "max_grad_norm", "gradient_clip_val", "clip", "grad_clip")))
    warm = _num(_find(config, ("warmup", "warmup_steps")))
    ctx.warmup = int(warm) if warm is not None else None
    ctx.schedule = _find(config, ("schedule", "lr_scheduler_type", "scheduler"))
    steps = _num(_find(config, ("steps", "max_steps", "total_steps")))
    ctx.steps = int(steps) if steps else None
    n = _num(_find(config.get("model", config), ("n_params", "num_parameters", "parameters", "param_count",
                                                  "n_parameters")))
    ctx.n_params = int(n) if n else None
    vocab = _num(_find(config, ("vocab_size", "n_vocab", "ntoken", "ntokens")))
    ctx.vocab_size = int(vocab) if vocab and vocab > 1 else None
    k = _num(_find(config, ("num_labels", "n_classes", "num_classes")))
    ctx.n_classes = int(k) if k and k > 1 else None
    ctx.preset = train.get("preset") or _find(config, ("preset",))
    ctx.arch = architecture(config, names)
    ctx.task = task_of(config, names, ctx.arch)
    ctx.finetune = bool(train.get("init_from") or (train.get("lora_rank") or 0) > 0 or
                        _find(config, ("model_name_or_path", "pretrained", "init_from", "base_model")))
    _baselines(ctx, config, table)
    ctx.resumes = resume_points(table)
    return ctx


def _baselines(ctx: RunContext, config: dict, table: RunTable) -> None:
    """Losses a model reaches without learning anything from its input."""
    if ctx.vocab_size:
        ctx.baselines[f"ln V = ln {ctx.vocab_size} (uniform over the vocabulary)"] = math.log(ctx.vocab_size)
    unigram = _num(_find(config, ("unigram_entropy",)))
    if unigram:
        ctx.baselines["the unigram entropy (predicting token frequencies, ignoring context)"] = unigram
    if ctx.n_classes:
        ctx.baselines[f"ln K = ln {ctx.n_classes} (chance over {ctx.n_classes} classes)"] = math.log(ctx.n_classes)
    prior = _num(_find(config, ("label_entropy", "class_prior_entropy")))
    if prior:
        ctx.baselines["the label entropy (predicting the class frequencies)"] = prior
    var = _num(_find(config, ("target_variance", "target_var", "label_variance", "y_var")))
    if var:
        ctx.baselines[f"{var:.3g} = the MSE of predicting the mean (target variance)"] = var
    if ctx.task == "regression" and not var:
        # Common regression targets: standardised (variance 1) and balanced binary 0/1 (variance 0.25).
        ctx.baselines["1.000 = the MSE of predicting the mean of standardised targets"] = 1.0
        ctx.baselines["0.250 = the MSE of predicting the mean of balanced 0/1 targets"] = 0.25
