"""Muon: Newton-Schulz orthogonalisation, which parameters it takes, its update rule against slow
reference loops written here, the schedule on every group, state round trips and validation."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

import trainval
from trainval.errors import ConfigError
from trainval.model import Model
from trainval.optimizers.muon import MuonWithSGD, orthogonalize
from trainval.optimizers import Muon, resolve_optimizer
from trainval.optimizers.schedules import WarmupLinearDecay

from tiny_data import LearningRates, TinyNet, tiny_images


def _low_rank_heavy(rows: int, cols: int, seed: int = 0) -> torch.Tensor:
    """A gradient-like matrix: a few strong directions on top of weak noise (condition number ~1000)."""
    g = torch.Generator().manual_seed(seed)
    strong = torch.randn(rows, 3, generator=g) @ torch.randn(3, cols, generator=g)
    return strong + 1e-2 * torch.randn(rows, cols, generator=g)


@pytest.mark.parametrize("shape", [(64, 216), (256, 2304), (16, 16), (300, 20)])
def test_newton_schulz_gives_singular_values_in_a_band_around_one(shape):
    matrix = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    result = orthogonalize(matrix, steps=5)
    assert result.dtype == torch.bfloat16 and result.shape == matrix.shape
    singular = torch.linalg.svdvals(result.float())
    assert singular.min() > 0.6 and singular.max() < 1.25


def test_newton_schulz_keeps_the_singular_vectors_and_lifts_weak_directions():
    matrix = _low_rank_heavy(32, 96)
    u, s, vh = torch.linalg.svd(matrix, full_matrices=False)
    result = orthogonalize(matrix, steps=5).float()
    # In the matrix's own singular basis the strong directions stay where they were (bf16 rounding
    # only mixes the weak ones, whose singular values lie too close together to tell apart).
    in_basis = u.T @ result @ vh.T
    off_diagonal = in_basis - torch.diag(torch.diagonal(in_basis))
    assert off_diagonal[:3].abs().max() < 0.02 and off_diagonal[:, :3].abs().max() < 0.02
    assert s[0] / s[-1] > 500  # the input's directions differ in size a thousandfold ...
    assert torch.diagonal(in_basis)[:3].min() > 0.6  # ... the three strong ones end near 1
    assert torch.diagonal(in_basis)[3:].mean() > 0.2  # and the weak ones are lifted far above 1/1000


def test_newton_schulz_of_a_stack_orthogonalises_each_matrix_and_survives_zeros():
    stack = torch.stack([torch.randn(8, 24), torch.zeros(8, 24)])
    result = orthogonalize(stack, steps=5).float()
    singular = torch.linalg.svdvals(result[0])
    assert singular.min() > 0.6 and singular.max() < 1.25
    assert torch.equal(result[1], torch.zeros(8, 24))


class ConvNet(nn.Module):
    """Filters with and without a frozen one, BatchNorm, a biased conv and a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.frozen = nn.Conv2d(3, 4, 2, bias=False).requires_grad_(False)
        self.conv = nn.Conv2d(4, 8, 3, padding=1, bias=True)
        self.norm = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        x = torch.relu(self.norm(self.conv(self.frozen(x))))
        return self.head(torch.amax(self.conv2(x), dim=(2, 3)))


def test_muon_takes_trainable_filters_and_leaves_the_rest_to_sgd_groups():
    module = ConvNet()
    spec = Muon(learning_rate=0.2, momentum=0.5, sgd_lr_ratio=3.0, sgd_momentum=0.8, sgd_weight_decay=1e-3,
                norm_lr_scale=16.0, weight_decay=0.1)
    optimizer = spec.create(module)
    assert isinstance(optimizer, MuonWithSGD)
    filters, others, norms = optimizer.param_groups
    assert [id(p) for p in filters["params"]] == [id(module.conv.weight), id(module.conv2.weight)]
    assert {id(p) for p in others["params"]} == {id(module.conv.bias), id(module.head.weight), id(module.head.bias)}
    assert {id(p) for p in norms["params"]} == {id(module.norm.weight), id(module.norm.bias)}
    assert filters["muon"] and not others["muon"] and not norms["muon"]
    assert (filters["lr"], filters["momentum"], filters["weight_decay"]) == (0.2, 0.5, 0.1)
    assert others["lr"] == pytest.approx(0.6) and norms["lr"] == pytest.approx(0.6 * 16)
    assert others["weight_decay"] == pytest.approx(1e-3) and norms["weight_decay"] == pytest.approx(1e-3 / 16)
    assert others["momentum"] == norms["momentum"] == 0.8 and others["nesterov"] and norms["nesterov"]


def test_a_module_without_filters_trains_every_parameter_with_sgd():
    optimizer = Muon().create(nn.Linear(3, 2))
    assert [group["muon"] for group in optimizer.param_groups] == [False]


def _reference_step(module: ConvNet, buffers: dict, lr: float, momentum: float, sgd_lr: float, sgd_momentum: float,
                    sgd_decay: float, decay: float) -> None:
    """The documented update, one parameter at a time, with the same orthogonalisation."""
    with torch.no_grad():
        for p in module.parameters():
            if not p.requires_grad:
                continue
            grad = p.grad.clone()
            if p.ndim == 4:
                buffers[p] = buffers.get(p, torch.zeros_like(p)) * momentum + grad
                direction = torch.add(grad, buffers[p], alpha=momentum)  # the optimiser's rounding: bf16 magnifies it
                p.mul_(math.sqrt(p.shape[0]) / p.norm())
                p.sub_(lr * orthogonalize(direction.reshape(p.shape[0], -1), 3).float().view_as(p))
                p.mul_(1 - lr * decay)
            else:
                grad = grad + sgd_decay * p
                buffers[p] = buffers.get(p, torch.zeros_like(p)) * sgd_momentum + grad
                p.sub_(sgd_lr * (grad + sgd_momentum * buffers[p]))


def test_each_step_follows_the_documented_update_for_filters_and_the_rest():
    torch.manual_seed(0)
    module = ConvNet()
    reference = copy.deepcopy(module)
    optimizer = Muon(learning_rate=0.05, momentum=0.6, weight_decay=0.01, sgd_lr_ratio=2.0, sgd_momentum=0.85,
                     sgd_weight_decay=1e-3, renormalize=True).create(module)
    for step in range(3):
        # Each step starts the reference from the optimiser's parameters and momentum: bf16's coarse
        # rounding in the orthogonalisation would otherwise magnify float rounding from step to step.
        reference.load_state_dict(module.state_dict())
        buffers = {ref: optimizer.state[p]["momentum_buffer"].clone()
                   for p, ref in zip(module.parameters(), reference.parameters()) if p in optimizer.state}
        x = torch.randn(4, 3, 9, 9, generator=torch.Generator().manual_seed(step))
        for net in (module, reference):
            net.zero_grad()
            net(x).square().mean().backward()
        optimizer.step()
        _reference_step(reference, buffers, 0.05, 0.6, 0.1, 0.85, 1e-3, 0.01)
        for (name, got), want in zip(module.named_parameters(), reference.parameters()):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5, msg=f"{name} after step {step}")


def test_renormalised_filter_banks_keep_a_norm_near_root_out_channels():
    torch.manual_seed(0)
    module = ConvNet()
    optimizer = Muon(learning_rate=0.01, renormalize=True).create(module)
    for step in range(3):
        module.zero_grad()
        module(torch.randn(4, 3, 9, 9)).square().mean().backward()
        optimizer.step()
    for conv in (module.conv, module.conv2):
        assert conv.weight.norm().item() == pytest.approx(math.sqrt(8), rel=0.05)


def test_filters_keep_their_scale_by_default_and_a_group_at_rate_zero_is_not_touched():
    torch.manual_seed(0)
    module = ConvNet()
    before = module.conv.weight.norm().item()
    optimizer = Muon(learning_rate=1e-6).create(module)  # renormalize off: only the tiny step moves the filters
    module(torch.randn(4, 3, 9, 9)).square().mean().backward()
    optimizer.step()
    assert module.conv.weight.norm().item() == pytest.approx(before, rel=1e-3) != pytest.approx(math.sqrt(8), rel=0.05)
    held = ConvNet()
    optimizer = Muon(learning_rate=0.01, renormalize=True).create(held)
    optimizer.param_groups[0]["lr"] = 0.0  # as fine-tuning holds a pretrained body still
    filters = held.conv.weight.detach().clone()
    held(torch.randn(4, 3, 9, 9)).square().mean().backward()
    optimizer.step()
    assert torch.equal(held.conv.weight, filters)


def test_the_schedule_sets_every_groups_learning_rate_from_its_own_initial_rate():
    torch.manual_seed(0)
    model = Model(ConvNet(), num_classes=4, device="cpu")
    schedule = WarmupLinearDecay(warmup=0.0, start=1.0, end=0.0)
    model.compile(optimizer=Muon(learning_rate=0.1, sgd_lr_ratio=5.0, norm_lr_scale=4.0, schedule=schedule),
                  precision="fp32")
    x, y = tiny_images(count=40)
    recorder = LearningRates()
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, seed=0, callbacks=[recorder])
    total = 2 * 5
    assert len(recorder.seen) == total
    for step, rates in enumerate(recorder.seen):
        factor = 1.0 - step / total  # no warm-up, linear decay to 0 at the end
        assert rates == pytest.approx([0.1 * factor, 0.5 * factor, 2.0 * factor])
    assert model.learning_rate == pytest.approx(0.1)  # Keras's reading: the base rate of the spec


def test_state_dict_round_trip_continues_exactly():
    torch.manual_seed(0)
    module = ConvNet()
    spec = Muon(learning_rate=0.05, sgd_weight_decay=1e-3)
    optimizer = spec.create(module)
    batches = [torch.randn(4, 3, 9, 9, generator=torch.Generator().manual_seed(i)) for i in range(4)]

    def train(net, opt, xs):
        for x in xs:
            opt.zero_grad()
            net(x).square().mean().backward()
            opt.step()

    train(module, optimizer, batches[:2])
    saved_module, saved_state = copy.deepcopy(module.state_dict()), copy.deepcopy(optimizer.state_dict())
    assert len(saved_state["state"]) == sum(p.requires_grad for p in module.parameters())  # every momentum buffer
    train(module, optimizer, batches[2:])

    restored = ConvNet()
    restored.load_state_dict(saved_module)
    restored_optimizer = spec.create(restored)
    restored_optimizer.load_state_dict(saved_state)
    train(restored, restored_optimizer, batches[2:])
    for got, want in zip(restored.parameters(), module.parameters()):
        assert torch.equal(got, want)


def test_a_four_times_larger_batch_doubles_the_filters_rate_and_quadruples_the_others():
    spec = Muon(learning_rate=0.1, sgd_lr_ratio=5.0)
    scaled = spec.scaled_to_batch(4.0)
    assert scaled.learning_rate == pytest.approx(0.2)
    assert scaled.learning_rate * scaled.sgd_lr_ratio == pytest.approx(4 * 0.1 * 5.0)
    assert scaled.momentum == spec.momentum and scaled.schedule == spec.schedule


def test_muon_is_exposed_as_trainval_optimizers_and_by_name():
    assert trainval.optimizers.Muon is Muon
    optimizer, spec = resolve_optimizer("muon", ConvNet())
    assert isinstance(optimizer, MuonWithSGD) and spec == Muon()


@pytest.mark.parametrize("kwargs, message", [
    ({"learning_rate": 0.0}, "learning_rate must be positive"),
    ({"momentum": 1.0}, r"momentum must be in \[0, 1\)"),
    ({"momentum": 0.0}, "Nesterov momentum needs momentum > 0"),
    ({"sgd_momentum": -0.1}, r"sgd_momentum must be in \[0, 1\)"),
    ({"sgd_momentum": 0.0}, "Nesterov momentum needs sgd_momentum > 0"),
    ({"weight_decay": -1.0}, "weight_decay must be >= 0"),
    ({"sgd_weight_decay": -1.0}, "sgd_weight_decay must be >= 0"),
    ({"sgd_lr_ratio": 0.0}, "sgd_lr_ratio must be positive"),
    ({"norm_lr_scale": -2.0}, "norm_lr_scale must be positive"),
    ({"ns_steps": 0}, "ns_steps must be a whole number"),
    ({"ns_steps": 2.5}, "ns_steps must be a whole number"),
    ({"decay": -1.0}, "decay must be >= 0"),
])
def test_invalid_settings_are_refused_with_what_to_change(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        Muon(**kwargs).create(TinyNet())
