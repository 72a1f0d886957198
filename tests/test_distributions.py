"""DiagonalGaussian against torch.distributions, for flat and spatial latents."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.distributions import Independent, Normal, kl_divergence

import vaekit as vk

shapes = st.sampled_from([(3, 5), (2, 4, 3, 3), (1, 1)])


def _ref(q: vk.DiagonalGaussian) -> Independent:
    return Independent(Normal(q.mean.double(), q.std.double()), q.mean.ndim - 1)


@given(shape=shapes, seed=st.integers(0, 2**16))
def test_kl_log_prob_entropy_match_torch_distributions(shape, seed):
    g = torch.Generator().manual_seed(seed)
    q = vk.DiagonalGaussian(torch.randn(shape, generator=g), torch.randn(shape, generator=g) * 2)
    p = vk.DiagonalGaussian(torch.randn(shape, generator=g), torch.randn(shape, generator=g))
    prior = Independent(
        Normal(torch.zeros(shape).double(), torch.ones(shape).double()), len(shape) - 1
    )
    torch.testing.assert_close(q.kl().double(), kl_divergence(_ref(q), prior), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(
        q.kl(p).double(), kl_divergence(_ref(q), _ref(p)), rtol=1e-4, atol=1e-4
    )
    z = q.sample(generator=g)
    torch.testing.assert_close(
        q.log_prob(z).double(), _ref(q).log_prob(z.double()), rtol=1e-4, atol=1e-3
    )
    torch.testing.assert_close(q.entropy().double(), _ref(q).entropy(), rtol=1e-5, atol=1e-4)
    assert q.kl().shape == (shape[0],)


def test_kl_known_value_and_float32_island():
    q = vk.DiagonalGaussian(torch.ones(2, 6), torch.zeros(2, 6))
    torch.testing.assert_close(q.kl(), torch.full((2,), 3.0))  # 0.5 nat per dim
    half = vk.DiagonalGaussian(torch.ones(2, 6).half(), torch.zeros(2, 6).bfloat16())
    assert half.kl().dtype == torch.float32


def test_sampling_statistics_and_generator():
    q = vk.DiagonalGaussian(
        torch.full((1, 20000), 2.0), torch.full((1, 20000), 2 * torch.log(torch.tensor(3.0)))
    )
    s = q.sample(generator=torch.Generator().manual_seed(0))
    assert abs(s.mean().item() - 2.0) < 0.1 and abs(s.std().item() - 3.0) < 0.1
    a = q.sample(generator=torch.Generator().manual_seed(5))
    b = q.sample(generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    n = q.sample_n(4)
    assert n.shape == (4, 1, 20000)
    assert q.log_prob(n).shape == (4, 1)
    assert torch.equal(q.mode(), q.mean)


def test_sample_is_reparameterised():
    mean = torch.zeros(2, 3, requires_grad=True)
    logvar = torch.zeros(2, 3, requires_grad=True)
    vk.DiagonalGaussian(mean, logvar).sample().sum().backward()
    assert mean.grad is not None and logvar.grad is not None and logvar.grad.abs().sum() > 0


def test_clamp_and_bad_input():
    q = vk.DiagonalGaussian(torch.zeros(1, 2), torch.tensor([[-50.0, 50.0]]))
    assert q.logvar.tolist() == [[-10.0, 10.0]]
    free = vk.DiagonalGaussian(torch.zeros(1, 2), torch.tensor([[-50.0, 50.0]]), logvar_range=None)
    assert free.logvar.tolist() == [[-50.0, 50.0]]
    with pytest.raises(ValueError, match="same shape"):
        vk.DiagonalGaussian(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="batch dimension"):
        vk.DiagonalGaussian(torch.zeros(3), torch.zeros(3))
    with pytest.raises(TypeError, match="floating-point"):
        vk.DiagonalGaussian(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"z must have shape \(2, 3\)"):
        vk.DiagonalGaussian(torch.zeros(2, 3), torch.zeros(2, 3)).log_prob(torch.zeros(2, 4))
    with pytest.raises(TypeError, match="DiagonalGaussian"):
        vk.DiagonalGaussian(torch.zeros(2, 3), torch.zeros(2, 3)).kl(torch.zeros(2, 3))
