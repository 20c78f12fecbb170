"""mnn_optim: optimisers, learning-rate schedules and gradient clipping for mnnpy.

Two ways to train (see :class:`Optimizer`):

- PyTorch style: compute gradients (``grads = mnn_expr.grad(loss, params)``) and call
  ``opt.apply(grads)``; each parameter handle is rebound to its updated value;
- MNN style: ``opt.step(loss)`` differentiates and applies in one call.

Every algorithm is a pure Var function ``_update(param, grad, state, hp)``.

>>> import numpy as np, mnn_expr as F, mnn_optim as optim
>>> w = F.array(np.array([1.0, -2.0], np.float32)); w.fix_as_trainable()
>>> opt = optim.SGD([w], lr=0.25)
>>> for _ in range(3):
...     opt.apply([2 * w.read()])          # gradient of sum(w**2)
>>> w.read().tolist()
[0.125, -0.25]
"""

from . import lr_scheduler
from .adagrad import Adagrad
from .adam import ADAM, Adam, AdamW
from .clip import clip_grad_norm, clip_grad_norm_, clip_grad_value, clip_grad_value_
from .optimizer import Optimizer, Regularization_Method
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "ADAM", "RMSprop", "Adagrad", "Regularization_Method",
           "clip_grad_norm_", "clip_grad_value_", "clip_grad_norm", "clip_grad_value", "lr_scheduler"]
