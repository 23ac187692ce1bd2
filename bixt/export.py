"""Export a model for deployment: ONNX (checked with onnxruntime) or a torch.export program (``.pt2``).

Image models may take other batch sizes and resolutions (multiples of the tokenizer stride), sequence models other
batch sizes and lengths, point models other batch sizes and point counts, when asked (`dynamic_batch`,
`dynamic_size`). Every export is run once more against the eager model on the example input and, for dynamic
exports, on an input of other sizes; `ExportReport` holds the largest differences.

Exported graphs check input shapes but not values (NaN inputs, out-of-range ids, all-padding samples): a traced
graph cannot raise on data, so those checks of the eager models are left out while exporting.
"""

from __future__ import annotations

import inspect
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

import torch
from torch import nn
from torch.export import Dim

from bixt.fileio import atomic_path
from bixt.layers.attention_paths import attention_path

ExportFormat = Literal["onnx", "torch-export"]
EXPORT_FORMATS: tuple[str, ...] = get_args(ExportFormat)
SUFFIX = {"onnx": ".onnx", "torch-export": ".pt2"}
MAX_BATCH = 4096
# the exported graph is compared with the eager model within these (float32; ONNX Runtime fuses differently)
RTOL, ATOL = 1e-3, 1e-4


@dataclass
class ExportInputs:
    """Example inputs of a model, the names of its forward arguments, and which of their dimensions may vary."""

    args: tuple[torch.Tensor, ...]
    names: list[str]
    dynamic_shapes: dict[str, dict[int, Dim]] | None
    other_args: tuple[torch.Tensor, ...] | None  # inputs of other sizes, to check a dynamic export with


@dataclass
class ExportReport:
    path: Path
    format: str
    input_names: list[str]
    dynamic: dict[str, dict[int, str]]  # input -> {dimension: name of its symbolic size}
    max_abs_diff: dict[str, float] = field(default_factory=dict)  # check -> largest |exported - eager|


def _as_tuple(inputs: torch.Tensor | tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return inputs if isinstance(inputs, tuple) else (inputs,)


def _kind(model: nn.Module, args: tuple[torch.Tensor, ...]) -> str:
    first = args[0]
    if first.dtype.is_floating_point and first.ndim == 4:
        return "image"
    if not first.dtype.is_floating_point and first.ndim == 2:
        return "sequence"
    if first.dtype.is_floating_point and first.ndim == 3:
        return "points"
    raise ValueError(f"cannot export {type(model).__name__}: unknown input kind {first.dtype} {tuple(first.shape)}")


def _image_stride(model: nn.Module) -> int:
    tokenizer = getattr(model, "tokenizer", None)
    return tokenizer.stride if tokenizer is not None else model.patch_embed.stride


def _other_inputs(model: nn.Module, kind: str, args: tuple[torch.Tensor, ...], batch: int, grow: bool):
    """Inputs like the example's, at batch size `batch` and, if `grow`, larger along the dynamic size dimensions."""
    first = args[0]
    if kind == "image":
        stride = _image_stride(model)
        height, width = first.shape[2] + stride * grow, first.shape[3] + 2 * stride * grow
        return (torch.randn(batch, first.shape[1], height, width),)
    if kind == "sequence":  # the model's own drawing: valid ids, with padding
        return _as_tuple(model.example_input(batch, max(1, first.shape[1] // 2) if grow else first.shape[1]))
    points = torch.randn(batch, first.shape[1] + 17 * grow, first.shape[2])
    categories = tuple(torch.randint(0, int(a.max()) + 1, (batch,)) for a in args[1:])  # part segmentation
    return (points, *categories)


def export_inputs(model: nn.Module, *, dynamic_batch: bool, dynamic_size: bool) -> ExportInputs:
    """Example inputs for `model` (batch 2) and the dynamic dimensions asked for."""
    args = _as_tuple(model.example_input(2))
    params = [p for p in inspect.signature(model.forward).parameters.values() if p.kind != p.VAR_KEYWORD]
    names = [p.name for p in params[: len(args)]]
    kind = _kind(model, args)
    if not (dynamic_batch or dynamic_size):
        return ExportInputs(args, names, None, None)
    shapes: dict[str, dict[int, Dim]] = {name: {} for name in names}
    if dynamic_batch:
        batch = Dim("batch", min=1, max=MAX_BATCH)
        for name in names:
            shapes[name][0] = batch
    if dynamic_size and kind == "image":
        stride = _image_stride(model)
        shapes[names[0]] |= {2: stride * Dim("grid_h", min=1, max=1024), 3: stride * Dim("grid_w", min=1, max=1024)}
    elif dynamic_size and kind == "sequence":
        length = Dim("length", min=1, max=model.config.max_length)
        for name in names:
            shapes[name][1] = length
    elif dynamic_size:  # points: the grouped tokenizer needs at least num_groups / group_size of them
        min_points = getattr(model.tokenizer, "min_points", 1)
        shapes[names[0]][1] = Dim("num_points", min=max(min_points, 2), max=1 << 16)
    other = _other_inputs(model, kind, args, 3 if dynamic_batch else 2, dynamic_size)
    return ExportInputs(args, names, {k: v for k, v in shapes.items() if v}, other)


def _max_diff(got: torch.Tensor, expected: torch.Tensor, check: str) -> float:
    if got.shape != expected.shape:
        raise RuntimeError(f"{check}: exported output shape {tuple(got.shape)} != eager {tuple(expected.shape)}")
    torch.testing.assert_close(got, expected, rtol=RTOL, atol=ATOL, msg=lambda m: f"{check}: {m}")
    return (got - expected).abs().max().item()


def _onnx_session(path: Path):
    try:
        import onnxruntime
    except ImportError as err:
        raise ImportError("checking an ONNX export needs onnxruntime: pip install 'bixt[export]'") from err
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def export_model(
    model: nn.Module,
    output: str | Path,
    *,
    format: ExportFormat = "onnx",
    dynamic_batch: bool = False,
    dynamic_size: bool = False,
    attention: Literal["explicit", "fused"] = "explicit",
) -> ExportReport:
    """Export `model` (in eval mode, on the CPU) to `output` and check the result against the eager model.

    attention: the attention path built into the graph (`explicit`: matmul + softmax, portable; `fused`:
    scaled_dot_product_attention). A graph cannot choose by input size as ``auto`` does.
    """
    if format not in EXPORT_FORMATS:
        raise ValueError(f"format must be one of {EXPORT_FORMATS}, got {format!r}")
    output = Path(output)
    if output.exists():
        raise FileExistsError(f"{output} exists; choose another --output (an export never overwrites one)")
    model = model.eval().cpu()
    inputs = export_inputs(model, dynamic_batch=dynamic_batch, dynamic_size=dynamic_size)
    checks = {"example": inputs.args} | ({"other sizes": inputs.other_args} if inputs.other_args else {})
    with torch.no_grad(), attention_path(attention):
        expected = {name: model(*args) for name, args in checks.items()}
        with atomic_path(output) as tmp:
            if format == "onnx":
                program = torch.onnx.export(
                    model,
                    inputs.args,
                    input_names=inputs.names,
                    dynamic_shapes=inputs.dynamic_shapes,
                    dynamo=True,
                    verbose=False,
                )
                program.save(str(tmp))
                session = _onnx_session(tmp)
                run = lambda args: torch.from_numpy(  # noqa: E731
                    session.run(None, {n: a.numpy() for n, a in zip(inputs.names, args, strict=True)})[0]
                )
            else:
                program = torch.export.export(model, inputs.args, dynamic_shapes=inputs.dynamic_shapes)
                buffer = io.BytesIO()  # torch.export.save wants a name ending in .pt2; the temporary one does not
                torch.export.save(program, buffer)
                tmp.write_bytes(buffer.getvalue())
                loaded = torch.export.load(io.BytesIO(buffer.getvalue())).module()
                run = lambda args: loaded(*args)  # noqa: E731
            diffs = {name: _max_diff(run(args), expected[name], name) for name, args in checks.items()}
    dynamic = {name: {dim: str(d) for dim, d in dims.items()} for name, dims in (inputs.dynamic_shapes or {}).items()}
    return ExportReport(output, format, inputs.names, dynamic, diffs)


def default_output(source: Path | None, name: str, format: ExportFormat) -> Path:
    """Beside the checkpoint (``<checkpoint>/export/model.onnx``) or, for a registry name, ``./<name>.onnx``."""
    if source is not None:
        return source / "export" / f"model{SUFFIX[format]}"
    return Path(f"{name}{SUFFIX[format]}")
