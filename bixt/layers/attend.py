"""Former home of the attention math and the path policy, now `attention_math.py` and `attention_paths.py`.

Kept only for the modules outside bixt's model side that still import from here (the engine's kernel record, the
benchmarks, the symmetry analysis); delete it once they import from the two modules above.
"""

from bixt.layers.attention_math import AttentionMaps, attend, bidirectional_attend
from bixt.layers.attention_paths import (
    ATTENTION_PATHS,
    AUTO_EXPLICIT_MAX_SIMILARITY,
    AUTO_RULES,
    attention_path,
    auto_choices,
    clear_auto_choices,
    set_attention_path,
)

__all__ = [
    "ATTENTION_PATHS",
    "AUTO_EXPLICIT_MAX_SIMILARITY",
    "AUTO_RULES",
    "AttentionMaps",
    "attend",
    "attention_path",
    "auto_choices",
    "bidirectional_attend",
    "clear_auto_choices",
    "set_attention_path",
]
