"""``trainval.Model``: Keras's compile / fit / evaluate / predict over any ``torch.nn.Module``.

The module must return logits (unnormalised class scores); ``predict`` applies the softmax and
the loss works on logits, which is the numerically stable way to do what Keras's final softmax
layer plus categorical cross-entropy do.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from trainval.checks import require_int
from trainval.data.augment import Augmentation
from trainval.data.batches import count_training_batches
from trainval.data.class_weights import as_sample_weights
from trainval.data.inputs import images_to_tensor, labels_to_tensor
from trainval.data.splits import holdout_split
from trainval.distributed import current_world
from trainval import saving
from trainval.metrics import Scores, score_predictions
from trainval.errors import ConfigError, InputError, TrainvalError
from trainval.training import snapshot
from trainval.callbacks.base import Callback, CallbackList, History
from trainval.training.data_parallel import DataParallel
from trainval.training.fit_state import FitState
from trainval.training.losses import CategoricalCrossentropy
from trainval.training.targets import training_weights
from trainval.callbacks.nan_guard import TerminateOnNaN
from trainval.training.loop import EVAL_BATCH_SIZE, LossFunction, Trainer, evaluate_logits, fit_epochs, predict_logits
from trainval.optimizers import Adam, FineTuning, OptimizerSpec, resolve_optimizer
from trainval.training.tta import TTA_LEVELS, check_fraction
from trainval.training.compiled import CompiledModule
from trainval.training.placement import data_device, seeded_generator
from trainval.training.precision import resolve_device, resolve_precision, tune_backends
from trainval.callbacks.progress import ProgressLogger, resolve_verbose

_CROSS_ENTROPY_NAMES = ("categorical_crossentropy", "sparse_categorical_crossentropy", "crossentropy")
_METRIC_NAMES = ("accuracy", "acc")
_DATA_INIT_SAMPLES = 5000  # training images a data-initialised module (fastnet's whitening) looks at...
_DATA_INIT_PIXELS = _DATA_INIT_SAMPLES * 32 * 32  # ...or fewer larger ones: as many pixels as 5000 of 32x32


def _resolve_loss(loss: str | LossFunction) -> LossFunction:
    if callable(loss):
        return loss
    if loss in _CROSS_ENTROPY_NAMES:
        return F.cross_entropy
    raise ConfigError(f"unknown loss {loss!r}; use one of {', '.join(_CROSS_ENTROPY_NAMES)} or a callable "
                      "loss(logits, class_indices) -> scalar tensor")


def _checked_class_names(names: Sequence[str] | None, num_classes: int | None) -> list[str] | None:
    """``names`` as a list; a ConfigError unless they are strings, one per class."""
    if names is None:
        return None
    try:
        listed = [] if isinstance(names, str) else list(names)
    except TypeError:
        listed = []
    if not listed or not all(isinstance(name, str) for name in listed):
        raise ConfigError(f"class_names must be a sequence of strings, one per class; got {names!r}")
    names = [str(name) for name in listed]
    if num_classes is not None and len(names) != num_classes:
        raise ConfigError(f"class_names has {len(names)} names for {num_classes} classes; give one name per class")
    return names


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
        head: names of the head's tensors (the classifier's), which a model built from pretrained weights
            gets new and ``compile(fine_tuning=...)`` trains first (set by ``create_model``).
    """

    def __init__(self, module: nn.Module, *, num_classes: int | None = None,
                 input_shape: tuple[int, int, int] | None = None, class_names: Sequence[str] | None = None,
                 device: str | torch.device | None = None, architecture: dict[str, Any] | None = None,
                 default_optimizer: OptimizerSpec | None = None, head: Sequence[str] = ()) -> None:
        if not isinstance(module, nn.Module):
            raise ConfigError(f"Model wraps a torch.nn.Module; got {type(module).__name__}")
        self.device = resolve_device(device)
        self.module = module.to(self.device).to(memory_format=torch.channels_last)
        self.num_classes = num_classes
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self.class_names = _checked_class_names(class_names, num_classes)
        self.architecture = architecture
        self.default_optimizer = default_optimizer or Adam()
        self.head = tuple(head)
        self.stop_training = False
        self.history: History | None = None
        self.augmentation: Augmentation | None = None
        self.sync_batchnorm = False
        self.data_on_device: bool | None = None
        self._trainer: Trainer | None = None
        self._fit: tuple[FitState, list[Callback]] | None = None  # set while fit() runs

    # -- configuration ---------------------------------------------------------------------------

    def compile(self, optimizer: str | OptimizerSpec | torch.optim.Optimizer | None = None,
                loss: str | LossFunction = "categorical_crossentropy",
                metrics: Sequence[str] | None = ("accuracy",), precision: str = "auto",
                augmentation: Augmentation | None = None, tta: int = 0, sync_batchnorm: bool = False,
                compile: bool = False, data_on_device: bool | None = None,
                fine_tuning: FineTuning | None = None, tta_fraction: float = 1.0) -> None:
        """Choose the optimiser, loss, precision and augmentation; optional (``fit`` compiles with defaults).

        ``optimizer`` is a name (``"sgd"``, ``"adam"``, ``"muon"``), a spec such as
        ``trainval.optimizers.SGD(learning_rate=0.01, momentum=0.9, nesterov=True, decay=1e-6)``,
        a ``torch.optim.Optimizer``, or None for the architecture's default. ``loss`` is a Keras
        name or a callable ``loss(logits, class_indices)``, e.g.
        ``trainval.losses.CategoricalCrossentropy(label_smoothing=0.2)``. Accuracy is always
        reported as ``acc``. ``precision``: ``"auto"`` (bf16 where the hardware runs it natively),
        ``"bf16"`` or ``"fp32"``. ``augmentation`` applies to training batches only; ``tta``
        (0, 1 or 2) averages flipped and shifted views in ``evaluate`` and ``predict``, for the
        ``tta_fraction`` of the images the model is least sure of (1: all of them; which images those are
        depends on the set scored together, and a lone image always gets the views).
        ``sync_batchnorm``: in data-parallel training (torchrun, CUDA), compute BatchNorm statistics
        over the global batch instead of each process's share. ``compile``: run the forward pass
        through ``torch.compile`` (faster steps after a one-off compile, see ``compile_seconds``).
        ``data_on_device``: keep the data of ``fit``, ``evaluate`` and ``predict`` on the device, shuffled,
        gathered and augmented there (True), or on the host (False); None: the device on a CUDA GPU with
        room for it (its CUDA generator draws differently from the CPU's: :mod:`trainval.training.placement`).
        ``fine_tuning``: for a model built on pretrained weights (``create_model(..., weights=...)``),
        how its new head and its body share the learning rate (``trainval.optimizers.FineTuning``).
        """
        unknown = [m for m in (metrics or ()) if m not in _METRIC_NAMES]
        if unknown:
            raise ConfigError(f"unknown metric {unknown[0]!r}; trainval reports accuracy ('accuracy' or 'acc')")
        if tta not in TTA_LEVELS:
            raise ConfigError(f"tta must be one of {TTA_LEVELS}; got {tta!r}")
        if augmentation is not None and not isinstance(augmentation, Augmentation):
            raise ConfigError(f"augmentation must be a trainval Augmentation; got {type(augmentation).__name__}")
        if not isinstance(compile, bool) or not isinstance(data_on_device, (bool, type(None))):
            raise ConfigError(f"compile must be True or False and data_on_device True, False or None; got "
                              f"{compile!r} and {data_on_device!r}")
        torch_optimizer, spec = resolve_optimizer(optimizer or self.default_optimizer, self.module)
        tune_backends(self.device)
        if fine_tuning is not None:
            if not isinstance(fine_tuning, FineTuning):
                raise ConfigError("fine_tuning must be a trainval.optimizers.FineTuning; got "
                                  f"{type(fine_tuning).__name__}")
            if spec is None:
                raise ConfigError("fine_tuning sets the learning rates an optimizer spec schedules; pass a "
                                  "trainval.optimizers spec, not a ready-made torch optimizer")
            fine_tuning.split_groups(torch_optimizer, self.module, self.head)
        self._trainer = Trainer(self.module, torch_optimizer, spec, _resolve_loss(loss), self.device,
                                resolve_precision(precision, self.device), tta=tta,
                                forward=CompiledModule(self.module) if compile else None,
                                tta_fraction=check_fraction(tta_fraction))
        self.augmentation = augmentation
        self.sync_batchnorm = sync_batchnorm
        self.data_on_device = data_on_device

    @property
    def precision(self) -> str:
        """The precision training and inference run in (``"bf16"`` or ``"fp32"``)."""
        return self._compiled().precision

    @property
    def is_compiled(self) -> bool:
        """Whether ``compile`` has run (``fit``, ``evaluate`` and ``predict`` compile with defaults)."""
        return self._trainer is not None

    @property
    def compile_seconds(self) -> float:
        """Seconds spent in the steps in which ``torch.compile`` compiled (0 without ``compile=True``);
        an upper bound, as those steps' own computation is included."""
        forward = self._compiled().forward
        return forward.seconds if isinstance(forward, CompiledModule) else 0.0

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
            _checked_class_names(self.class_names, self.num_classes)
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
            shuffle: bool = True, initial_epoch: int = 0, seed: int | None = None,
            class_weight: Mapping[int, float] | str | None = None, sample_weight: Any = None) -> History:
        """Train for ``epochs - initial_epoch`` epochs and return the :class:`History`.

        Every sample is used once per epoch, the last partial batch included. ``validation_split``
        holds out a stratified, shuffled fraction of ``x`` (not its last rows); ``validation_data``
        takes a separate ``(x_val, y_val)`` and wins over the split. ``seed`` fixes the split (seed 0
        when None, so the split never changes between calls), the shuffling, augmentation and
        dropout, so a model created with the same seed trains to identical weights. Pass a
        ``trainval.callbacks.BackupAndRestore`` to make the fit resumable after a crash.
        ``verbose``: 0 silent, 1 live bar, 2 one line per epoch, ``"auto"`` 1 in a terminal else 2.
        ``class_weight`` (``{class index: weight}``, or ``"balanced"``: ``n_samples / (n_classes *
        count)`` over the images trained on) or ``sample_weight`` (one weight per sample of ``x``)
        multiply each sample's training loss, as in Keras (see :mod:`trainval.data.class_weights`);
        the reported ``loss`` is then the weighted one, ``acc`` and the validation scores are not.
        """
        batch_size = require_int("batch_size", 32 if batch_size is None else batch_size, 1)
        epochs, initial_epoch = require_int("epochs", epochs, 0), require_int("initial_epoch", initial_epoch, 0)
        seed = None if seed is None else require_int("seed", seed, 0)
        verbose = resolve_verbose(verbose) if current_world().is_main else 0  # one process prints
        (images, labels, weights), validation = self._training_data(x, y, validation_split, validation_data, seed,
                                                                     sample_weight)
        trainer = self._compiled()
        assert self.num_classes is not None
        weights = training_weights(trainer.loss_fn, labels, self.num_classes, class_weight, weights)
        self._initialize_from_data(images)
        parallel = DataParallel.join(trainer.forward, self.device, batch_size, len(images), self.sync_batchnorm)
        processes = parallel.world.size if parallel else 1
        steps_per_epoch = count_training_batches(len(images), batch_size, processes)
        history = History()
        callback_list = self._fit_callbacks(callbacks, history, verbose, {
            "epochs": epochs, "initial_epoch": initial_epoch, "batch_size": batch_size, "samples": len(images),
            "steps": steps_per_epoch, "val_samples": len(validation[0]) if validation else 0, "verbose": verbose,
        })
        self.stop_training = False
        place = data_device(self.data_on_device, self.device, images, labels, *(validation or ()))
        with self._seeded(seed, place) as generator, contextlib.ExitStack() as cleanup:
            cleanup.callback(callback_list.close)  # a failure mid-epoch must not leave a live bar behind
            fit = FitState.start(images, labels, epochs=epochs, initial_epoch=initial_epoch, batch_size=batch_size,
                                 shuffle=shuffle, start_step=trainer.step, steps_per_epoch=steps_per_epoch,
                                 generator=generator, device=self.device, augmentation=self.augmentation,
                                 processes=processes, sample_weights=weights)
            self._fit = (fit, callback_list.callbacks)
            cleanup.callback(setattr, self, "_fit", None)
            images, labels = images.to(place), labels.to(place)  # once; no-ops where they are already
            fit.sample_weights = None if weights is None else weights.to(place)
            validation = validation and (validation[0].to(place), validation[1].to(place))
            fit_epochs(trainer, fit, images, labels, validation, callback_list, parallel, lambda: self.stop_training)
        self.history = history
        return history

    def _training_data(self, x: Any, y: Any, validation_split: float, validation_data: tuple[Any, Any] | None,
                       seed: int | None, sample_weight: Any) -> tuple[tuple[torch.Tensor, torch.Tensor, Any],
                                                                      tuple[torch.Tensor, torch.Tensor] | None]:
        """``fit``'s checked training tensors with their share of ``sample_weight``, and its validation pair
        (None without validation)."""
        if not 0.0 <= validation_split < 1.0:
            raise ConfigError(f"validation_split must be in [0, 1); got {validation_split}")
        images, labels = self._labelled(x, y, "x", "y")
        if sample_weight is not None:
            sample_weight = as_sample_weights(sample_weight, len(labels))
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise InputError("validation_data must be a pair (x_val, y_val)")
            return ((images, labels, sample_weight),
                    self._labelled(*validation_data, "validation_data[0]", "validation_data[1]"))
        if validation_split == 0.0:
            return (images, labels, sample_weight), None
        # Without a seed the split is still fixed (as Keras's last-rows split is), so a fit can be resumed.
        train_idx, val_idx = holdout_split(labels.numpy(), float(validation_split), seed if seed is not None else 0)
        if sample_weight is not None:
            sample_weight = sample_weight[train_idx]
        return (images[train_idx], labels[train_idx], sample_weight), (images[val_idx], labels[val_idx])

    def _fit_callbacks(self, callbacks: Sequence[Callback] | None, history: History, verbose: int,
                       params: dict[str, Any]) -> CallbackList:
        """The NaN guard first, the user's callbacks, the History, then progress printing, all set up."""
        progress = [ProgressLogger(verbose)] if verbose else []
        callback_list = CallbackList([TerminateOnNaN(), *(callbacks or ()), history, *progress])
        callback_list.set_model(self)
        callback_list.set_params(params)
        return callback_list

    def training_state(self) -> dict[str, Any]:
        """The whole state of the fit under way (weights, optimiser, position, random generators,
        callbacks), for checkpoints: see ``trainval.callbacks.BackupAndRestore``. Only during ``fit``."""
        fit, callbacks = self._active_fit()
        return snapshot.capture(self.module, self._compiled(), fit, callbacks, self.description(), self.stop_training)

    def load_training_state(self, state: dict[str, Any], source: str = "the checkpoint") -> None:
        """Continue the fit under way from a :meth:`training_state`; a CheckpointError if it belongs elsewhere."""
        fit, callbacks = self._active_fit()
        self.stop_training = snapshot.restore(state, self.module, self._compiled(), fit, callbacks,
                                              self.description(), source)

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
        count = min(_DATA_INIT_SAMPLES, max(1, _DATA_INIT_PIXELS // (images.shape[2] * images.shape[3])))
        sample = images[:count].to(self.device)  # bounded, as a float copy of 5000 224-pixel images would take 3 GB
        initialize(sample.float().div_(255.0) if sample.dtype == torch.uint8 else sample.float())

    @contextlib.contextmanager
    def _seeded(self, seed: int | None, place: torch.device) -> Iterator[torch.Generator]:
        """Seed dropout (torch's global RNG, restored afterwards) and the shuffling generator, which lives on
        ``place``, where the data does."""
        if seed is None:
            yield seeded_generator(place, int(torch.randint(0, 2**62, ())))
            return
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            # Each process of a data-parallel fit draws its own dropout masks; rank 0's are a single process's.
            torch.manual_seed(seed + (current_world().rank << 32))
            yield seeded_generator(place, seed)

    def _logits(self, images: torch.Tensor, batch_size: int, tta: int) -> torch.Tensor:
        trainer = self._compiled()
        images = images.to(data_device(self.data_on_device, self.device, images))
        return predict_logits(trainer.forward, images, batch_size, self.device, trainer.precision, tta,
                              trainer.tta_fraction)

    def _score(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, tta: int) -> dict[str, float]:
        return evaluate_logits(self._logits(images, batch_size, tta), labels, self._compiled().loss_fn)

    def evaluate(self, x: Any = None, y: Any = None, batch_size: int | None = None,
                 verbose: int | str = "auto") -> list[float]:
        """Return ``[loss, acc]`` over every sample of ``(x, y)`` (none dropped), in eval mode."""
        batch_size = require_int("batch_size", EVAL_BATCH_SIZE if batch_size is None else batch_size, 1)
        verbose = resolve_verbose(verbose)
        images, labels = self._labelled(x, y, "x", "y")
        progress = CallbackList([ProgressLogger(verbose)] if verbose else [])
        progress.set_params({"samples": len(images), "steps": -(-len(images) // batch_size)})
        progress.on_test_begin()
        scores = self._score(images, labels, batch_size, self._compiled().tta)
        progress.on_test_end(scores)
        return [scores["loss"], scores["acc"]]

    def evaluate_detailed(self, x: Any, y: Any, batch_size: int | None = None,
                          class_names: Sequence[str] | None = None) -> tuple[Scores, np.ndarray]:
        """Score every sample of ``(x, y)`` in one pass: the :class:`~trainval.metrics.Scores`
        (loss, accuracy with its 95% interval, per-class precision and recall, confusion matrix)
        and the class probabilities (N, classes). Class names default to the model's."""
        batch_size = require_int("batch_size", EVAL_BATCH_SIZE if batch_size is None else batch_size, 1)
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
        batch_size = require_int("batch_size", EVAL_BATCH_SIZE if batch_size is None else batch_size, 1)
        resolve_verbose(verbose)
        logits = self._logits(self._images(x, "x"), batch_size, self._compiled().tta)
        return torch.softmax(logits, dim=1).cpu().numpy()

    def predict_classes(self, x: Any, batch_size: int | None = None) -> np.ndarray:
        """The most probable class index for every image in ``x`` (int64, shape (N,))."""
        return self.predict(x, batch_size=batch_size).argmax(axis=1)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Save to folder ``path``: weights as safetensors plus a JSON spec. See ``trainval.load_model``."""
        saving.save_model(path, saving.weight_tensors(self.module), self.description(), self.evaluation_settings())

    def description(self) -> dict[str, Any]:
        """What rebuilding this model takes besides its weights: architecture, classes, input shape, class names."""
        return {
            "architecture": self.architecture,
            "num_classes": self.num_classes,
            "input_shape": list(self.input_shape) if self.input_shape else None,
            "class_names": self.class_names,
        }

    def evaluation_settings(self) -> dict[str, Any]:
        """How the recipe scores this model: its TTA level and, for cross-entropy, its label smoothing (None
        for a custom loss, which a loaded model replaces by plain cross-entropy). Uncompiled: the defaults."""
        if not self.is_compiled:
            return {"tta": 0, "tta_fraction": 1.0, "label_smoothing": 0.0}
        loss = self.loss
        smoothing = (loss.label_smoothing if isinstance(loss, CategoricalCrossentropy)
                     else 0.0 if loss is F.cross_entropy else None)
        return {"tta": self.tta, "tta_fraction": self.tta_fraction, "label_smoothing": smoothing}
