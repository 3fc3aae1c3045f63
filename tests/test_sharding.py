"""Data parallel and FSDP on 8 virtual CPU devices: the same losses and norms as one device, parameters
really sharded, sharded checkpoints that resume, the gradient noise scale from the data shards, a
two-process (multi-host) run over jax.distributed, and one clear line for a bad mesh.

The device count is fixed when JAX starts (and conftest has started it with one), so the 8-device runs
happen in one subprocess that prints its measurements as JSON; the assertions are made here.
"""
import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from ntjax.core.sharding import param_spec, parse_mesh
from ntjax.errors import NtjaxError

STEPS = 20
RESUMED_STEPS = 30
HOST_STEPS = 6

# Runs the tiny preset with no mesh, data=8 and data=2,fsdp=4, then resumes the FSDP run from its
# checkpoint. A constant LR after a fixed warmup, so stopping at step 20 and resuming to step 30 follows
# the same path as one run to step 30.
SCRIPT = textwrap.dedent(f"""
    import dataclasses, json, sys
    import jax
    from ntjax.core import config as C
    from ntjax.errors import NtjaxError
    from ntjax.trainer import Trainer

    out = sys.argv[1]
    base = dataclasses.replace(C.PRESETS["tiny"], steps={RESUMED_STEPS}, schedule="constant", warmup=5,
                               eval_every=10, ckpt_every=10, probe_every=5)

    def metrics(run):
        rows = {{}}
        for line in open(f"{{out}}/{{run}}/metrics.jsonl"):
            rec = json.loads(line)
            rows.setdefault(rec["step"], {{}}).update(rec)
        return rows

    def leaf(tree, *words):
        return next(x for path, x in jax.tree_util.tree_flatten_with_path(tree)[0]
                    if all(w in jax.tree_util.keystr(path) for w in words))

    def specs(state):
        fc = "['blocks'][0]['mlp']['fc']"
        kernel = leaf(state.params, fc + "['kernel']")
        return {{"kernel": str(kernel.sharding.spec),
                "kernel_shard_shape": list(kernel.addressable_shards[0].data.shape),
                "mu": str(leaf(state.opt_state, ".mu", fc + "['kernel']").sharding.spec),
                "bias": str(leaf(state.params, fc + "['bias']").sharding.spec)}}

    result = {{"devices": jax.device_count()}}
    one = Trainer(base, f"{{out}}/one", progress=False).run()
    result["one"] = {{"metrics": metrics("one"), "tokens_per_s": one.tokens_per_s}}
    for mesh in ("data=8", "data=2,fsdp=4"):
        trainer = Trainer(dataclasses.replace(base, steps={STEPS}, mesh=mesh), f"{{out}}/{{mesh}}", progress=False)
        res = trainer.run()
        result[mesh] = {{"metrics": metrics(mesh), "specs": specs(trainer.state), "tokens_per_s": res.tokens_per_s}}
    resumed = Trainer(dataclasses.replace(base, mesh="data=2,fsdp=4"), f"{{out}}/data=2,fsdp=4", progress=False)
    result["resumed"] = {{"from": resumed.resumed_from, "specs": specs(resumed.state)}}
    resumed.run()
    result["resumed"]["metrics"] = metrics("data=2,fsdp=4")
    try:
        Trainer(dataclasses.replace(base, batch_size=12, mesh="data=8"), f"{{out}}/odd", progress=False)
    except NtjaxError as e:
        result["odd_batch_error"] = str(e)
    print("RESULT " + json.dumps(result))
""")


# One process of a two-host run: 4 CPU devices each, joined through the JAX_* variables.
HOST_SCRIPT = textwrap.dedent(f"""
    import dataclasses, sys
    from ntjax.core import config as C
    from ntjax.trainer import Trainer
    cfg = dataclasses.replace(C.PRESETS["tiny"], steps={HOST_STEPS}, schedule="constant", warmup=5, eval_every=10,
                              ckpt_every=10, probe_every=5, mesh="data=2,fsdp=4")
    Trainer(cfg, sys.argv[1], progress=False).run()
""")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_hosts(out: Path) -> list[subprocess.Popen]:
    """Two processes of 4 CPU devices each, one 8-device run, joined through the JAX_* variables."""
    port = free_port()
    out.mkdir(parents=True)
    return [subprocess.Popen([sys.executable, "-c", HOST_SCRIPT, str(out)], stdout=subprocess.DEVNULL,
                             stderr=open(out / f"stderr_{i}.txt", "w"),
                             env={**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
                                  "JAX_PLATFORMS": "cpu", "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}",
                                  "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": str(i)})
            for i in range(2)]


@pytest.fixture(scope="module")
def eight_devices(tmp_path_factory):
    """The measurements of the 8-device subprocess; `result["hosts"]` is the two-process run's folder
    (both jobs run at once: each is mostly compilation, which leaves cores idle)."""
    out = tmp_path_factory.mktemp("mesh")
    hosts = start_hosts(out / "hosts")
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(out)], capture_output=True, text=True, env=env,
                          timeout=600)
    try:
        for i, host in enumerate(hosts):
            host.wait(timeout=600)
            assert host.returncode == 0, (out / "hosts" / f"stderr_{i}.txt").read_text()[-3000:]
    finally:
        for host in hosts:
            if host.poll() is None:
                host.kill()
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(l for l in proc.stdout.splitlines() if l.startswith("RESULT "))
    result = json.loads(line[len("RESULT "):])
    for run in result.values():
        if isinstance(run, dict) and "metrics" in run:
            run["metrics"] = {int(k): v for k, v in run["metrics"].items()}
    result["hosts"] = out / "hosts"
    return result


def read_metrics(path) -> dict[int, dict]:
    rows: dict[int, dict] = {}
    for line in open(path):
        rec = json.loads(line)
        rows.setdefault(rec["step"], {}).update(rec)
    return rows


def series(run: dict, key: str, steps: range) -> np.ndarray:
    return np.array([float(run["metrics"][s][key]) for s in steps])


@pytest.mark.slow
@pytest.mark.parametrize("mesh", ["data=8", "data=2,fsdp=4"])
def test_mesh_trains_like_one_device(eight_devices, mesh):
    assert eight_devices["devices"] == 8
    one, sharded = eight_devices["one"], eight_devices[mesh]
    steps = range(1, STEPS + 1)
    np.testing.assert_allclose(series(sharded, "train/loss", steps), series(one, "train/loss", steps), rtol=1e-5)
    layer_norms = [k for k in one["metrics"][1] if k.startswith("grad_norm/")]
    assert len(layer_norms) > 20
    for key in layer_norms + ["train/grad_norm", "train/param_norm", "train/update_norm", "train/max_logit"]:
        np.testing.assert_allclose(series(sharded, key, steps), series(one, key, steps), rtol=1e-4, err_msg=key)
    evals = range(10, STEPS + 1, 10)
    np.testing.assert_allclose(series(sharded, "eval/loss", evals), series(one, "eval/loss", evals), rtol=1e-5)


@pytest.mark.slow
def test_fsdp_shards_parameters_and_adam_moments(eight_devices):
    fsdp = eight_devices["data=2,fsdp=4"]["specs"]
    # fc.kernel is [32, 128]: its largest axis is split 4 ways; the Adam moment follows; a bias is replicated.
    assert fsdp["kernel"] == fsdp["mu"] == str(P(None, "fsdp"))
    assert fsdp["kernel_shard_shape"] == [32, 32]
    assert fsdp["bias"] == str(P())
    data = eight_devices["data=8"]["specs"]
    assert data["kernel"] == str(P()) and data["kernel_shard_shape"] == [32, 128]  # pure data parallel


@pytest.mark.slow
def test_sharded_checkpoint_resumes_on_the_mesh(eight_devices):
    resumed, one = eight_devices["resumed"], eight_devices["one"]
    assert resumed["from"] == STEPS
    assert resumed["specs"]["kernel"] == str(P(None, "fsdp"))  # restored sharded, not gathered to one device
    assert sorted(resumed["metrics"]) == list(range(1, RESUMED_STEPS + 1))
    steps = range(STEPS + 1, RESUMED_STEPS + 1)
    np.testing.assert_allclose(series(resumed, "train/loss", steps), series(one, "train/loss", steps), rtol=1e-4)


@pytest.mark.slow
def test_noise_scale_from_data_shards(eight_devices):
    one, data = eight_devices["one"], eight_devices["data=8"]
    assert "train/gns_b_simple" not in one["metrics"][1]  # one device, no accumulation: nothing to compare
    b_simple = series(data, "train/gns_b_simple", range(1, STEPS + 1))
    assert np.all(np.isfinite(b_simple))
    # A fresh byte-level model's gradient is mostly signal: B_simple of order one sequence, well under the batch.
    assert 0.1 < b_simple[-1] < 8


@pytest.mark.slow
def test_indivisible_batch_is_one_clear_line(eight_devices):
    msg = eight_devices["odd_batch_error"]
    assert "batch size 12 is not divisible by the 8 batch shards" in msg and "\n" not in msg


@pytest.mark.slow
def test_two_processes_train_like_one_device(eight_devices):
    out, steps = eight_devices["hosts"], range(1, HOST_STEPS + 1)
    run0 = {"metrics": read_metrics(out / "metrics.jsonl")}  # process 0 writes the run's log
    run1 = {"metrics": read_metrics(out / "process_1" / "metrics.jsonl")}
    np.testing.assert_allclose(series(run0, "train/loss", steps), series(eight_devices["one"], "train/loss", steps),
                               rtol=1e-5)
    np.testing.assert_array_equal(series(run1, "train/loss", steps), series(run0, "train/loss", steps))
    assert (out / "checkpoints" / str(HOST_STEPS)).is_dir()  # written collectively by both processes


def test_parse_mesh():
    assert parse_mesh("data=8", 8) == {"data": 8, "fsdp": 1}
    assert parse_mesh(" fsdp=4 , data=2", 8) == {"data": 2, "fsdp": 4}
    for spec, words in [("data=3", "needs 3 devices but 8"), ("model=8", "unknown axis 'model'"),
                        ("data=2,data=4", "given twice"), ("data:8", "axis=size"), ("data=0,fsdp=8", "positive"),
                        ("", "axis=size")]:
        with pytest.raises(NtjaxError, match=words):
            parse_mesh(spec, 8)


def test_param_spec_splits_the_largest_divisible_axis():
    assert param_spec((32, 128), 4) == P(None, "fsdp")
    assert param_spec((256, 32), 4) == P("fsdp", None)
    assert param_spec((30, 12), 4) == P(None, "fsdp")  # 30 is larger but not divisible
    assert param_spec((30, 15), 4) == P()
    assert param_spec((128,), 4) == P()  # vectors stay whole
    assert param_spec((), 4) == P()
    assert param_spec((32, 128), 1) == P()


def test_cli_bad_mesh_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "ntjax.cli", "train", "--preset", "tiny", "--steps", "2",
                           "--mesh", "data=3", "--out", str(tmp_path / "run")], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert proc.returncode == 2
    assert "needs 3 devices but 1 are available" in proc.stderr
    assert "Traceback" not in proc.stderr
