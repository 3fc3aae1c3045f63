"""Shared test settings: quiet, CPU-only JAX, and small helpers for runs made in tests."""
import os
import tempfile

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
# One persistent XLA compilation cache for every process the suite starts (the CLI runs in subprocesses
# compile the same tiny programs again and again): halves a tiny `ntjax train`'s CPU time. A torn entry
# only costs a recompile (JAX warns and compiles).
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(),
                                                                f"ntjax-tests-jax-cache-{os.getuid()}"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")


def pytest_collection_modifyitems(config, items):
    """Modules with long tests (marked `slow` or `client`) first, so that the quick ones even out the
    workers' ends instead of one worker finishing a long test alone (`make test`: two workers with work
    stealing). Whole modules move, so module-scoped fixtures are still built once."""
    def long(item) -> bool:
        return item.get_closest_marker("slow") is not None or item.get_closest_marker("client") is not None

    slow_modules = {item.module.__name__ for item in items if long(item)}
    items.sort(key=lambda item: item.module.__name__ not in slow_modules)
