import pytest
import torch

from rharm import models


@pytest.mark.parametrize("name,out_dim,lo,hi", [
    ("small_cnn", 128, 5e4, 1e6),
    ("resnet18", 512, 11.0e6, 11.4e6),   # torchvision ResNet-18 without fc: 11.17M
    ("resnet34", 512, 21.0e6, 21.5e6),   # without fc: 21.28M
])
def test_backbone_shapes_and_sizes(name, out_dim, lo, hi):
    torch.manual_seed(0)
    net = models.build_backbone(name)
    assert net.out_dim == out_dim
    assert lo < models.count_parameters(net) < hi
    net.eval()
    with torch.no_grad():
        assert net(torch.rand(2, 3, 32, 32)).shape == (2, out_dim)


def test_resnet_is_adapted_to_cifar():
    net = models.build_backbone("resnet18")
    assert net.conv1.kernel_size == (3, 3) and net.conv1.stride == (1, 1) and net.conv1.bias is None
    assert isinstance(net.maxpool, torch.nn.Identity) and isinstance(net.fc, torch.nn.Identity)


def test_bad_names_raise():
    with pytest.raises(ValueError, match="backbone='resnet50'.*resnet18"):
        models.build_backbone("resnet50")
    with pytest.raises(ValueError, match="init='imagenet21k'"):
        models.build_backbone("resnet18", init="imagenet21k")
    with pytest.raises(ValueError, match="small_cnn"):
        models.build_backbone("small_cnn", init="imagenet")
    with pytest.raises(ValueError, match="method='byol'"):
        models.ContrastiveModel("byol", "small_cnn")


def test_imagenet_init_offline_error_is_clear(monkeypatch):
    import torchvision

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torchvision.models, "resnet18", offline)
    with pytest.raises(RuntimeError, match="init='random'"):
        models.build_backbone("resnet18", init="imagenet")


def test_heads():
    h = torch.randn(4, 512)
    assert models.ProjectionHead(512)(h).shape == (4, 128)
    head = models.ProjectionHead(512)
    assert [type(m) for m in head.net] == [torch.nn.Linear, torch.nn.ReLU, torch.nn.Linear]
    assert head.net[0].out_features == 2048
    z = models.SimSiamProjector(512)(h)
    assert z.shape == (4, 2048)
    assert models.SimSiamPredictor()(z).shape == (4, 2048)
    assert models.SimSiamPredictor().net[0].out_features == 512


@pytest.mark.parametrize("method,proj", [("simclr", 128), ("simsiam", 2048)])
def test_contrastive_model(method, proj):
    m = models.ContrastiveModel(method, "small_cnn")
    h, z = m(torch.rand(3, 3, 32, 32))
    assert h.shape == (3, 128) and z.shape == (3, proj)
    if method == "simsiam":
        assert m.predict(z).shape == (3, proj)
    else:
        with pytest.raises(RuntimeError):
            m.predict(z)
