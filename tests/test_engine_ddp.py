"""Two CPU processes under torchrun (gloo) train to the same weights and metrics as one process with the same
global batch: the sampler shards each global batch, DDP averages gradients, and metric sums are all-reduced."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from engine_helpers import restore_threads, tiny_config, tiny_images  # noqa: F401 (autouse fixture)
from safetensors.torch import load_file

from bixt.engine.run import fit

_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from engine_helpers import tiny_config, tiny_images
from bixt.engine.run import fit
from bixt.engine.distributed import shutdown_distributed

data = tiny_images()
fit(tiny_config({out!r}, "--run_name", "ddp"), train_set=data, eval_set=tiny_images(n=21, seed=1))
shutdown_distributed()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_two_processes(tmp_path: Path, name: str, script: str, timeout: int) -> subprocess.CompletedProcess:
    """`script` (formatted with the tests' folder and tmp_path) as 2 torchrun processes on this machine."""
    path = tmp_path / f"{name}.py"
    path.write_text(script.format(tests=str(Path(__file__).parent), out=str(tmp_path)))
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--nnodes=1",
        f"--master_port={_free_port()}", str(path),
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_two_process_gloo_run_matches_single_process(tmp_path):
    done = _run_two_processes(tmp_path, "ddp", _SCRIPT, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    single = fit(
        tiny_config(str(tmp_path), "--run_name", "single"), train_set=tiny_images(), eval_set=tiny_images(21, 1)
    )
    ddp_weights = load_file(tmp_path / "ddp" / "checkpoints" / "last" / "model.safetensors")
    single_weights = load_file(single.last_checkpoint / "model.safetensors")
    assert ddp_weights.keys() == single_weights.keys()
    for key, value in single_weights.items():
        # Float tolerance: key biases get a gradient that is zero in exact arithmetic (softmax ignores a shift of
        # all scores), and Adam scales its rounding noise, which differs with the reduction order, up to ~lr * 1e-2.
        torch.testing.assert_close(ddp_weights[key], value, rtol=1e-3, atol=1e-4, msg=key)
    moved = load_file(single.run_dir / "checkpoints" / "last" / "model.safetensors")["head.fc.weight"].abs().sum()
    assert moved > 0  # the zero-initialised classifier trained, so the comparison is not between two initial states
    # The evaluation set (21 items) does not split evenly over 2 processes: each item still counts exactly once.
    ddp_eval = [json.loads(r) for r in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    single_eval = [json.loads(r) for r in single.metrics_path.read_text().splitlines()]
    for a, b in zip(
        (r for r in ddp_eval if r["kind"] == "eval"), (r for r in single_eval if r["kind"] == "eval"), strict=True
    ):
        assert a["top1"] == pytest.approx(b["top1"]) and a["loss"] == pytest.approx(b["loss"], rel=1e-4)
    assert not (tmp_path / "ddp" / "checkpoints" / "last").resolve().name.startswith(".")


_NAN_SCRIPT = """
import os, sys
sys.path.insert(0, {tests!r})
from engine_helpers import tiny_config, tiny_images
from torch.utils.data import TensorDataset
from bixt.engine.distributed import shutdown_distributed
from bixt.engine.run import fit
from bixt.engine.tasks import BatchError

data = tiny_images()
images, labels = data.tensors
broken = images.clone()
broken[21, 0, 3, 3] = float("nan")  # in one process's shard only
try:
    fit(tiny_config({out!r}, "--run_name", "nan"), train_set=data, eval_set=TensorDataset(broken, labels))
except BatchError as error:
    # one write of the whole line: both processes share stdout, and print() may write the text and its newline
    # separately, letting the other process's line land in between
    sys.stdout.write(f"rank {{os.environ['RANK']}}: {{error}}\\n")
    sys.stdout.flush()
    sys.exit(3)
finally:
    shutdown_distributed()
"""


@pytest.mark.slow
def test_a_bad_batch_in_one_process_stops_both(tmp_path):
    done = _run_two_processes(tmp_path, "nan", _NAN_SCRIPT, timeout=300)  # a process left waiting: timeout
    assert done.returncode != 0
    lines = sorted(line for line in done.stdout.splitlines() if line.startswith("rank "))
    assert len(lines) == 2, done.stdout[-3000:] + done.stderr[-3000:]
    assert any("holds NaN or infinite values in input 'images'" in line for line in lines)
    assert any("of another process failed the batch check" in line for line in lines)


_BATCH_NORM_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from engine_helpers import tiny_config, tiny_images
from bixt.engine.run import fit
from bixt.engine.distributed import shutdown_distributed

stem = "{{img_size: 16, in_chans: 1, num_classes: 3, embed_dim: 16, depth: 2, num_heads: 2, num_latents: 4}}"
config = tiny_config({out!r}, "--run_name", "bn", "--model.name", "bixt_ti_cnv_l64_d13_p8", "--model.options", stem)
fit(config, train_set=tiny_images(), eval_set=tiny_images(n=21, seed=1))
shutdown_distributed()
"""


@pytest.mark.slow
def test_two_process_evaluation_is_the_checkpoints(tmp_path):
    # The conv stem's batch norms update their running statistics in each process from its own half of the batch;
    # the checkpoint holds rank 0's. The evaluation logged during training must be that checkpoint's, not a mix
    # in which rank 1 evaluates its shard with statistics the checkpoint does not have.
    from bixt.engine.builders import build_model
    from bixt.engine.config import parse_config

    done = _run_two_processes(tmp_path, "bn", _BATCH_NORM_SCRIPT, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    run = tmp_path / "bn"
    model = build_model(parse_config(["-c", str(run / "config.yaml")]))
    state = load_file(run / "checkpoints" / "last" / "model.safetensors")
    assert any("running_mean" in key for key in state)  # the model has the batch norms this is about
    model.load_state_dict(state)
    model.eval()
    images, labels = tiny_images(n=21, seed=1).tensors
    with torch.no_grad():
        loss = torch.nn.functional.cross_entropy(model(images), labels).item()
    logged = [json.loads(r) for r in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r for r in logged if r["kind"] == "eval"][-1]["loss"] == pytest.approx(loss, rel=1e-5)
