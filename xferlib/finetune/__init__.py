"""Fine-tuning: strategies, param groups, train/eval loops, checkpoints/resume, AMP, bn_adapt.

Split by concern: `runtime` (device/precision), `layers` (freezing, LR groups, bn_adapt),
`features` (feature extraction + cache), `checkpoint` (last.pt), `train` (the loop), `world`
(torchrun/DDP: batch split, loss scaling, cross-rank BatchNorm).
"""

from xferlib.finetune.features import cached_features, extract_features, state_hash
from xferlib.finetune.layers import bn_adapt, param_groups, set_trainable, unfrozen_blocks
from xferlib.finetune.runtime import Runtime, resolve_runtime
from xferlib.finetune.train import TrainResult, fine_tune
from xferlib.finetune.world import World

__all__ = [
    "Runtime",
    "TrainResult",
    "World",
    "bn_adapt",
    "cached_features",
    "extract_features",
    "fine_tune",
    "param_groups",
    "resolve_runtime",
    "set_trainable",
    "state_hash",
    "unfrozen_blocks",
]
