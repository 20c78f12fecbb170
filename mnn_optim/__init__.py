"""mnn_optim: optimisers and learning-rate schedules for mnnpy.

Optimisers arrive with the training stack (autograd); this package is the
place they live.
"""

__all__: list[str] = []
