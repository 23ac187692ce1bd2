"""Cost of verification: sha256 of a checkpoint's files against its whole save and load, and of a fetched data set.

Run from the repository root: ``python benchmarks/verify_cost.py`` (one thread; the data part needs
``bixt data fetch fashion-mnist``).
"""

import tempfile
import time
from pathlib import Path

import torch

import bixt
from bixt.data.fetch import fetched_dir
from bixt.engine.checkpoint import Progress, load_training_state, load_weights, save_checkpoint
from bixt.engine.config import load_config
from bixt.fileio import sha256_file

torch.set_num_threads(1)
main = load_config("configs/fashion-mnist.yaml").model
cases = {
    "main job (configs/fashion-mnist.yaml)": lambda: bixt.create_model(main.name, **main.options),
    "bixt_ti_l64_p16": lambda: bixt.create_model("bixt_ti_l64_p16"),
}
for name, make in cases.items():
    model = make()
    optimizer = torch.optim.AdamW(model.parameters())
    model(model.example_input(2)).sum().backward()
    optimizer.step()
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        checkpoint = save_checkpoint(Path(tmp), model=model, optimizer=optimizer, progress=Progress(step=1))
        save = time.perf_counter() - t
        files = [checkpoint / "model.safetensors", checkpoint / "training_state.pt"]
        t = time.perf_counter()
        for f in files:
            sha256_file(f)
        hashing = time.perf_counter() - t
        t = time.perf_counter()
        load_training_state(checkpoint)
        load_weights(model, checkpoint)
        load = time.perf_counter() - t
        size = sum(f.stat().st_size for f in files) / 1e6
    print(
        f"{name}: {size:.1f} MB; save {save * 1000:.0f} ms, load {load * 1000:.0f} ms (both verify); "
        f"sha256 of the files {hashing * 1000:.0f} ms (once at save, once at load)"
    )

t = time.perf_counter()
fetched_dir("fashion-mnist")  # the first call in a process hashes every file
print(f"fashion-mnist: verified in {(time.perf_counter() - t) * 1000:.0f} ms (once per process)")
