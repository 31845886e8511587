"""The gradient filter's two starts: seeded with the first gradient (a jump), or from zero (a ramp)."""
import pytest
import torch

import grokcircuit as gc
from grokcircuit.train import GradFilter


def filtered(init: str, grads: list[torch.Tensor]) -> list[torch.Tensor]:
    model = torch.nn.Linear(2, 1, bias=False)
    filt, out = GradFilter(model, alpha=0.5, lamb=2.0, init=init), []
    for g in grads:
        model.weight.grad = g.clone()
        filt.apply()
        out.append(model.weight.grad.clone())
    return out


def test_a_zero_start_ramps_the_amplification_in():
    g = torch.tensor([[1.0, -2.0]])
    zero, seeded = filtered("zero", [g, g]), filtered("gradient", [g, g])
    torch.testing.assert_close(seeded[0], 3 * g)  # the jump: 1 + lamb times the raw gradient at once
    torch.testing.assert_close(zero[0], g + 2 * 0.5 * g)  # average 0.5 g after one step
    torch.testing.assert_close(zero[1], g + 2 * 0.75 * g)


def test_the_start_is_part_of_the_run_id_and_validated():
    cfg = gc.preset("cpu")
    assert cfg.train.grokfast_init == "zero"  # the cpu preset's filter starts at zero
    assert gc.override(cfg, **{"train.grokfast_init": "gradient"}).run_id != cfg.run_id
    with pytest.raises(gc.ConfigError, match="train.grokfast_init"):
        gc.override(cfg, **{"train.grokfast_init": "ones"}).validate()


def test_a_gradient_start_then_averages():
    g0, g1 = torch.tensor([[1.0, 0.0]]), torch.tensor([[3.0, 2.0]])
    _, second = filtered("gradient", [g0, g1])
    torch.testing.assert_close(second, g1 + 2 * (0.5 * g0 + 0.5 * g1))
