"""Registry-wide loss tests: every name in vk.losses.available() gets the same fixed set."""

from __future__ import annotations

import inspect
import math

import pytest
import torch

import vaekit as vk

# constructor kwargs for tests (no downloads: random backbones)
BUILD_KWARGS = {"perceptual": {"weights": None}, "lpips": {"weights": None}}
# losses whose minimum at identity is not 0 (likelihoods include their constants)
IDENTITY_VALUE = {"gaussian_nll": 0.5 * math.log(2 * math.pi), "laplace_nll": math.log(2.0)}
# losses that are densities (may be negative)
SIGNED = {"gaussian_nll", "laplace_nll"}
# losses that require values in [0, 1]
RANGE_CHECKED = {"bce", "ssim", "ms_ssim", "perceptual", "lpips"}
# built-ins that hold a network (no functional twin, no float64 gradcheck)
NETWORK = {"perceptual", "lpips"}

RECON_NAMES = [n for n in vk.losses.available() if n != "kl"]


def make(name: str, **kwargs) -> torch.nn.Module:
    torch.manual_seed(0)  # random backbones: the same network for every call
    return vk.losses.build(name, **{**BUILD_KWARGS.get(name, {}), **kwargs})


@pytest.fixture(scope="module")
def images() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 32, 32, generator=g)
    noisy = (x + 0.2 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    return noisy, x


@pytest.fixture(scope="module")
def modules() -> dict[str, torch.nn.Module]:
    return {name: make(name) for name in RECON_NAMES}


def twin(name: str):
    return getattr(vk.functional, f"{name}_loss", None) or getattr(vk.functional, name, None)


@pytest.mark.parametrize("name", RECON_NAMES)
def test_identity_is_minimum(name, modules, images):
    noisy, x = images
    binary = (x > 0.5).float()  # so that bce(x, x) = 0 too
    loss = modules[name]
    at_identity = loss(binary, binary)
    assert at_identity.ndim == 0
    assert float(at_identity) == pytest.approx(IDENTITY_VALUE.get(name, 0.0), abs=1e-5)
    assert float(loss(x, x)) <= float(loss(noisy, x)) + 1e-6


@pytest.mark.parametrize("name", sorted(set(RECON_NAMES) - SIGNED))
def test_non_negative(name, modules, images):
    noisy, x = images
    assert float(modules[name](noisy, x)) >= 0
    assert float(modules[name](x, noisy)) >= 0


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("name", RECON_NAMES)
def test_finite_in_low_precision_autocast(name, dtype, modules, images):
    noisy, x = images
    with torch.autocast("cpu", dtype=dtype):
        value = modules[name](noisy.to(dtype), x.to(dtype))
    assert torch.isfinite(value)
    assert value.dtype == torch.float32  # the float32 island


@pytest.mark.parametrize("name", RECON_NAMES)
def test_reduction_shapes(name, images):
    noisy, x = images
    try:
        losses = {r: make(name, reduction=r) for r in ("none", "mean", "sum", "batchmean")}
    except TypeError:
        pytest.skip(f"{name} takes no reduction argument")
    none = losses["none"](noisy, x)
    assert none.shape[0] == x.shape[0]
    assert none.shape in (x.shape[:1], x.shape)  # per image, or per element / frequency
    for r in ("mean", "sum", "batchmean"):
        assert losses[r](noisy, x).shape == ()
    torch.testing.assert_close(losses["mean"](noisy, x), none.mean())
    torch.testing.assert_close(losses["sum"](noisy, x), none.sum())
    torch.testing.assert_close(
        losses["batchmean"](noisy, x), none.reshape(len(x), -1).sum(1).mean()
    )


def test_every_network_free_loss_has_a_functional_twin():
    assert [n for n in RECON_NAMES if twin(n) is None] == sorted(NETWORK)


@pytest.mark.parametrize("name", [n for n in RECON_NAMES if n not in NETWORK])
def test_function_equals_module(name, modules, images):
    noisy, x = images
    torch.testing.assert_close(twin(name)(noisy, x), modules[name](noisy, x))


TWINNED = sorted(
    n for n in RECON_NAMES if issubclass(vk.losses.get(n), vk.losses._common.FunctionalLoss)
)


@pytest.mark.parametrize("name", TWINNED)
def test_module_takes_exactly_the_functions_keywords(name):
    # FunctionalLoss builds the constructor from the function: same names, same defaults
    cls = vk.losses.get(name)
    keywords = [
        (p.name, p.default)
        for p in inspect.signature(cls.function).parameters.values()
        if p.kind is p.KEYWORD_ONLY
    ]
    assert [(p.name, p.default) for p in inspect.signature(cls).parameters.values()] == keywords
    module = cls()
    assert list(module.hparams) == [k for k, _ in keywords]
    with pytest.raises(TypeError, match=r"unknown argument\(s\) \['reducton'\]"):
        cls(reducton="sum")


def test_module_checks_its_arguments_when_built():
    with pytest.raises(ValueError, match="weights must be non-negative"):
        vk.losses.MSSSIMLoss(weights=[-1.0, 1.0])
    with pytest.raises(ValueError, match="reduction must be one of"):
        vk.losses.L1Loss(reduction="avg")
    assert vk.losses.FFTLoss(focal=1.0).squared is True  # resolved once, stored resolved


@pytest.mark.parametrize("name", sorted(set(RECON_NAMES) - NETWORK))
def test_gradcheck_float64(name, modules):
    side = 24 if name == "ms_ssim" else 8  # 24 px: two MS-SSIM levels
    g = torch.Generator().manual_seed(1)
    target = 0.1 + 0.8 * torch.rand(1, 2, side, side, generator=g, dtype=torch.float64)
    input = 0.1 + 0.8 * torch.rand(1, 2, side, side, generator=g, dtype=torch.float64)
    input.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda a: modules[name](a, target), (input,), eps=1e-6, atol=1e-4
    )


@pytest.mark.parametrize("name", RECON_NAMES)
def test_compiles_without_graph_breaks(name, modules, images):
    noisy, x = images
    compiled = torch.compile(modules[name], backend="eager", fullgraph=True)
    torch.testing.assert_close(compiled(noisy, x), modules[name](noisy, x))


@pytest.mark.parametrize("name", RECON_NAMES)
def test_bad_input_messages(name, modules, images):
    noisy, x = images
    loss = modules[name]
    with pytest.raises(ValueError, match=r"\(2, 3, 32, 32\).*\(2, 3, 16, 16\)"):
        loss(noisy, x[..., :16, :16])
    with pytest.raises(ValueError, match=r"4-D.*3-D"):
        loss(noisy[0], x[0])
    with pytest.raises(TypeError, match="floating-point"):
        loss((noisy * 255).to(torch.uint8), x)
    if name in RANGE_CHECKED:
        with pytest.raises(ValueError, match=r"\[0, 1\].*got values in \[-0\.5"):
            loss(noisy - 0.5, x)
        with pytest.raises(ValueError, match=r"target must lie in \[0, 1\]"):
            loss(noisy, x + 1.0)


@pytest.mark.parametrize("name", RECON_NAMES)
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("which", ["input", "target"])
def test_non_finite_values_raise(name, bad, which, modules, images):
    noisy, x = (t.clone() for t in images)
    (noisy if which == "input" else x)[1, 2, 3, 4] = bad
    # range-checked losses too: NaN is not a scaling problem, so no "must lie in [0, 1]"
    with pytest.raises(ValueError, match=rf"{which} must be finite, got 1 NaN/Inf value"):
        modules[name](noisy, x)


# -- registry -------------------------------------------------------------------------------


@pytest.fixture
def custom_loss():
    class Huber(torch.nn.Module):
        reduction = "mean"

        def forward(self, input, target):
            return torch.nn.functional.smooth_l1_loss(input, target)

    vk.losses.register("test_huber", aliases=("test_smooth_l1",))(Huber)
    try:
        yield Huber
    finally:
        vk.losses.unregister("test_huber")


def test_builtin_names_present():
    expected = {"l1", "mse", "bce", "ssim", "ms_ssim", "fft", "perceptual", "lpips"}
    assert expected | {"gaussian_nll", "laplace_nll", "kl"} <= set(vk.losses.available())
    assert isinstance(vk.losses.build("kl"), vk.losses.KL)
    assert isinstance(vk.losses.build("msssim"), vk.losses.MSSSIMLoss)  # alias


def test_unknown_name_lists_known_and_close_matches():
    with pytest.raises(ValueError, match=r"unknown loss 'ssmi'.*'l1'.*did you mean 'ssim'"):
        vk.losses.build("ssmi")
    with pytest.raises(ValueError, match=r"unknown loss 'SSMI'.*did you mean 'ssim'"):
        vk.losses.build("SSMI")


def test_names_ignore_case(custom_loss):
    assert isinstance(vk.losses.build("SSIM"), vk.losses.SSIMLoss)
    assert isinstance(vk.losses.build("Spectral"), vk.losses.FFTLoss)  # aliases too
    assert vk.losses.get("MS_SSIM") is vk.losses.MSSSIMLoss
    assert isinstance(vk.losses.build("TEST_Smooth_L1"), custom_loss)
    assert "SSIM" not in vk.losses.available()  # listed as registered
    with pytest.raises(ValueError, match=r"'L1' is already registered as 'l1'.*ignore case"):
        vk.losses.register("L1")(custom_loss)
    with pytest.raises(ValueError, match=r"'Test_Huber' is already registered as 'test_huber'"):
        vk.losses.register("other", aliases=("Test_Huber",))(custom_loss)
    with pytest.raises(ValueError, match="differ in more than case"):
        vk.losses.register("test_twice", aliases=("TEST_TWICE",))(custom_loss)
    assert "test_twice" not in vk.losses.available()


def test_mixed_case_name_is_found_in_any_case(custom_loss):
    vk.losses.register("Test_CamelLoss")(custom_loss)
    try:
        assert isinstance(vk.losses.build("test_camelloss"), custom_loss)
        assert "Test_CamelLoss" in vk.losses.available()
    finally:
        vk.losses.unregister("TEST_CAMELLOSS")
    assert "Test_CamelLoss" not in vk.losses.available()


def test_duplicate_name_is_an_error(custom_loss):
    with pytest.raises(ValueError, match="already registered"):
        vk.losses.register("l1")(custom_loss)
    with pytest.raises(ValueError, match="already registered"):
        vk.losses.register("other", aliases=("test_smooth_l1",))(custom_loss)


def test_user_loss_works_like_a_builtin(custom_loss, images):
    noisy, x = images
    assert "test_huber" in vk.losses.available()
    assert isinstance(vk.losses.build("test_smooth_l1"), custom_loss)
    recon = vk.losses.Weighted({"test_huber": 2.0, "l1": 1.0})
    terms = recon.forward_terms(noisy, x)
    torch.testing.assert_close(recon(noisy, x), 2 * terms["test_huber"] + terms["l1"])
    multi = vk.losses.MultiScale("test_huber", scales=2)
    assert multi.forward_terms(noisy, x).keys() == {"test_huber"}


def test_unregister_removes_aliases(custom_loss):
    vk.losses.unregister("test_huber")
    assert "test_smooth_l1" not in vk.losses.available(aliases=True)
    with pytest.raises(ValueError, match="unknown loss"):
        vk.losses.unregister("test_huber")
    vk.losses.register("test_huber")(custom_loss)  # for the fixture's cleanup


def test_factory_must_return_a_module():
    vk.losses.register("test_not_a_module")(lambda: 3)
    try:
        with pytest.raises(TypeError, match=r"must return an nn\.Module"):
            vk.losses.build("test_not_a_module")
    finally:
        vk.losses.unregister("test_not_a_module")


# -- loss-specific behaviour ----------------------------------------------------------------


def test_bce_logits_matches_probabilities(images):
    noisy, x = images
    logits = torch.logit(noisy.clamp(1e-3, 1 - 1e-3))
    torch.testing.assert_close(
        vk.functional.bce_loss(logits, x, logits=True),
        vk.functional.bce_loss(torch.sigmoid(logits), x),
        atol=1e-4,
        rtol=1e-4,
    )
    vk.functional.bce_loss(logits * 10, x, logits=True)  # logits may leave [0, 1]


@pytest.mark.parametrize("name", ["gaussian_nll", "laplace_nll"])
def test_likelihood_variance_models(name, images):
    noisy, x = images
    fn = twin(name)
    key = "sigma" if name == "gaussian_nll" else "scale"
    optimal = fn(noisy, x, **{key: "optimal"})
    for fixed in (0.05, 0.2, 1.0):  # the batch-optimal scale beats every fixed one
        assert float(optimal) <= float(fn(noisy, x, **{key: fixed})) + 1e-6
    logvar = torch.full((1, 1, 1, 1), math.log(0.04))  # global variance 0.04
    if name == "gaussian_nll":
        torch.testing.assert_close(fn(noisy, x, logvar), fn(noisy, x, sigma=0.2))
    else:  # var = 2 b² -> b = sqrt(0.02)
        torch.testing.assert_close(fn(noisy, x, logvar), fn(noisy, x, scale=math.sqrt(0.02)))
    with pytest.raises(ValueError, match="two variance models"):
        fn(noisy, x, logvar, **{key: 0.1})
    with pytest.raises(ValueError, match=r"broadcast.*\(2, 3, 16, 16\)"):
        fn(noisy, x, torch.zeros(2, 3, 16, 16))
    learned = make(name, **{key: "learned"})
    learned(noisy, x).backward()
    assert learned.logvar.grad is not None and float(learned.logvar.grad) != 0
    with pytest.raises(ValueError, match="two variance models"):
        learned(noisy, x, logvar=logvar)


def test_gaussian_nll_is_a_true_log_likelihood(images):
    noisy, x = images
    logvar = torch.randn(x.shape) * 0.3
    expected = -torch.distributions.Normal(noisy, torch.exp(0.5 * logvar)).log_prob(x)
    torch.testing.assert_close(
        vk.functional.gaussian_nll(noisy, x, logvar, reduction="none"), expected
    )
    b = 0.3
    lap = -torch.distributions.Laplace(noisy, b).log_prob(x).mean()
    torch.testing.assert_close(vk.functional.laplace_nll(noisy, x, scale=b), lap)
