"""Optimiser specs with Keras's names and meanings, and the learning-rate schedules they carry.

A spec is plain configuration (a frozen dataclass) that builds its torch optimiser for a module
when a model is compiled: ``model.compile(optimizer=trainval.optimizers.SGD(learning_rate=0.01))``.
"""

from trainval.optimizers.fine_tuning import FineTuning
from trainval.optimizers.schedules import WarmupLinearDecay
from trainval.optimizers.specs import SGD, Adam, Muon, OptimizerSpec, resolve_optimizer

__all__ = ["Adam", "FineTuning", "Muon", "OptimizerSpec", "SGD", "WarmupLinearDecay", "resolve_optimizer"]
