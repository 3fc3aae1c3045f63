"""Host-side metrics of a step, as pure functions of what the loop measured: throughput, tokens per
second and MFU from the step's wall time, plus the process's memory readings."""
from __future__ import annotations

import resource

import jax


def speed_metrics(seconds: float, batch_size: int, tokens_per_step: int | None,
                  flops_per_token: float | None = None, peak_flops_per_s: float | None = None) -> dict[str, float]:
    """`train/throughput` (samples/s), `train/tokens_per_s` and `train/mfu` (model FLOPs utilisation,
    6N+attention FLOPs per token against the devices' peak) for one step that took `seconds`."""
    if seconds <= 0:
        return {}
    out = {"train/throughput": batch_size / seconds}
    if tokens_per_step:
        out["train/tokens_per_s"] = tokens_per_step / seconds
        if flops_per_token and peak_flops_per_s:
            out["train/mfu"] = out["train/tokens_per_s"] * flops_per_token / peak_flops_per_s
    return out


def host_rss_mb() -> float:
    """Peak resident memory of this process in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def device_memory_mb() -> float | None:
    """Bytes in use on the first local device, in MiB, where the backend reports it (not on CPU)."""
    stats = jax.local_devices()[0].memory_stats() or {}
    return stats["bytes_in_use"] / 2**20 if "bytes_in_use" in stats else None
