"""A running mean loss and accuracy, summed on the device and read only when someone asks."""

from __future__ import annotations

from typing import Any

import torch

from trainval.training.data_parallel import reduce_sums


class RunningAverages:
    """Sums of loss and correct predictions kept on the device, read only when someone asks."""

    def __init__(self, device: torch.device) -> None:
        self._loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        self._correct = torch.zeros((), dtype=torch.int64, device=device)
        self.count = 0

    def update(self, mean_loss: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor) -> None:
        size = len(targets)
        self._loss_sum += mean_loss.detach().double() * size
        self._correct += (logits.detach().argmax(dim=1) == targets).sum()
        self.count += size

    def combine_ranks(self) -> None:
        """Replace this rank's sums by the sums over every rank of a data-parallel fit."""
        loss_sum, correct, count = reduce_sums(self._loss_sum, self._correct.double(),
                                               torch.tensor(float(self.count), device=self._loss_sum.device))
        self._loss_sum.copy_(loss_sum)
        self._correct.copy_(correct.round().long())
        self.count = int(count.item())

    def result(self) -> dict[str, float]:
        """``{"loss": mean loss, "acc": accuracy}`` over everything seen so far."""
        count = max(self.count, 1)
        return {"loss": self._loss_sum.item() / count, "acc": self._correct.item() / count}

    def state_dict(self) -> dict[str, Any]:
        return {"loss_sum": self._loss_sum, "correct": self._correct, "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._loss_sum.copy_(state["loss_sum"])
        self._correct.copy_(state["correct"])
        self.count = int(state["count"])
