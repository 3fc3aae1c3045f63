"""Data parallel and FSDP-style sharding over a device mesh, selected by `--mesh data=2,fsdp=4`.

The mesh always has the two axes ("data", "fsdp"); an axis the spec leaves out has size 1, so one set of
rules serves every spec:
- a batch is split along its first dimension over both axes together (every device sees B/(data·fsdp)
  sequences);
- a matrix is split over "fsdp" along its largest axis that "fsdp" divides (Zero-3 / FSDP: each device
  keeps 1/fsdp of the weights and of the Adam moments, which have the weights' shapes and so get the
  same layout); vectors and scalars (biases, norm gains, step counters, guard windows) are replicated;
- everything is replicated over "data".
The jitted step is given these shardings and XLA's partitioner (GSPMD) inserts the all-gathers and
reductions, so the step computes on global arrays: its losses and norms are those of one device.
"""
from __future__ import annotations

import os
import re
from typing import Any, NamedTuple

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from ntjax.errors import NtjaxError

AXES = ("data", "fsdp")
# A batch's first dimension is split over both axes: FSDP devices see different data too.
BATCH_SPEC = P(AXES)
_ITEM = re.compile(r"^\s*([a-z]+)\s*=\s*(\d+)\s*$")


def parse_mesh(spec: str, n_devices: int | None = None) -> dict[str, int]:
    """`"data=2,fsdp=4"` -> `{"data": 2, "fsdp": 4}` (a missing axis is 1), checked against the device count.

    The product of the sizes must equal `n_devices` (default `jax.device_count()`, all processes).
    """
    n_devices = jax.device_count() if n_devices is None else n_devices
    sizes: dict[str, int] = dict.fromkeys(AXES, 1)
    seen: set[str] = set()
    for item in spec.split(","):
        m = _ITEM.match(item)
        if not m:
            raise NtjaxError(f"bad --mesh {spec!r}: write axis=size pairs such as data=8 or data=2,fsdp=4")
        name, size = m.group(1), int(m.group(2))
        if name not in AXES:
            raise NtjaxError(f"bad --mesh {spec!r}: unknown axis {name!r} (axes: {', '.join(AXES)})")
        if name in seen:
            raise NtjaxError(f"bad --mesh {spec!r}: axis {name!r} given twice")
        if size < 1:
            raise NtjaxError(f"bad --mesh {spec!r}: axis sizes must be positive")
        seen.add(name)
        sizes[name] = size
    total = int(np.prod(list(sizes.values())))
    if total != n_devices:
        raise NtjaxError(f"--mesh {spec} needs {total} devices but {n_devices} are available "
                         f"(the sizes must multiply to the device count)")
    return sizes


def make_mesh(sizes: dict[str, int]) -> Mesh:
    """A ("data", "fsdp") mesh over all devices, in the order that suits the interconnect.

    Built with `Mesh` directly: its axes are Auto, so GSPMD places intermediates. (`jax.make_mesh`
    defaults to Explicit axes, under which the embedding lookup raises a sharding type error.)
    """
    from jax.experimental import mesh_utils

    shape = tuple(sizes[a] for a in AXES)
    return Mesh(mesh_utils.create_device_mesh(shape, devices=jax.devices()), AXES)


def batch_shards(mesh: Mesh) -> int:
    """How many pieces a batch is split into."""
    return mesh.shape["data"] * mesh.shape["fsdp"]


def param_spec(shape: tuple[int, ...], fsdp: int) -> P:
    """The FSDP layout of one leaf: its largest axis divisible by `fsdp` over "fsdp"; replicated when
    it has fewer than 2 dimensions or no such axis."""
    if fsdp == 1 or len(shape) < 2:
        return P()
    divisible = [i for i in range(len(shape)) if shape[i] % fsdp == 0]
    if not divisible:
        return P()
    axis = max(divisible, key=lambda i: shape[i])
    return P(*("fsdp" if i == axis else None for i in range(len(shape))))


class StepSharding(NamedTuple):
    """Everything the train step and trainer need to run on a mesh."""

    mesh: Mesh
    state: Any  # a pytree of NamedSharding shaped like the TrainState
    batch: NamedSharding  # [B, ...] split over ("data", "fsdp")
    replicated: NamedSharding  # metrics, scalars

    @property
    def data_shards(self) -> int:
        return self.mesh.shape["data"]

    def per_shard(self) -> NamedSharding:
        """A batch reshaped to [data, B/data, ...]: one slice per data-parallel shard."""
        return NamedSharding(self.mesh, P("data", "fsdp"))

    def micro_batches(self) -> NamedSharding:
        """A batch reshaped to [accum, micro, ...]: each micro-batch split over all devices."""
        return NamedSharding(self.mesh, P(None, AXES))


def state_shardings(state: Any, mesh: Mesh) -> Any:
    """The NamedSharding of every leaf of a (train) state, by `param_spec` of its shape."""
    fsdp = mesh.shape["fsdp"]
    return jax.tree.map(lambda x: NamedSharding(mesh, param_spec(np.shape(x), fsdp)), state)


def step_sharding(mesh: Mesh, state: Any) -> StepSharding:
    return StepSharding(mesh, state_shardings(state, mesh), NamedSharding(mesh, BATCH_SPEC),
                        NamedSharding(mesh, P()))


def check_batch(batch_size: int, micro_batch_size: int, mesh: Mesh) -> None:
    """A micro-batch (the whole batch without accumulation) must split evenly over the mesh."""
    n = batch_shards(mesh)
    if micro_batch_size % n:
        what = f"batch size {batch_size}" + (f" (micro-batch {micro_batch_size})"
                                             if micro_batch_size != batch_size else "")
        raise NtjaxError(f"{what} is not divisible by the {n} batch shards of the mesh "
                         f"(data={mesh.shape['data']} x fsdp={mesh.shape['fsdp']})")


def _put(x: Any, sharding: NamedSharding) -> jax.Array:
    """One leaf onto its sharding. Each process builds only its own devices' pieces from its host copy,
    which is what multi-host needs (every process holds the same value)."""
    if jax.dtypes.issubdtype(getattr(x, "dtype", None), jax.dtypes.prng_key):
        return jax.device_put(x, sharding)
    host = np.asarray(x)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def place(tree: Any, shardings: Any) -> Any:
    """Put every leaf of `tree` onto the matching sharding of `shardings` (a tree of the same shape,
    or a single sharding for all leaves)."""
    if isinstance(shardings, NamedSharding):
        return jax.tree.map(lambda x: _put(x, shardings), tree)
    return jax.tree.map(_put, tree, shardings)


def abstract(tree: Any) -> Any:
    """Shapes, dtypes and shardings of a placed tree: the target a sharded checkpoint restores into."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), tree)


def place_batch(batch: Any, sharding: StepSharding) -> jax.Array:
    """A host batch onto the mesh, split over its first dimension (replicated when that does not divide
    evenly: a user's eval batches may have any size; training batches are checked up front)."""
    even = np.shape(batch)[0] % batch_shards(sharding.mesh) == 0
    return _put(batch, sharding.batch if even else sharding.replicated)


def for_run(spec: str, batch_size: int, micro_batch_size: int, state: Any) -> StepSharding:
    """The shardings of a run with `--mesh spec`, after checking the mesh and the batch fit the devices."""
    mesh = make_mesh(parse_mesh(spec))
    check_batch(batch_size, micro_batch_size, mesh)
    return step_sharding(mesh, state)


def start_distributed() -> bool:
    """Join a multi-host run when the launcher set one up: `JAX_COORDINATOR_ADDRESS` (host:port of
    process 0), with `JAX_NUM_PROCESSES` and `JAX_PROCESS_ID` (or a SLURM / Open MPI / Kubernetes / TPU
    environment that JAX reads those two from). Must run before JAX first touches a device. Returns
    whether this process is part of a multi-process run."""
    if not jax.distributed.is_initialized() and os.environ.get("JAX_COORDINATOR_ADDRESS"):
        count = os.environ.get("JAX_NUM_PROCESSES")
        index = os.environ.get("JAX_PROCESS_ID")
        jax.distributed.initialize(num_processes=int(count) if count else None,
                                   process_id=int(index) if index else None)
    return jax.distributed.is_initialized()
