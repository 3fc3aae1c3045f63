"""What `ntjax train` says about the hardware at the end of a run: the device, the memory the run held,
and the model FLOPs utilisation against the device's dense 16-bit peak (`ntjax.core.flops.PEAK_FLOPS`)."""
from __future__ import annotations

import json
import resource
import statistics
from pathlib import Path
from typing import Any

MFU_WINDOW = 50  # the last logged steps the MFU is averaged over (past compilation and warm-up)


def logged_mfu(metrics_path: str | Path, window: int = MFU_WINDOW) -> float | None:
    """The median `train/mfu` over the run's last `window` logged steps, or None if it logged none."""
    values = []
    try:
        with open(metrics_path, encoding="utf-8") as f:
            for line in f:
                try:
                    v = json.loads(line).get("train/mfu")
                except ValueError:
                    continue
                if isinstance(v, (int, float)):
                    values.append(float(v))
    except OSError:
        return None
    return statistics.median(values[-window:]) if values else None


def device_summary(metrics_path: str | Path) -> dict[str, Any]:
    """The device (platform, kind, count), memory held (accelerator in use / peak / limit, or the host's
    peak resident memory on a CPU), the device's peak FLOP/s when known, and the run's MFU."""
    import jax

    from ntjax.core.flops import device_peak_flops

    dev = jax.local_devices()[0]
    stats = dev.memory_stats() or {}
    mib = 2**20
    peak = device_peak_flops(dev.device_kind, dev.platform)
    return {"platform": dev.platform, "kind": dev.device_kind, "count": jax.device_count(),
            "memory_in_use_mb": stats["bytes_in_use"] / mib if "bytes_in_use" in stats else None,
            "memory_peak_mb": stats["peak_bytes_in_use"] / mib if "peak_bytes_in_use" in stats else None,
            "memory_limit_mb": stats["bytes_limit"] / mib if "bytes_limit" in stats else None,
            "host_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
            "peak_flops_per_device": peak, "mfu": logged_mfu(metrics_path) if peak else None}


def summary_line(d: dict[str, Any]) -> str:
    """One line: `device: NVIDIA H200 ×1 (gpu); memory: 61,440 MiB peak of 130,000 MiB; MFU 41.2 % of 989 TFLOP/s`."""
    where = f"device: {d['kind']} ×{d['count']} ({d['platform']})"
    if d["memory_peak_mb"] is not None:
        limit = f" of {d['memory_limit_mb']:,.0f} MiB" if d["memory_limit_mb"] else ""
        memory = f"memory: {d['memory_peak_mb']:,.0f} MiB peak{limit} (in use now {d['memory_in_use_mb']:,.0f} MiB)"
    else:
        memory = f"memory: {d['host_peak_rss_mb']:,.0f} MiB host peak (no device memory statistics)"
    if d["peak_flops_per_device"] is None:
        mfu = "MFU: n/a (no known peak FLOP/s for this device)"
    elif d["mfu"] is None:
        mfu = f"MFU: not logged (peak {d['peak_flops_per_device'] / 1e12:,.0f} TFLOP/s per device)"
    else:
        mfu = f"MFU: {100 * d['mfu']:.1f} % of {d['peak_flops_per_device'] / 1e12:,.0f} TFLOP/s per device"
    return f"{where}; {memory}; {mfu}"
