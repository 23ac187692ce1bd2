"""Every bad input gets a clear error: a table of well over 100 of them, across the Python API (model configs, model
inputs, run configs), the command line, data files and checkpoints. Each case names the error type and what the
message must say (what was expected); the error must be raised by bixt's own code, not from inside torch, the
standard library or a dependency, and a run that fails leaves nothing on disk."""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from engine_helpers import restore_threads, tiny_config, tiny_images  # noqa: F401 (autouse fixture)

import bixt
from bixt.cli import main as cli_main
from bixt.data import load_dataset
from bixt.data.cache import sha256_file
from bixt.data.fetch import fetch_dataset, fetched_dir
from bixt.engine.checkpoint import load_training_state, read_meta, resolve_checkpoint
from bixt.engine.config import ConfigError, parse_config
from bixt.engine.evaluation import evaluate_checkpoint
from bixt.engine.run import fit
from bixt.fileio import DamagedFileError

BIXT_DIR = Path(bixt.__file__).resolve().parent
TINY = {"img_size": 32, "embed_dim": 16, "depth": 1, "num_heads": 2, "num_latents": 4, "num_classes": 3}


class CliFailed(Exception):
    """A command that exited non-zero; the message is what it printed on stderr."""


class Env:
    """Files the cases break: a finished tiny run, a saved model, a fetched-looking data set; fresh copies each."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.counter = itertools.count()
        data = tiny_images()
        self.run = fit(tiny_config(str(root / "runs"), "--run_name", "r"), train_set=data, eval_set=data).run_dir
        self.model_dir = root / "model"
        bixt.create_model("bixt_ti_l64_p16", **TINY).save_pretrained(self.model_dir)
        cache = root / "cache" / "fake"
        cache.mkdir(parents=True)
        (cache / "x.bin").write_bytes(bytes(range(256)) * 4)
        files = {"x.bin": {"sha256": sha256_file(cache / "x.bin"), "size": 1024}}
        (cache / "manifest.json").write_text(json.dumps({"name": "fake", "files": files}))

    def fresh(self, name: str) -> Path:
        return self.root / f"{name}-{next(self.counter)}"

    def copy(self, what: Path) -> Path:
        target = self.fresh(what.name)
        shutil.copytree(what, target, symlinks=True)
        return target

    def checkpoint(self) -> Path:
        """A copy of the run; its last checkpoint."""
        return resolve_checkpoint(self.copy(self.run), prefer="last")

    def cache(self) -> Path:
        return self.copy(self.root / "cache")


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> Env:
    threads = torch.get_num_threads()
    try:
        return Env(tmp_path_factory.mktemp("bad_inputs"))
    finally:
        torch.set_num_threads(threads)


# --- what the cases call ----------------------------------------------------------------------------------------


def model(name: str = "bixt_ti_l64_p16", **overrides: Any) -> Callable[[Env], Any]:
    base = {} if name != "bixt_ti_l64_p16" else dict(TINY)
    return lambda env: bixt.create_model(name, **(base | overrides))


def forward(name: str, *inputs: Callable[[], Any], **overrides: Any) -> Callable[[Env], Any]:
    small = {"embed_dim": 16, "depth": 1, "num_heads": 2, **overrides}
    if name.startswith("bixt_ti") or name.startswith("vit"):
        small |= {"img_size": 32, "num_classes": 3}
    if not name.startswith("vit"):
        small.setdefault("num_latents", 4)
    return lambda env: bixt.create_model(name, **small)(*(make() for make in inputs))


def images(*shape: int, dtype: torch.dtype = torch.float32, fill: float | None = None) -> Callable[[], torch.Tensor]:
    def make() -> torch.Tensor:
        x = torch.full(shape, fill) if fill is not None else torch.rand(shape)
        return x.to(dtype) if dtype.is_floating_point else (x * 255).to(dtype)

    return make


def ids(*shape: int, low: int = 1, high: int = 257, dtype: torch.dtype = torch.long) -> Callable[[], torch.Tensor]:
    return lambda: torch.randint(low, high, shape).to(dtype)


def parse(*argv: str) -> Callable[[Env], Any]:
    return lambda env: parse_config(list(argv))


def recipe(text: str) -> Callable[[Env], Any]:
    def run(env: Env) -> Any:
        path = env.fresh("recipe").with_suffix(".yaml")
        path.write_bytes(text.encode("latin-1"))
        return parse_config(["-c", str(path)])

    return run


def train(*argv: str, data: Callable[[], Any] | None = tiny_images) -> Callable[[Env], Any]:
    """fit() of the tiny recipe with ``argv`` on ``data`` (None: the recipe's registry set); asserts the failed run
    wrote nothing."""

    def run(env: Env) -> Any:
        out = env.fresh("runs")
        dataset = data() if data is not None else None
        try:
            return fit(tiny_config(str(out), *argv), train_set=dataset, eval_set=dataset)
        finally:
            assert not out.exists(), f"a failed run wrote {sorted(p.name for p in out.rglob('*'))}"

    return run


def cli(*argv: str | Callable[[Env], str]) -> Callable[[Env], Any]:
    """The ``bixt`` command in this process; raises CliFailed(stderr) on a non-zero exit, never a traceback."""

    def run(env: Env) -> Any:
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = cli_main([arg(env) if callable(arg) else arg for arg in argv])
            except SystemExit as exit:  # argparse's way of refusing an argument: usage and message, status 2
                code = exit.code
        assert "Traceback" not in err.getvalue()
        if code != 0:
            raise CliFailed(f"exit {code}: {err.getvalue()}")
        return code

    return run


def broken(path_of: Callable[[Env], Path], damage: Callable[[Path], None], then: Callable[[Path], Any]):
    """Damage a file of a fresh copy (``path_of`` gives the file), then call ``then`` on its directory."""

    def run(env: Env) -> Any:
        path = path_of(env)
        damage(path)
        return then(path.parent)

    return run


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: max(path.stat().st_size // 2, 1)])


def flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) - 20] ^= 0xFF
    path.write_bytes(bytes(data))


def write(text: str) -> Callable[[Path], None]:
    return lambda path: path.write_text(text)


def edit_json(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def apply(path: Path) -> None:
        content = json.loads(path.read_text())
        change(content)
        path.write_text(json.dumps(content))

    return apply


def in_checkpoint(name: str) -> Callable[[Env], Path]:
    return lambda env: env.checkpoint() / name


def in_model(name: str) -> Callable[[Env], Path]:
    return lambda env: env.copy(env.model_dir) / name


def in_cache(name: str) -> Callable[[Env], Path]:
    return lambda env: env.cache() / "fake" / name


def official(content: Callable[[Env], bytes | dict]) -> Callable[[Env], Any]:
    def run(env: Env) -> Any:
        path = env.fresh("official").with_suffix(".pth")
        made = content(env)
        if isinstance(made, bytes):
            path.write_bytes(made)
        else:
            torch.save(made, path)
        return bixt.load_official(bixt.create_model("bixt_ti_l64_p16", **TINY), path)

    return run


def good_official_bytes(env: Env) -> bytes:
    path = env.fresh("good").with_suffix(".pth")
    torch.save({"state_dict": bixt.create_model("bixt_ti_l64_p16", **TINY).state_dict()}, path)
    return path.read_bytes()


class Opaque:
    """Pickled as a class weights_only=True refuses."""


def _remove_key(key: str) -> Callable[[dict], None]:
    return lambda content: content.pop(key)


def _set(key: str, value: Any) -> Callable[[dict], None]:
    return lambda content: content.__setitem__(key, value)


def _set_config(key: str, value: Any) -> Callable[[dict], None]:
    return lambda content: content["config"].__setitem__(key, value)


def _fake_load(env_cache: Path) -> Any:
    return fetched_dir("fake", env_cache.parent)


@dataclass(frozen=True)
class Bad:
    id: str
    call: Callable[[Env], Any]
    error: type[BaseException]
    match: str  # a regex the message must contain: what was expected, or which file


_TEXT = "bixt_lra_text"
_POINTS = "bixt_points_cls"
_GROUPED = {"num_groups": 4, "group_size": 4}

CASES = [
    # --- model configs (Python API) --------------------------------------------------------------------------------
    Bad("depth bool", model(depth=True), TypeError, r"depth must be an integer, got True"),
    Bad("depth zero", model(depth=0), ValueError, r"depth must be a positive integer, got 0"),
    Bad("depth float", model(depth=2.5), TypeError, r"depth must be an integer"),
    Bad("embed_dim str", model(embed_dim="16"), TypeError, r"embed_dim must be an integer, got '16'"),
    Bad("heads do not divide", model(num_heads=5), ValueError, r"embed_dim \(16\) must be divisible by num_heads"),
    Bad("qkv_bias str", model(qkv_bias="no"), TypeError, r"qkv_bias must be a bool"),
    Bad("qkv_bias int", model(qkv_bias=1), TypeError, r"qkv_bias must be a bool"),
    Bad("one_sided_last str", model(one_sided_last="yes"), TypeError, r"one_sided_last must be a bool"),
    Bad("mlp_ratio zero", model(mlp_ratio=0), ValueError, r"mlp_ratio must be a finite number > 0"),
    Bad("mlp_ratio negative", model(mlp_ratio=-1.0), ValueError, r"mlp_ratio must be a finite number > 0"),
    Bad("mlp_ratio nan", model(mlp_ratio=float("nan")), ValueError, r"mlp_ratio must be a finite number > 0"),
    Bad("mlp_ratio str", model(mlp_ratio="4"), TypeError, r"mlp_ratio must be a number"),
    Bad("num_classes str", model(num_classes="10"), TypeError, r"num_classes must be an integer, got '10'"),
    Bad("num_classes float", model(num_classes=10.0), TypeError, r"num_classes must be an integer"),
    Bad("num_classes negative", model(num_classes=-1), ValueError, r"num_classes must be >= 0"),
    Bad("tokenizer unknown", model(tokenizer="patch7"), ValueError, r"tokenizer must be one of 'patch16'"),
    Bad("tokenizer int", model(tokenizer=16), TypeError, r"tokenizer must be one of"),
    Bad("img_size vs stride", model(img_size=40), ValueError, r"multiple of the tokenizer stride \(16\)"),
    Bad("img_size float", model(img_size=32.0), TypeError, r"img_size must be an integer"),
    Bad("in_chans zero", model(in_chans=0), ValueError, r"in_chans must be a positive integer"),
    Bad("num_latents None", model(num_latents=None), TypeError, r"num_latents must be an integer"),
    Bad("drop_path_rate 1", model(drop_path_rate=1.0), ValueError, r"drop_path_rate must be in \[0, 1\)"),
    Bad("drop_rate negative", model(drop_rate=-0.1), ValueError, r"drop_rate must be in \[0, 1\)"),
    Bad("attn_drop_rate str", model(attn_drop_rate="0.1"), TypeError, r"attn_drop_rate must be a number"),
    Bad("layer_scale zero", model(layer_scale_init=0.0), ValueError, r"layer_scale_init must be positive or None"),
    Bad("layer_scale str", model(layer_scale_init="1e-5"), TypeError, r"layer_scale_init must be a number or None"),
    Bad("conv stem width", model(tokenizer="conv16", embed_dim=18, num_heads=2), ValueError, r"divisible by 8"),
    Bad("unknown option", model(embed_dimm=8), TypeError, r"embed_dimm"),
    Bad("unknown model", lambda env: bixt.create_model("bixt_nonexistent"), ValueError, r"bixt_nonexistent"),
    Bad("text vocab zero", model(_TEXT, vocab_size=0), ValueError, r"vocab_size must be a positive integer"),
    Bad("text max_length", model(_TEXT, max_length=-5), ValueError, r"max_length must be a positive integer"),
    Bad("text encoder", model(_TEXT, encoder="rnn"), ValueError, r"encoder must be one of 'bixt', 'transformer'"),
    Bad("text positions", model(_TEXT, positions="rope"), ValueError, r"positions must be one of 'fourier'"),
    Bad("text ngram even", model(_TEXT, ngram=4), ValueError, r"ngram must be odd"),
    Bad("text ngram zero", model(_TEXT, ngram=0), ValueError, r"ngram must be a positive integer"),
    Bad("text random_offsets", model(_TEXT, random_offsets="yes"), TypeError, r"random_offsets must be a bool"),
    Bad("retrieval classes", model("bixt_lra_retrieval", num_classes=0), ValueError, r"num_classes >= 1"),
    Bad("points num_points", model(_POINTS, num_points=0), ValueError, r"num_points must be a positive integer"),
    Bad("points coord bool", model(_POINTS, coord_dims=True), TypeError, r"coord_dims must be an integer"),
    Bad("points tokenizer", model(_POINTS, tokenizer="voxel"), ValueError, r"tokenizer must be one of 'naive'"),
    Bad("points max_freq", model(_POINTS, max_freq=0.0), ValueError, r"max_freq must be a finite number > 0"),
    Bad("points group_size", model(_POINTS, group_size=0), ValueError, r"group_size must be a positive integer"),
    Bad("points in_features", model(_POINTS, in_features=-1), ValueError, r"in_features must be >= 0"),
    Bad("seg decoder", model("bixt_ti_l64_d13_p16s8_seg_linear", decoder="unet"), ValueError, r"decoder must be one"),
    Bad("seg fpn depth", model("bixt_ti_l64_d13_p16s8_seg_linear", decoder="fpn", depth=2), ValueError, r"depth must"),
    Bad("seg classes", model("bixt_ti_l64_d13_p16s8_seg_linear", num_classes=0), ValueError, r"num_classes must be"),
    Bad("vit img_size", model("vit_ti_p16", img_size=40), ValueError, r"multiple of the patch size 16"),
    Bad("partseg categories", model("bixt_points_partseg", num_categories=-1), ValueError, r"num_categories must be"),
    # --- model inputs (Python API) ---------------------------------------------------------------------------------
    Bad("image float64", forward("bixt_ti_l64_p16", images(2, 3, 32, 32, dtype=torch.float64)), TypeError,
        r"expected images of the model's dtype torch\.float32, got torch\.float64"),
    Bad("image float16", forward("bixt_ti_l64_p16", images(2, 3, 32, 32, dtype=torch.float16)), TypeError,
        r"expected images of the model's dtype torch\.float32, got torch\.float16"),
    Bad("image uint8", forward("bixt_ti_l64_p16", images(2, 3, 32, 32, dtype=torch.uint8)), TypeError,
        r"expected float images .*got torch\.uint8.*x\.float\(\) / 255"),
    Bad("image int64", forward("bixt_ti_l64_p16", images(2, 3, 32, 32, dtype=torch.int64)), TypeError,
        r"expected float images"),
    Bad("image 3-D", forward("bixt_ti_l64_p16", images(3, 32, 32)), ValueError, r"expected images of shape \(batch"),
    Bad("image channels", forward("bixt_ti_l64_p16", images(2, 1, 32, 32)), ValueError, r"expected 3 input channels"),
    Bad("image size", forward("bixt_ti_l64_p16", images(2, 3, 30, 32)), ValueError, r"multiples of the tokenizer"),
    Bad("image list", forward("bixt_ti_l64_p16", lambda: [[0.0]]), TypeError, r"expected images as a torch\.Tensor"),
    Bad("image nan (checked)", lambda env: bixt.create_model("bixt_ti_l64_p16", **TINY)(
        torch.full((1, 3, 32, 32), float("nan")), check_finite=True), ValueError, r"NaN or infinite"),
    Bad("vit float64", forward("vit_ti_p16", images(2, 3, 32, 32, dtype=torch.float64)), TypeError,
        r"expected images of the model's dtype"),
    Bad("points float64", forward(_POINTS, images(2, 64, 3, dtype=torch.float64), **_GROUPED), TypeError,
        r"point coordinates/features of the model's dtype torch\.float32, got torch\.float64"),
    Bad("points int", forward(_POINTS, images(2, 64, 3, dtype=torch.int64), **_GROUPED), TypeError,
        r"expected float point coordinates"),
    Bad("points nan", forward(_POINTS, images(2, 64, 3, fill=float("nan")), **_GROUPED), ValueError,
        r"NaN or infinite"),
    Bad("points inf", forward(_POINTS, images(2, 64, 3, fill=float("inf")), **_GROUPED), ValueError,
        r"NaN or infinite"),
    Bad("points 2-D", forward(_POINTS, images(64, 3), **_GROUPED), ValueError, r"expected points of shape"),
    Bad("points too few", forward(_POINTS, images(2, 2, 3), **_GROUPED), ValueError, r"needs at least 4 points"),
    Bad("points bad mask", forward(_POINTS, images(2, 64, 3), lambda: torch.ones(2, 64), **_GROUPED), ValueError,
        r"point mask must be a bool tensor"),
    Bad("ids float", forward(_TEXT, images(2, 10)), TypeError, r"expected integer token ids"),
    Bad("ids bool", forward(_TEXT, ids(2, 10, low=0, high=2, dtype=torch.bool)), TypeError, r"integer token ids"),
    Bad("ids out of vocab", forward(_TEXT, ids(2, 10, low=300, high=400)), ValueError, r"must lie in \[0, 257\)"),
    Bad("ids negative", forward(_TEXT, ids(2, 10, low=-3, high=-1)), ValueError, r"must lie in \[0, 257\)"),
    Bad("ids too long", forward(_TEXT, ids(1, 5000)), ValueError, r"exceeds the configured maximum of 4096"),
    Bad("ids 1-D", forward(_TEXT, ids(10)), ValueError, r"shape \(batch, length\)"),
    Bad("ids empty length", forward(_TEXT, ids(2, 0)), ValueError, r"length >= 1"),
    Bad("partseg category", forward("bixt_points_partseg", images(2, 64, 3), lambda: torch.tensor([0, 99])),
        ValueError, r"object categories must lie in \[0, 16\)"),
    Bad("partseg no category", forward("bixt_points_partseg", images(2, 64, 3)), ValueError, r"object-category index"),
    # --- run configs: parsing --------------------------------------------------------------------------------------
    Bad("batch_size word", parse("--batch_size", "many"), ConfigError, r"batch_size must be an integer, got 'many'"),
    Bad("misspelt key", parse("--batch_sise", "8"), ConfigError, r"did you mean: batch_size"),
    Bad("optimizer", parse("--optim.name", "sgd"), ConfigError, r"optim\.name must be one of 'adamw', 'lamb'"),
    Bad("betas one", parse("--optim.betas", "[0.9]"), ConfigError, r"optim\.betas must be a list of 2"),
    Bad("progress word", parse("--progress", "maybe"), ConfigError, r"progress must be a bool"),
    Bad("threads float", parse("--threads", "1.5"), ConfigError, r"threads must be an integer or None"),
    Bad("options yaml", parse("--model.options", "{a: [1"), ConfigError, r"model\.options must be a mapping"),
    Bad("task", parse("--task", "detection"), ConfigError, r"task must be one of 'classification'"),
    Bad("precision", parse("--precision", "fp8"), ConfigError, r"precision must be one of"),
    Bad("collate", parse("--data.collate", "ragged"), ConfigError, r"data\.collate must be one of 'stack', 'padded'"),
    Bad("schedule.per", parse("--schedule.per", "month"), ConfigError, r"schedule\.per must be one of"),
    Bad("dash value", parse("--run_name", "-x"), ConfigError, r"must be joined to its key: --run_name=-"),
    Bad("missing value", parse("--device"), ConfigError, r"--device: expected one argument"),
    Bad("recipe missing", parse("-c", "/nonexistent/recipe.yaml"), ConfigError, r"/nonexistent/recipe\.yaml not found"),
    Bad("recipe syntax", recipe("optim:\n  lr: [1\nbatch_size: 3\n"), ConfigError,
        r"recipe-\d+\.yaml: not valid YAML at line 3, column \d+"),
    Bad("recipe indent", recipe("optim:\n  lr: 0.1\n   wd: 3\n"), ConfigError, r"not valid YAML at line 3"),
    Bad("recipe list", recipe("- 1\n- 2\n"), ConfigError, r"a recipe must be a mapping of keys"),
    Bad("recipe binary", recipe("\xff\xfe\x00"), ConfigError, r"recipe-\d+\.yaml: not"),
    Bad("recipe unknown", recipe("optim:\n  lrr: 0.1\n"), ConfigError, r"did you mean: optim\.lr"),
    Bad("recipe type", recipe("batch_size: big\n"), ConfigError, r"batch_size must be an integer, got 'big'"),
    # --- run configs: checked before the run directory exists -----------------------------------------------------
    Bad("lr negative", train("--optim.lr", "-1e-3"), ConfigError, r"optim\.lr.* must be > 0, got -0\.001"),
    Bad("lr zero", train("--optim.lr", "0"), ConfigError, r"must be > 0, got 0\.0"),
    Bad("warmup_lr negative", train("--schedule.warmup_lr", "-1"), ConfigError, r"schedule\.warmup_lr must be >= 0"),
    Bad("min_lr negative", train("--schedule.min_lr", "-1e-5"), ConfigError, r"schedule\.min_lr must be >= 0"),
    Bad("eval_batch_size 0", train("--eval_batch_size", "0"), ConfigError, r"eval_batch_size must be >= 1"),
    Bad("threads 0", train("--threads", "0"), ConfigError, r"threads must be >= 1"),
    Bad("processes 0", train("--processes", "0"), ConfigError, r"processes must be >= 1 or 'auto', got 0"),
    Bad("processes word", parse("--processes", "many"), ConfigError, r"processes"),
    Bad("max_steps 0", train("--max_steps", "0"), ConfigError, r"max_steps must be >= 1"),
    Bad("checkpoint every 0", train("--checkpoint_every_steps", "0"), ConfigError, r"checkpoint_every_steps must be"),
    Bad("keep 0", train("--keep_checkpoints", "0"), ConfigError, r"keep_checkpoints must be >= 1"),
    Bad("log every 0", train("--log_every_steps", "0"), ConfigError, r"log_every_steps must be >= 1"),
    Bad("eval every 0", train("--eval_every_epochs", "0"), ConfigError, r"eval_every_epochs must be >= 1"),
    Bad("weight decay", train("--optim.weight_decay", "-0.1"), ConfigError, r"optim\.weight_decay must be >= 0"),
    Bad("eps zero", train("--optim.eps", "0"), ConfigError, r"optim\.eps.* must be > 0"),
    Bad("beta one", train("--optim.betas", "[0.9, 1.0]"), ConfigError, r"optim\.betas must be in \[0, 1\)"),
    Bad("clip zero", train("--optim.clip_grad_norm", "0"), ConfigError, r"clip_grad_norm must be > 0"),
    Bad("label smoothing", train("--augment.label_smoothing", "1.0"), ConfigError, r"label_smoothing must be in"),
    Bad("erase probability", train("--augment.erase", "1.5"), ConfigError, r"augment\.erase is a probability in"),
    Bad("mixup negative", train("--augment.mixup_alpha", "-1"), ConfigError, r"augment\.mixup_alpha must be >= 0"),
    Bad("pad negative", train("--augment.pad", "-1"), ConfigError, r"augment\.pad must be >= 0"),
    Bad(
        "pad before normalising raw pixels",
        train("--augment.pad", "2", "--augment.pad_before_normalize", "true"),
        ConfigError,
        r"pad_before_normalize needs augment\.image=normalize and augment\.pad >= 1, got image='none', pad=2",
    ),
    Bad("workers negative", train("--data.num_workers", "-1"), ConfigError, r"data\.num_workers must be >= 0"),
    Bad("train_limit 0", train("--data.train_limit", "0"), ConfigError, r"data\.train_limit must be >= 1"),
    Bad("ema 1", train("--ema_decay", "1.0"), ConfigError, r"ema_decay must be in \(0, 1\)"),
    Bad("epochs 0", train("--schedule.epochs", "0"), ConfigError, r"schedule\.epochs >= 1"),
    Bad("warmup > epochs", train("--schedule.warmup_epochs", "5"), ConfigError, r"warmup_epochs <= epochs"),
    Bad("batch 0", train("--batch_size", "0"), ConfigError, r"batch_size and grad_accum_steps must be >= 1"),
    Bad("accum 0", train("--grad_accum_steps", "0"), ConfigError, r"must be >= 1"),
    Bad("not divisible", train("--batch_size", "9", "--grad_accum_steps", "2"), ConfigError, r"not divisible"),
    Bad("fp16 on cpu", train("--precision", "fp16", "--device", "cpu"), ConfigError, r"fp16 needs a CUDA device"),
    Bad("device cuda", train("--device", "cuda"), ConfigError, r"device 'cuda' asked for, but .* sees none"),
    Bad("device cuda:3", train("--device", "cuda:3"), ConfigError, r"device 'cuda:3'"),
    Bad("device name", train("--device", "gpu0"), ConfigError, r"'gpu0' is not a device name \(expected auto, cpu"),
    Bad("device meta", train("--device", "meta"), ConfigError, r"training runs on cpu, cuda"),
    Bad("labels > classes", train("--model.options", "{img_size: 16, in_chans: 1, num_classes: 2, embed_dim: 16, "
        "depth: 1, num_heads: 2, num_latents: 4}", data=lambda: tiny_images(seed=1)), ConfigError,
        r"has label 2, but model .* has 2 classes .*model\.options\.num_classes"),
    Bad("task vs data", train("--task", "semantic_segmentation"), ConfigError,
        r"task 'semantic_segmentation' needs logits \(batch, classes, height, width\).*is the task right"),
    Bad("float labels", train(data=lambda: torch.utils.data.TensorDataset(tiny_images().tensors[0],
        torch.rand(48))), ConfigError, r"needs integer labels; .* gives torch\.float32"),
    Bad("float64 images", train(data=lambda: torch.utils.data.TensorDataset(tiny_images().tensors[0].double(),
        tiny_images().tensors[1])), ConfigError, r"cannot take the data .*model's dtype torch\.float32"),
    Bad("model name", train("--model.name", "bixt_nonexistent"), ConfigError, r"unknown model 'bixt_nonexistent'"),
    Bad("model option", train("--model.options", "{embed_dimm: 8}"), ConfigError, r"unknown option.*valid options"),
    Bad("model option type", train("--model.options", "{depth: true}"), ConfigError, r"depth must be an integer"),
    Bad("stride", train("--augment.pad", "1"), ConfigError, r"cannot take the data.*tokenizer stride 4, got 18x18"),
    Bad("too few items", train("--batch_size", "64"), ConfigError, r"smaller than one global batch"),
    Bad("output_dir file", lambda env: fit(tiny_config(str(Path(bixt.__file__)), "--run_name", "x")), ConfigError,
        r"output_dir .*__init__\.py cannot be made: .* is a file"),
    Bad("run_name taken", lambda env: fit(tiny_config(str(env.run.parent), "--run_name", "r"),
        train_set=tiny_images(), eval_set=tiny_images()), ConfigError, r"/r already exists.*bixt train --resume"),
    Bad("resume nowhere", train("--resume", "/nonexistent/run"), ConfigError, r"cannot resume from /nonexistent/run"),
    Bad("resume other model", lambda env: fit(tiny_config(str(env.root), "--resume", str(env.copy(env.run)),
        "--model.options", "{img_size: 16, in_chans: 1, num_classes: 3, embed_dim: 32, depth: 2, num_heads: 2, "
        "num_latents: 4}"), train_set=tiny_images(), eval_set=tiny_images()), ConfigError,
        r"model\.options: .* in the run, .*embed_dim': 32.* now"),
    Bad("data not fetched", train("--data.name", "mnist", "--data.cache_dir", "/nonexistent/cache", data=None),
        ConfigError,
        r"data set 'mnist' \(train\) is missing.*bixt data fetch mnist"),
    # --- data files and the data API -------------------------------------------------------------------------------
    Bad("data flipped", broken(in_cache("x.bin"), flip, _fake_load), DamagedFileError,
        r"fake/x\.bin no longer match .*bixt data fetch fake"),
    Bad("data truncated", broken(in_cache("x.bin"), truncate, _fake_load), FileNotFoundError,
        r"x\.bin missing or of the wrong size.*bixt data fetch fake"),
    Bad("data deleted", broken(in_cache("x.bin"), Path.unlink, _fake_load), FileNotFoundError, r"x\.bin missing"),
    Bad("manifest garbage", broken(in_cache("manifest.json"), write("{not json"), _fake_load), FileNotFoundError,
        r"no readable manifest\.json.*bixt data fetch fake"),
    Bad("manifest list", broken(in_cache("manifest.json"), write("[1, 2]"), _fake_load), FileNotFoundError,
        r"no readable manifest\.json"),
    Bad("manifest deleted", broken(in_cache("manifest.json"), Path.unlink, _fake_load), FileNotFoundError,
        r"no readable manifest\.json"),
    Bad("unknown data set", lambda env: load_dataset("nonexistent"), ValueError, r"unknown data set 'nonexistent'"),
    Bad("unknown split", lambda env: load_dataset("mnist", split="val"), ValueError, r"has splits \('train', 'test'\)"),
    Bad("limit 0", lambda env: load_dataset("listops", "val", cache_dir=env.root, limit=0, num_examples=4),
        ValueError, r"limit must be a positive number of items"),
    Bad("unknown option data", lambda env: load_dataset("listops", "val", cache_dir=env.root, bogus=1), TypeError,
        r"bogus"),
    Bad("fetch unknown", lambda env: fetch_dataset("nonexistent", env.root), ValueError, r"expected one of"),
    Bad("cli fetch unknown", cli("data", "fetch", "nonexistent"), CliFailed, r"exit 2: .*unknown data set"),
    # --- saved models and checkpoints ------------------------------------------------------------------------------
    Bad("model dir missing", lambda env: bixt.from_pretrained(env.root / "nothing"), FileNotFoundError,
        r"nothing/config\.json not found: expected a directory written by save_pretrained"),
    Bad("config truncated", broken(in_model("config.json"), truncate, bixt.from_pretrained), DamagedFileError,
        r"config\.json is damaged: not valid JSON"),
    Bad("config list", broken(in_model("config.json"), write("[1]"), bixt.from_pretrained), DamagedFileError,
        r"config\.json is damaged: expected a JSON object"),
    Bad("config format", broken(in_model("config.json"), edit_json(_set("format", 2)), bixt.from_pretrained),
        ValueError, r"unsupported format 2 \(expected 1\)"),
    Bad("config architecture", broken(in_model("config.json"), edit_json(_set("architecture", "Nope")),
        bixt.from_pretrained), ValueError, r"unknown architecture 'Nope'"),
    Bad("config no config", broken(in_model("config.json"), edit_json(_remove_key("config")), bixt.from_pretrained),
        DamagedFileError, r"config\.json is damaged: no 'config' object"),
    Bad("config bad field", broken(in_model("config.json"), edit_json(_set_config("depth", True)),
        bixt.from_pretrained), ValueError, r"does not build a BiXT: BiXTConfig\.depth must be an integer"),
    Bad("config unknown field", broken(in_model("config.json"), edit_json(_set_config("width", 3)),
        bixt.from_pretrained), ValueError, r"does not build a BiXT: .*width"),
    Bad("config other width", broken(in_model("config.json"), edit_json(_set_config("embed_dim", 32)),
        bixt.from_pretrained), ValueError, r"model\.safetensors do not fit this model; keys 36 of another shape"),
    Bad("weights flipped", broken(in_model("model.safetensors"), flip, bixt.from_pretrained), DamagedFileError,
        r"model\.safetensors is damaged: its sha256 .* recorded when it was written"),
    Bad("weights truncated", broken(in_model("model.safetensors"), truncate, bixt.from_pretrained), DamagedFileError,
        r"model\.safetensors is damaged"),
    Bad("weights deleted", broken(in_model("model.safetensors"), Path.unlink, bixt.from_pretrained),
        FileNotFoundError, r"model\.safetensors not found"),
    Bad("checkpoint state flipped", broken(in_checkpoint("training_state.pt"), flip, load_training_state),
        DamagedFileError, r"training_state\.pt is damaged: its sha256"),
    Bad("checkpoint state truncated (unrecorded)", broken(in_checkpoint("training_state.pt"),
        lambda p: (truncate(p), edit_json(_set("sha256", {}))(p.parent / "meta.json")), load_training_state),
        DamagedFileError, r"training_state\.pt is damaged: not a readable training state"),
    Bad("checkpoint meta truncated", broken(in_checkpoint("meta.json"), truncate, read_meta), DamagedFileError,
        r"meta\.json is damaged: not valid JSON"),
    Bad("checkpoint weights flipped", broken(in_checkpoint("model.safetensors"), flip, evaluate_checkpoint),
        DamagedFileError, r"model\.safetensors is damaged"),
    Bad("checkpoint weights of another model", broken(in_checkpoint("model.safetensors"),
        lambda p: shutil.copy(p.parents[3] / "model" / "model.safetensors", p), lambda d: bixt.from_pretrained(d)),
        DamagedFileError, r"model\.safetensors is damaged: its sha256"),
    Bad("no checkpoint", lambda env: resolve_checkpoint(env.root), FileNotFoundError, r"nor a run directory"),
    Bad("incomplete checkpoint", broken(in_checkpoint("meta.json"), Path.unlink, resolve_checkpoint),
        FileNotFoundError, r"is incomplete: meta\.json missing"),
    Bad("eval nothing", cli("eval", "/nonexistent/run"), CliFailed, r"exit 2: bixt eval: /nonexistent/run does not"),
    Bad("eval damaged", cli("eval", lambda env: str(broken(in_checkpoint("model.safetensors"), flip,
        lambda d: d)(env))), CliFailed, r"exit 2: .*model\.safetensors is damaged"),
    Bad("resume damaged", lambda env: fit(tiny_config(str(env.root), "--resume", str(broken(
        in_checkpoint("training_state.pt"), flip, lambda d: d)(env)), "--schedule.epochs", "3"),
        train_set=tiny_images(), eval_set=tiny_images()), ConfigError,
        r"cannot resume from .*training_state\.pt is damaged: its sha256"),
    Bad("eval batch 0", cli("eval", lambda env: str(env.run), "--batch-size", "0"), CliFailed,
        r"(?s)exit 2: .*--batch-size: expected a positive whole number, got '0'"),
    Bad("eval limit word", cli("eval", lambda env: str(env.run), "--limit", "all"), CliFailed,
        r"(?s)exit 2: .*--limit: expected a positive whole number, got 'all'"),
    Bad("cli resume nothing", cli("train", "--resume", "/nonexistent/run"), CliFailed, r"cannot resume from"),
    Bad("cli bad yaml", cli("train", "-c", lambda env: str(_written(env, "a: [1\n"))), CliFailed,
        r"exit 2: bixt train: .*\.yaml: not valid YAML at line 2"),
    Bad("cli unknown key", cli("train", "--optim.lrr", "3"), CliFailed, r"did you mean: optim\.lr"),
    Bad("cli negative lr", cli("train", "--optim.lr", "-1e-3", "--output_dir", lambda env: str(env.fresh("o"))),
        CliFailed, r"optim\.lr.*must be > 0"),
    Bad("cli unknown command", cli("trian"), CliFailed, r"exit 2: bixt: unknown command 'trian'"),
    # --- the authors' checkpoints ----------------------------------------------------------------------------------
    Bad("official truncated", official(lambda env: good_official_bytes(env)[:300]), DamagedFileError,
        r"is damaged or not a checkpoint written by torch\.save"),
    Bad("official random", official(lambda env: os.urandom(2000)), DamagedFileError, r"is damaged or not a checkpoint"),
    Bad("official empty", official(lambda env: b""), DamagedFileError, r"is damaged or not a checkpoint"),
    Bad("official untrusted", official(lambda env: {"state_dict": {}, "x": Opaque()}), ValueError,
        r"holds pickled objects .*Opaque.*trust_pickle=True"),
    Bad("official missing", lambda env: bixt.load_official(bixt.create_model("bixt_ti_l64_p16", **TINY),
        env.root / "none.pth"), FileNotFoundError, r"none\.pth does not exist"),
    Bad("official other model", official(lambda env: {"state_dict": {"latents": torch.zeros(4, 16)}}), ValueError,
        r"does not fit this model.*\nmissing keys"),
    Bad("official no state dict", official(lambda env: {"epoch": 3}), ValueError, r"holds no state dict"),
    Bad("official safetensors truncated", lambda env: bixt.load_official(bixt.create_model("bixt_ti_l64_p16", **TINY),
        _truncated_safetensors(env)), DamagedFileError, r"is damaged: not a readable safetensors file"),
]  # fmt: skip


def _written(env: Env, text: str) -> Path:
    path = env.fresh("recipe").with_suffix(".yaml")
    path.write_text(text)
    return path


def _truncated_safetensors(env: Env) -> Path:
    path = env.copy(env.model_dir) / "model.safetensors"
    truncate(path)
    return path


def test_the_table_is_large_and_its_names_unique():
    assert len(CASES) >= 100
    assert len({case.id for case in CASES}) == len(CASES)


def _raise_site(error: BaseException) -> Path:
    traceback = error.__traceback__
    while traceback.tb_next is not None:
        traceback = traceback.tb_next
    return Path(traceback.tb_frame.f_code.co_filename).resolve()


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_gets_a_clear_error(env, case):
    with pytest.raises(case.error, match=case.match) as info:
        case.call(env)
    if case.error is not CliFailed:  # a command's failure is its exit status and message, checked by cli()
        site = _raise_site(info.value)
        assert site.is_relative_to(BIXT_DIR), f"raised inside {site}, not by bixt: {info.value!r}"


@pytest.mark.parametrize(
    ("name", "inputs", "shape"),
    [
        ("bixt_ti_l64_p16", lambda: (torch.rand(0, 3, 32, 32),), (0, 3)),
        ("vit_ti_p16", lambda: (torch.rand(0, 3, 32, 32),), (0, 3)),
        (_TEXT, lambda: (torch.randint(1, 257, (0, 10)),), (0, 2)),
        ("bixt_lra_retrieval", lambda: (torch.randint(1, 257, (0, 10)), torch.randint(1, 257, (0, 12))), (0, 2)),
        (_POINTS, lambda: (torch.rand(0, 64, 3),), (0, 40)),
        ("bixt_points_partseg", lambda: (torch.rand(0, 64, 3), torch.zeros(0, dtype=torch.long)), (0, 64, 50)),
        ("bixt_ti_l64_d13_p16s8_seg_linear", lambda: (torch.rand(0, 3, 32, 32),), (0, 3, 32, 32)),
    ],
)
def test_an_empty_batch_gives_an_empty_output(name, inputs, shape):
    assert tuple(forward(name, *(lambda x=x: x for x in inputs()))(None).shape) == shape
