"""mnn_expr: NumPy-style expressions on Vars, run eagerly or lazily by a native core.

>>> import mnn_expr as F
>>> x = F.array([[1.0, 2.0], [3.0, 4.0]])
>>> (x * 2 + 1).tolist()
[[3.0, 5.0], [7.0, 9.0]]
"""

from . import _native
from . import _var as _var  # attaches the Python surface of Var
from ._core import OP_TABLE, apply
from ._dtype import (
    DType,
    as_dtype,
    bfloat16,
    bool_,
    float16,
    float32,
    float64,
    int8,
    int32,
    int64,
    promote_types,
    result_type,
    uint8,
)
from ._native import Var
from .autograd import grad, stop_gradient, value_and_grad
from .compile import Compiled, compile  # noqa: A004  (the library's verb)
from .control_flow import cond, fori_loop, scan, while_loop
from .creation import (
    NC4HW4,
    NCHW,
    NHWC,
    arange,
    array,
    asarray,
    clone,
    const,
    empty,
    empty_like,
    eye,
    fill,
    from_dlpack,
    full,
    full_like,
    identity,
    linspace,
    ones,
    ones_like,
    placeholder,
    range_,
    scalar,
    zeros,
    zeros_like,
)
from .elementwise import *  # noqa: F403
from .elementwise import BINARY_FUNCS, UNARY_FUNCS, cast, clip, where
from .executor import (
    backend_stats,
    clear_plan_cache,
    eager,
    evaluate,
    get_thread_number,
    is_lazy,
    is_tracing,
    last_plan_memory,
    last_plan_passes,
    lazy,
    lazy_eval,
    memory_planning_enabled,
    passes,
    passes_disabled,
    plan_cache_stats,
    set_memory_planning,
    set_pass,
    set_thread_number,
    use_backend,
)
from .indexing import *  # noqa: F403
from .linalg import *  # noqa: F403
from .movement import *  # noqa: F403
from .nn_ops import *  # noqa: F403
from .random import *  # noqa: F403
from .reduce import *  # noqa: F403
from .serialize import load_as_dict, load_as_list, save
from .sorting import *  # noqa: F403

# MNN dtype spellings: F.float, F.int, F.double
float = float32  # noqa: A001
double = float64
int = int32  # noqa: A001
bool = bool_  # noqa: A001

__version__ = "0.1.0"
