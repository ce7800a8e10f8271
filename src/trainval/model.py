"""``trainval.Model``: Keras's compile / fit / evaluate / predict over any ``torch.nn.Module``.

The module must return logits (unnormalised class scores); ``predict`` applies the softmax and
the loss works on logits, which is the numerically stable way to do what Keras's final softmax
layer plus categorical cross-entropy do.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from trainval.data.augment import Augmentation
from trainval.data.batches import count_training_batches
from trainval.data.inputs import images_to_tensor, labels_to_tensor
from trainval.data.splits import holdout_split
from trainval.distributed import current_world
from trainval import saving
from trainval.reports.scores import Scores, score_predictions
from trainval.errors import ConfigError, InputError, TrainvalError
from trainval.training import snapshot
from trainval.training.callbacks import Callback, CallbackList, History
from trainval.training.data_parallel import DataParallel
from trainval.training.fit_state import FitState, data_fingerprint
from trainval.training.nan_guard import TerminateOnNaN
from trainval.training.loop import (LossFunction, RunningAverages, Trainer, evaluate_logits, predict_logits,
                                   train_one_epoch)
from trainval.training.optimizers import Adam, OptimizerSpec, resolve_optimizer
from trainval.training.tta import TTA_LEVELS, check_fraction
from trainval.training.precision import resolve_device, resolve_precision
from trainval.training.progress import ProgressLogger, format_metrics, format_timing, resolve_verbose

_CROSS_ENTROPY_NAMES = ("categorical_crossentropy", "sparse_categorical_crossentropy", "crossentropy")
_METRIC_NAMES = ("accuracy", "acc")
_EVAL_BATCH_SIZE = 256  # evaluation results do not depend on it; larger batches are simply faster
_DATA_INIT_SAMPLES = 5000  # training images a data-initialised module (fastnet's whitening) looks at


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(value)


def _resolve_loss(loss: str | LossFunction) -> LossFunction:
    if callable(loss):
        return loss
    if loss in _CROSS_ENTROPY_NAMES:
        return F.cross_entropy
    raise ConfigError(f"unknown loss {loss!r}; use one of {', '.join(_CROSS_ENTROPY_NAMES)} or a callable "
                      "loss(logits, class_indices) -> scalar tensor")


class Model:
    """A classifier with Keras's verbs around a torch module that returns logits.

    >>> model = trainval.create_model("seed-cnn")                        # doctest: +SKIP
    >>> history = model.fit(x_train, y_train, epochs=10, batch_size=100,
    ...                     validation_data=(x_test, y_test))              # doctest: +SKIP
    >>> loss, acc = model.evaluate(x_test, y_test, verbose=0)              # doctest: +SKIP

    Args:
        module: any ``torch.nn.Module`` mapping an (N, C, H, W) float batch to (N, classes) logits.
        num_classes: output classes; found with one forward pass when not given.
        input_shape: (H, W, C) of one image; taken from the first data seen when not given.
        class_names: optional names, saved with the model and used when printing predictions.
        device: ``"cpu"``, ``"cuda"``, ...; CUDA when present by default.
        architecture: how to rebuild the module by name (set by ``create_model``; needed by ``load_model``).
        default_optimizer: what ``compile`` uses when given no optimizer (Adam when None).
    """

    def __init__(self, module: nn.Module, *, num_classes: int | None = None,
                 input_shape: tuple[int, int, int] | None = None, class_names: Sequence[str] | None = None,
                 device: str | torch.device | None = None, architecture: dict[str, Any] | None = None,
                 default_optimizer: OptimizerSpec | None = None) -> None:
        if not isinstance(module, nn.Module):
            raise ConfigError(f"Model wraps a torch.nn.Module; got {type(module).__name__}")
        self.device = resolve_device(device)
        self.module = module.to(self.device).to(memory_format=torch.channels_last)
        self.num_classes = num_classes
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self.class_names = list(class_names) if class_names is not None else None
        self.architecture = architecture
        self.default_optimizer = default_optimizer or Adam()
        self.stop_training = False
        self.history: History | None = None
        self.augmentation: Augmentation | None = None
        self.sync_batchnorm = False
        self._trainer: Trainer | None = None
        self._fit: tuple[FitState, list[Callback]] | None = None  # set while fit() runs

    # -- configuration ---------------------------------------------------------------------------

    def compile(self, optimizer: str | OptimizerSpec | torch.optim.Optimizer | None = None,
                loss: str | LossFunction = "categorical_crossentropy",
                metrics: Sequence[str] | None = ("accuracy",), precision: str = "auto",
                augmentation: Augmentation | None = None, tta: int = 0, sync_batchnorm: bool = False,
                tta_fraction: float = 1.0) -> None:
        """Choose the optimiser, loss, precision and augmentation; optional (``fit`` compiles with defaults).

        ``optimizer`` is a name (``"sgd"``, ``"adam"``), a spec such as
        ``trainval.optimizers.SGD(learning_rate=0.01, momentum=0.9, nesterov=True, decay=1e-6)``,
        a ``torch.optim.Optimizer``, or None for the architecture's default. ``loss`` is a Keras
        name or a callable ``loss(logits, class_indices)``, e.g.
        ``trainval.losses.CategoricalCrossentropy(label_smoothing=0.2)``. Accuracy is always
        reported as ``acc``. ``precision``: ``"auto"`` (bf16 where the hardware runs it natively),
        ``"bf16"`` or ``"fp32"``. ``augmentation`` applies to training batches only; ``tta``
        (0, 1 or 2) averages flipped and shifted views in ``evaluate`` and ``predict``, for the
        ``tta_fraction`` of the images the model is least sure of (1: all of them).
        ``sync_batchnorm``: in data-parallel training (torchrun, CUDA), compute BatchNorm statistics
        over the global batch instead of each process's share.
        """
        unknown = [m for m in (metrics or ()) if m not in _METRIC_NAMES]
        if unknown:
            raise ConfigError(f"unknown metric {unknown[0]!r}; trainval reports accuracy ('accuracy' or 'acc')")
        if tta not in TTA_LEVELS:
            raise ConfigError(f"tta must be one of {TTA_LEVELS}; got {tta!r}")
        if augmentation is not None and not isinstance(augmentation, Augmentation):
            raise ConfigError(f"augmentation must be a trainval Augmentation; got {type(augmentation).__name__}")
        torch_optimizer, spec = resolve_optimizer(optimizer or self.default_optimizer, self.module)
        self._trainer = Trainer(self.module, torch_optimizer, spec, _resolve_loss(loss), self.device,
                                resolve_precision(precision, self.device), tta=tta,
                                tta_fraction=check_fraction(tta_fraction))
        self.augmentation = augmentation
        self.sync_batchnorm = sync_batchnorm

    @property
    def precision(self) -> str:
        """The precision training and inference run in (``"bf16"`` or ``"fp32"``)."""
        return self._compiled().precision

    @property
    def is_compiled(self) -> bool:
        """Whether ``compile`` has run (``fit``, ``evaluate`` and ``predict`` compile with defaults)."""
        return self._trainer is not None

    @property
    def tta(self) -> int:
        """The test-time augmentation level ``evaluate`` and ``predict`` use (0: none)."""
        return self._compiled().tta

    @property
    def tta_fraction(self) -> float:
        """The share of images, the least confident, that get the TTA views (1: all)."""
        return self._compiled().tta_fraction

    @property
    def loss(self) -> LossFunction:
        """The loss function training, ``evaluate`` and validation use."""
        return self._compiled().loss_fn

    def _compiled(self) -> Trainer:
        if self._trainer is None:
            self.compile()
        assert self._trainer is not None
        return self._trainer

    def count_params(self) -> int:
        """Number of parameters, trainable and frozen (BatchNorm statistics and other buffers not counted)."""
        return sum(p.numel() for p in self.module.parameters())

    # -- data checks ---------------------------------------------------------------------------------

    def _images(self, x: Any, name: str) -> torch.Tensor:
        images = images_to_tensor(x, name, self.input_shape)
        if self.input_shape is None:
            self.input_shape = (images.shape[2], images.shape[3], images.shape[1])
        if self.num_classes is None:
            self.num_classes = self._count_outputs(images[:1])
        return images

    def _count_outputs(self, sample: torch.Tensor) -> int:
        was_training = self.module.training
        logits = predict_logits(self.module, sample, 1, self.device, "fp32")
        self.module.train(was_training)
        if logits.ndim != 2:
            raise ConfigError(f"the module must return logits shaped (N, classes); it returned shape {tuple(logits.shape)}")
        return int(logits.shape[1])

    def _labelled(self, x: Any, y: Any, x_name: str, y_name: str) -> tuple[torch.Tensor, torch.Tensor]:
        if y is None:
            raise InputError(f"{y_name} is missing: pass the labels of {x_name}")
        images = self._images(x, x_name)
        assert self.num_classes is not None
        return images, labels_to_tensor(y, self.num_classes, len(images), y_name)

    # -- Keras verbs -------------------------------------------------------------------------------

    def fit(self, x: Any = None, y: Any = None, batch_size: int | None = 32, epochs: int = 1,
            verbose: int | str = "auto", callbacks: Sequence[Callback] | None = None,
            validation_split: float = 0.0, validation_data: tuple[Any, Any] | None = None,
            shuffle: bool = True, initial_epoch: int = 0, seed: int | None = None) -> History:
        """Train for ``epochs - initial_epoch`` epochs and return the :class:`History`.

        Every sample is used once per epoch, the last partial batch included. ``validation_split``
        holds out a stratified, shuffled fraction of ``x`` (not its last rows); ``validation_data``
        takes a separate ``(x_val, y_val)`` and wins over the split. ``seed`` fixes the split (seed 0
        when None, so the split never changes between calls), the shuffling, augmentation and
        dropout, so a model created with the same seed trains to identical weights. Pass a
        ``trainval.callbacks.BackupAndRestore`` to make the fit resumable after a crash.
        ``verbose``: 0 silent, 1 live bar, 2 one line per epoch, ``"auto"`` 1 in a terminal else 2.
        """
        batch_size = _check_int("batch_size", 32 if batch_size is None else batch_size, 1)
        epochs = _check_int("epochs", epochs, 0)
        initial_epoch = _check_int("initial_epoch", initial_epoch, 0)
        seed = None if seed is None else _check_int("seed", seed, 0)
        verbose = resolve_verbose(verbose) if current_world().is_main else 0  # one process prints
        if not 0.0 <= validation_split < 1.0:
            raise ConfigError(f"validation_split must be in [0, 1); got {validation_split}")
        images, labels = self._labelled(x, y, "x", "y")
        validation = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise InputError("validation_data must be a pair (x_val, y_val)")
            validation = self._labelled(validation_data[0], validation_data[1], "validation_data[0]", "validation_data[1]")
        elif validation_split > 0.0:
            # Without a seed the split is still fixed (as Keras's last-rows split is), so a fit can be resumed.
            train_idx, val_idx = holdout_split(labels.numpy(), float(validation_split), seed if seed is not None else 0)
            validation = images[val_idx], labels[val_idx]
            images, labels = images[train_idx], labels[train_idx]
        trainer = self._compiled()
        self._initialize_from_data(images)
        parallel = DataParallel.join(self.module, self.device, batch_size, len(images), self.sync_batchnorm)
        processes = parallel.world.size if parallel else 1

        steps_per_epoch = count_training_batches(len(images), batch_size, processes)
        history = History()
        loggers = [ProgressLogger(verbose)] if verbose else []
        callback_list = CallbackList([TerminateOnNaN(), *(callbacks or ()), history, *loggers])
        callback_list.set_model(self)
        callback_list.set_params({
            "epochs": epochs, "initial_epoch": initial_epoch, "batch_size": batch_size, "samples": len(images),
            "steps": steps_per_epoch, "val_samples": len(validation[0]) if validation else 0, "verbose": verbose,
        })
        self.stop_training = False
        with self._seeded(seed) as generator, contextlib.ExitStack() as cleanup:
            for logger in loggers:
                cleanup.callback(logger.close)  # a failure mid-epoch must not leave a live bar behind
            fit = FitState(
                epochs=epochs, initial_epoch=initial_epoch, start_step=trainer.step, batch_size=batch_size, samples=len(images), shuffle=shuffle,
                data_fingerprint=data_fingerprint(images, labels), generator=generator, device=self.device,
                total_steps=trainer.step + steps_per_epoch * max(epochs - initial_epoch, 0), epoch=initial_epoch,
                augment=self.augmentation.bind(len(images), generator) if self.augmentation else None,
                processes=processes)
            self._fit = (fit, callback_list.callbacks)
            cleanup.callback(setattr, self, "_fit", None)
            callback_list.on_train_begin()  # BackupAndRestore may move the fit to where an earlier one stopped
            while fit.epoch < epochs and not self.stop_training:
                fit.begin_epoch()
                callback_list.on_epoch_begin(fit.epoch)
                logs: dict[str, Any] = train_one_epoch(trainer, images, labels, fit, callback_list, parallel)
                if parallel is not None:
                    parallel.share_buffers(self.module)
                if validation is not None:
                    scores = self._validation_scores(*validation, max(batch_size, _EVAL_BATCH_SIZE), parallel)
                    logs.update(val_loss=scores["loss"], val_acc=scores["acc"])
                fit.epoch_done = True
                callback_list.on_epoch_end(fit.epoch, logs)
                fit.end_epoch()
            callback_list.on_train_end()
        self.history = history
        return history

    def training_state(self) -> dict[str, Any]:
        """The whole state of the fit under way (weights, optimiser, position, random generators,
        callbacks), for checkpoints: see ``trainval.callbacks.BackupAndRestore``. Only during ``fit``."""
        fit, callbacks = self._active_fit()
        return snapshot.capture(self.module, self._compiled(), fit, callbacks, saving.describe(self), self.stop_training)

    def load_training_state(self, state: dict[str, Any], source: str = "the checkpoint") -> None:
        """Continue the fit under way from a :meth:`training_state`; a CheckpointError if it belongs elsewhere."""
        fit, callbacks = self._active_fit()
        self.stop_training = snapshot.restore(state, self.module, self._compiled(), fit, callbacks,
                                              saving.describe(self), source)

    def _active_fit(self) -> tuple[FitState, list[Callback]]:
        if self._fit is None:
            raise TrainvalError("a training state exists only while fit() runs: call this from a callback")
        return self._fit

    @property
    def learning_rate(self) -> float:
        """The optimiser's base learning rate (before decay and schedule); settable, as Keras's."""
        return self._compiled().learning_rate

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        self._compiled().learning_rate = value

    @property
    def last_learning_rate(self) -> float:
        """The learning rate of the latest update, decay and schedule included."""
        return self._compiled().last_learning_rate

    def _initialize_from_data(self, images: torch.Tensor) -> None:
        """Give a module that asks for it (``initialize_from_data``) one look at the training data, once."""
        initialize = getattr(self.module, "initialize_from_data", None)
        done = getattr(self.module, "data_initialized", None)
        if initialize is None or (done is not None and bool(done)):
            return
        sample = images[:_DATA_INIT_SAMPLES].to(self.device)
        initialize(sample.float().div_(255.0) if sample.dtype == torch.uint8 else sample.float())

    @contextlib.contextmanager
    def _seeded(self, seed: int | None) -> Iterator[torch.Generator]:
        """Seed dropout (torch's global RNG, restored afterwards) and the shuffling generator."""
        generator = torch.Generator()
        if seed is None:
            generator.manual_seed(int(torch.randint(0, 2**62, ())))
            yield generator
            return
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            # Each process of a data-parallel fit draws its own dropout masks; rank 0's are a single process's.
            torch.manual_seed(seed + (current_world().rank << 32))
            generator.manual_seed(seed)
            yield generator

    def _logits(self, images: torch.Tensor, batch_size: int, tta: int) -> torch.Tensor:
        trainer = self._compiled()
        return predict_logits(self.module, images, batch_size, self.device, trainer.precision, tta, trainer.tta_fraction)

    def _score(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, tta: int) -> dict[str, float]:
        return evaluate_logits(self._logits(images, batch_size, tta), labels, self._compiled().loss_fn)

    def _validation_scores(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int,
                           parallel: DataParallel | None) -> dict[str, float]:
        """Validation loss and accuracy without TTA; in a data-parallel fit each rank scores its share."""
        if parallel is None:
            return self._score(images, labels, batch_size, tta=0)
        share = parallel.shard(len(images))
        sums = RunningAverages(self.device)
        if share.stop > share.start:  # a validation set smaller than the number of processes leaves some without images
            logits, targets = self._logits(images[share], batch_size, tta=0), labels[share].to(self.device)
            sums.update(self._compiled().loss_fn(logits, targets), logits, targets)
        sums.combine_ranks()
        return sums.result()

    def evaluate(self, x: Any = None, y: Any = None, batch_size: int | None = None,
                 verbose: int | str = "auto") -> list[float]:
        """Return ``[loss, acc]`` over every sample of ``(x, y)`` (none dropped), in eval mode."""
        batch_size = _check_int("batch_size", _EVAL_BATCH_SIZE if batch_size is None else batch_size, 1)
        verbose = resolve_verbose(verbose)
        images, labels = self._labelled(x, y, "x", "y")
        start = time.perf_counter()
        scores = self._score(images, labels, batch_size, self._compiled().tta)
        if verbose:
            steps = -(-len(images) // batch_size)
            print(f"{len(images)}/{len(images)} - {format_timing(time.perf_counter() - start, steps)} - "
                  f"{format_metrics(scores)}", flush=True)
        return [scores["loss"], scores["acc"]]

    def evaluate_detailed(self, x: Any, y: Any, batch_size: int | None = None,
                          class_names: Sequence[str] | None = None) -> tuple[Scores, np.ndarray]:
        """Score every sample of ``(x, y)`` in one pass: the :class:`~trainval.reports.scores.Scores`
        (loss, accuracy with its 95% interval, per-class precision and recall, confusion matrix)
        and the class probabilities (N, classes). Class names default to the model's."""
        batch_size = _check_int("batch_size", _EVAL_BATCH_SIZE if batch_size is None else batch_size, 1)
        images, labels = self._labelled(x, y, "x", "y")
        logits = self._logits(images, batch_size, self._compiled().tta)
        loss = evaluate_logits(logits, labels, self._compiled().loss_fn)["loss"]
        probabilities = torch.softmax(logits, dim=1).cpu().numpy()
        return (score_predictions(probabilities, labels.numpy(), class_names or self.class_names, loss),
                probabilities)

    def predict(self, x: Any, batch_size: int | None = None, verbose: int | str = 0) -> np.ndarray:
        """Class probabilities, float32 of shape (N, classes), for every image in ``x``.

        ``verbose`` is accepted for Keras compatibility and checked; predict prints nothing.
        """
        batch_size = _check_int("batch_size", _EVAL_BATCH_SIZE if batch_size is None else batch_size, 1)
        resolve_verbose(verbose)
        logits = self._logits(self._images(x, "x"), batch_size, self._compiled().tta)
        return torch.softmax(logits, dim=1).cpu().numpy()

    def predict_classes(self, x: Any, batch_size: int | None = None) -> np.ndarray:
        """The most probable class index for every image in ``x`` (int64, shape (N,))."""
        return self.predict(x, batch_size=batch_size).argmax(axis=1)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Save to folder ``path``: weights as safetensors plus a JSON spec. See ``trainval.load_model``."""
        saving.save_model(self, path)
