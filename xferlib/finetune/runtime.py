"""Where and how a model runs: device, precision, memory format.

On CUDA: bf16 autocast, channels_last, pinned host memory and non-blocking copies. On CPU, bf16
autocast only when asked for (`precision="bf16"`) or, with `auto`, when the backbone was measured
to gain from it (`Backbone.cpu_bf16_ok`: dense convs with AMX do, depthwise nets do not).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from xferlib.config import FinetuneParams
from xferlib.models import Classifier


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    precision: str  # "fp32" | "bf16"
    channels_last: bool

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """bf16 autocast when this runtime uses bf16, a no-op otherwise."""
        with torch.autocast(
            self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"
        ):
            yield

    def to_device(self, x: torch.Tensor) -> torch.Tensor:
        """A batch on the training device (non-blocking from pinned memory on CUDA)."""
        if self.device.type != "cuda":
            return x.to(self.device)
        return x.pin_memory().to(self.device, non_blocking=True)

    def layout(self, x: torch.Tensor) -> torch.Tensor:
        """A normalised image batch in the memory format the model was converted to."""
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


def resolve_runtime(cfg: FinetuneParams, model: Classifier) -> Runtime:
    """Pick device and precision from the config, the machine and the backbone."""
    cuda = torch.cuda.is_available()
    if cfg.device == "cuda" and not cuda:
        raise RuntimeError(
            "finetune.device='cuda' but no CUDA device is visible; use device: auto or cpu"
        )
    device = torch.device(
        "cuda" if cfg.device == "cuda" or (cfg.device == "auto" and cuda) else "cpu"
    )
    if device.type == "cuda":
        bf16 = cfg.precision == "bf16" or (
            cfg.precision == "auto" and torch.cuda.is_bf16_supported()
        )
    else:
        bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and model.spec.cpu_bf16_ok)
    return Runtime(device, "bf16" if bf16 else "fp32", cfg.channels_last)


def place_model(model: Classifier, runtime: Runtime) -> None:
    """Move the model to the runtime's device and memory format, in place."""
    model.to(runtime.device)
    if runtime.channels_last:
        model.to(memory_format=torch.channels_last)


def model_runtime(model: Classifier) -> Runtime:
    """An fp32 runtime on whatever device the model already sits (for inference helpers)."""
    return Runtime(next(model.parameters()).device, "fp32", channels_last=False)
