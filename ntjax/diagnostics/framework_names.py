"""The names a PyTorch training script uses, read with `ast` (never run): its model, optimizer (if any),
loss, step counter, where it clips and updates, and its eval result, so that `ntjax detect` prints bridge
lines that fit the script as written instead of generic ones.

Everything here is a heuristic over the syntax tree; each field is None when the script does not say.
"""
from __future__ import annotations

import ast
import dataclasses

_OPTIMIZERS = {"SGD", "Adam", "AdamW", "Adamax", "Adagrad", "Adadelta", "RMSprop", "Rprop", "NAdam", "RAdam",
               "LBFGS", "SparseAdam", "Lion", "Adafactor", "Muon", "ASGD"}
_CLIPS = {"clip_grad_norm_", "clip_grad_norm", "clip_grad_value_"}


@dataclasses.dataclass
class TorchScriptNames:
    model: str | None = None
    optimizer: str | None = None
    loss: str | None = None
    created_line: int | None = None  # where the model/optimizer exist (the monitor goes after it)
    backward_line: int | None = None
    clip_line: int | None = None
    clip_code: str | None = None
    update_line: int | None = None  # optimizer.step(), or the hand-written update
    lr: str | None = None  # the LR expression of a hand-written update
    step: str | None = None  # a step counter that grows across the whole run
    eval_value: str | None = None
    eval_line: int | None = None


def _dotted(node: ast.AST) -> str:
    """`torch.optim.AdamW` for an attribute chain, `f` for a name, '' otherwise."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else node.attr
    return ""


def _method_calls(tree: ast.AST, method: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
            and n.func.attr == method]


def _parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}


def _assigned_from(tree: ast.AST, name: str) -> list[ast.Assign]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == name for t in n.targets)]


def _loss_name(call: ast.Call) -> str | None:
    """`loss` in `loss.backward()`, `(loss / accum).backward()` or `scaler.scale(loss).backward()`."""
    target = call.func.value  # type: ignore[attr-defined]
    names = [n.id for n in ast.walk(target) if isinstance(n, ast.Name)]
    callers = {_dotted(c.func).split(".")[0] for c in ast.walk(target) if isinstance(c, ast.Call)}
    plain = [n for n in names if n not in callers]
    return next((n for n in plain if "loss" in n.lower()), plain[0] if plain else None)


def _model(tree: ast.AST, optimizer_call: ast.Call | None) -> str | None:
    """The object whose `.parameters()` feed the optimizer, else the one most often asked for them."""
    owners = [_dotted(c.func.value) for m in ("parameters", "named_parameters")  # type: ignore[attr-defined]
              for c in _method_calls(optimizer_call or tree, m)]
    owners = [o for o in owners if o and o not in ("p", "param")]
    if not owners and optimizer_call is not None:
        return _model(tree, None)
    return max(owners, key=owners.count) if owners else None


def _optimizer(tree: ast.AST) -> tuple[str | None, ast.Call | None, int | None]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and len(node.targets) == 1:
            func = _dotted(node.value.func)
            target = node.targets[0]
            if isinstance(target, (ast.Name, ast.Attribute)) and (
                    ".optim." in f".{func}." or func.split(".")[-1] in _OPTIMIZERS):
                return _dotted(target), node.value, node.lineno
    return None, None, None


def _manual_update(tree: ast.AST) -> tuple[int | None, str | None]:
    """A hand-written SGD update: `p.data.add_(p.grad, alpha=-lr)` or `p.data -= lr * p.grad`."""
    for call in _method_calls(tree, "add_"):
        if any(_dotted(a).endswith(".grad") for a in call.args):
            alpha = next((k.value for k in call.keywords if k.arg == "alpha"), None)
            if alpha is not None:
                text = ast.unparse(alpha)
                return call.lineno, text[1:] if text.startswith("-") else f"-({text})"
            return call.lineno, None
    for node in ast.walk(tree):
        if isinstance(node, ast.AugAssign) and isinstance(node.op, ast.Sub) and isinstance(node.value, ast.BinOp):
            sides = [node.value.left, node.value.right]
            if any(_dotted(s).endswith(".grad") for s in sides):
                other = next(s for s in sides if not _dotted(s).endswith(".grad"))
                return node.lineno, ast.unparse(other)
    return None, None


def _step_counter(tree: ast.AST, backward: ast.Call, parents: dict[ast.AST, ast.AST]) -> str | None:
    """A counter that grows across the run: `x += 1` in a loop around the backward call (not a loss sum),
    or the index of the one loop around it, when that loop is at module level and not inside another."""
    loops, node = [], backward
    while node in parents:
        node = parents[node]
        if isinstance(node, (ast.For, ast.While)):
            loops.append(node)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            break
    for loop in loops:
        for n in ast.walk(loop):
            if (isinstance(n, ast.AugAssign) and isinstance(n.op, ast.Add) and isinstance(n.target, ast.Name)
                    and isinstance(n.value, ast.Constant) and n.value.value == 1):
                return n.target.id
    in_function = isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))  # called per epoch: it restarts
    if len(loops) == 1 and isinstance(loops[0], ast.For) and not in_function:
        target = loops[0].target
        if isinstance(target, ast.Name):
            return target.id
        if isinstance(target, ast.Tuple) and target.elts and isinstance(target.elts[0], ast.Name) \
                and _dotted(getattr(loops[0].iter, "func", ast.Name(""))) == "enumerate":
            return target.elts[0].id
    return None


def _eval(tree: ast.AST) -> tuple[str | None, int | None]:
    """`val_loss = evaluate(val_data)`: the variable holding an eval result, and its line."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and len(node.targets) == 1 \
                and isinstance(node.targets[0], ast.Name):
            func = _dotted(node.value.func).split(".")[-1].lower()
            if any(w in func for w in ("evaluat", "valid", "eval_")) or func == "eval":
                found.append((node.targets[0].id, node.lineno))
    found.sort(key=lambda f: ("val" not in f[0], f[1]))
    return found[0] if found else (None, None)


def torch_names(tree: ast.AST) -> TorchScriptNames:
    """The PyTorch names of a parsed training script."""
    names = TorchScriptNames()
    parents = _parents(tree)
    names.optimizer, optimizer_call, optimizer_line = _optimizer(tree)
    names.model = _model(tree, optimizer_call)
    backwards = _method_calls(tree, "backward")
    if backwards:
        backward = backwards[0]
        names.loss, names.backward_line = _loss_name(backward), backward.lineno
        names.step = _step_counter(tree, backward, parents)
    clips = [c for c in ast.walk(tree) if isinstance(c, ast.Call) and _dotted(c.func).split(".")[-1] in _CLIPS]
    if clips:
        names.clip_line, names.clip_code = clips[0].lineno, ast.unparse(clips[0].func)
    if names.optimizer:
        steps = [c for c in _method_calls(tree, "step") if _dotted(c.func.value) == names.optimizer]  # type: ignore
        names.update_line = steps[0].lineno if steps else None
    else:
        names.update_line, names.lr = _manual_update(tree)
    model_lines = [a.lineno for a in _assigned_from(tree, names.model)] if names.model else []
    created = [line for line in (max(model_lines, default=None), optimizer_line) if line is not None]
    names.created_line = max(created) if created else None
    names.eval_value, names.eval_line = _eval(tree)
    return names


def torch_lines(n: TorchScriptNames) -> list[str]:
    """The bridge lines for a plain PyTorch loop, in the script's own names, each with where it goes."""
    model = n.model or "model"
    step = n.step or "monitor.step"
    ctor = f"TorchMonitor({model}, {n.optimizer})" if n.optimizer else f"TorchMonitor({model})"
    where_ctor = f"after line {n.created_line}" if n.created_line else f"once `{model}` exists"
    lines = ["from ntjax.bridges.torch import TorchMonitor",
             f"monitor = {ctor}  # {where_ctor}; writes to $NTJAX_RUN_DIR (ntjax run) or a new runs/ folder"]
    args = f"{step}, {n.loss or 'loss'}" + ("" if n.optimizer else f", lr={n.lr or 'LR'}")
    where = [f"after line {n.backward_line} ({n.loss or 'loss'}.backward())" if n.backward_line
             else "after loss.backward()"]
    if n.clip_line:
        where.append(f"before line {n.clip_line} ({n.clip_code}): the norm before clipping")
    elif n.update_line:
        where.append(f"before line {n.update_line} (the update)")
    if not n.step:
        where.append("monitor.step: the steps logged so far (no run-wide step counter in the script)")
    lines.append(f"monitor.log({args})  # " + "; ".join(where))
    if n.eval_value:
        lines.append(f'monitor.log_eval({step}, {{"loss": {n.eval_value}}})  # after line {n.eval_line}')
    else:
        lines.append(f'monitor.log_eval({step}, {{"loss": val_loss}})  # where the script evaluates')
    lines.append("monitor.close()  # after training (marks the run finished; a crash is marked too)")
    return lines
