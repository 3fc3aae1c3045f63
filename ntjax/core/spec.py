"""A user's spec module (`--spec my_spec.py`): imported from its file path and checked for what the trainer
needs. The task builds from it; μP reads its width declarations from it."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from ntjax.errors import NtjaxError


def load_spec(path: str | Path) -> Any:
    """Import a spec module from a file path, checking it defines what the trainer needs."""
    from ntjax.core.trust import check_spec

    path = Path(path)
    if path.suffix != ".py":
        raise NtjaxError(f"spec {path} is not a Python file (.py)")
    if not path.is_file():
        raise NtjaxError(f"spec file {path} does not exist")
    check_spec(path)
    spec = importlib.util.spec_from_file_location(f"ntjax_user_spec_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise NtjaxError(f"spec {path} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SystemExit as e:  # a spec calling sys.exit() must not end ntjax silently with its code
        raise NtjaxError(f"spec {path} called sys.exit({e.code!r}) while being imported") from None
    except Exception as e:  # the user's code: report its failure in one line
        raise NtjaxError(f"spec {path} failed to import: {type(e).__name__}: {e}") from None
    missing = [n for n in ("build_model", "train_batch", "eval_batches") if not hasattr(module, n)]
    if missing:
        raise NtjaxError(f"spec {path} must define {', '.join(missing)} (see examples/custom_spec.py)")
    return module
