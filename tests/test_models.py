import pytest
import torch

from rharm.vision import models


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


def _no_network(monkeypatch):
    import urllib.request

    def offline(*args, **kwargs):
        raise AssertionError("init='imagenet' must not touch the network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)


def test_imagenet_init_without_weights_file_names_where_to_put_it(monkeypatch, tmp_path):
    _no_network(monkeypatch)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(models.IMAGENET_WEIGHTS_ENV, raising=False)
    with pytest.raises(FileNotFoundError, match=r"resnet18-f37072fd\.pth.*RHARM_IMAGENET_WEIGHTS"):
        models.build_backbone("resnet18", init="imagenet")
    with pytest.raises(FileNotFoundError, match="init='random'"):
        models.ContrastiveModel("simclr", "resnet34", init="imagenet")


def test_imagenet_init_reads_a_local_file_offline(monkeypatch, tmp_path):
    import torchvision

    _no_network(monkeypatch)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    torch.manual_seed(1)
    fake = torchvision.models.resnet18(weights=None).state_dict()  # stands in for the ImageNet file
    folder = tmp_path / "weights"
    folder.mkdir()
    torch.save(fake, folder / models.IMAGENET_FILES["resnet18"])
    monkeypatch.setenv(models.IMAGENET_WEIGHTS_ENV, str(folder))  # a folder holding the file
    net = models.build_backbone("resnet18", init="imagenet")
    assert torch.equal(net.layer1[0].conv1.weight, fake["layer1.0.conv1.weight"])
    assert torch.equal(net.bn1.running_mean, fake["bn1.running_mean"])
    assert net.conv1.kernel_size == (3, 3)  # the CIFAR stem is still fresh
    monkeypatch.delenv(models.IMAGENET_WEIGHTS_ENV)
    net = models.build_backbone("resnet18", init="imagenet", weights_path=folder / models.IMAGENET_FILES["resnet18"])
    assert torch.equal(net.layer4[1].conv2.weight, fake["layer4.1.conv2.weight"])
    # the wrong architecture's file is refused with the path in the message
    with pytest.raises(ValueError, match="not a torchvision resnet34 state dict"):
        models.build_backbone("resnet34", init="imagenet", weights_path=folder / models.IMAGENET_FILES["resnet18"])


def test_training_flops_per_view():
    # ResNet-18 on 32x32: 0.56 GMAC forward (conv layers), 6 FLOP per MAC forward + backward -> ~3.3 GFLOP
    assert models.training_flops_per_view("resnet18") == pytest.approx(3.34e9, rel=0.02)
    assert 2.0 < models.training_flops_per_view("resnet34") / models.training_flops_per_view("resnet18") < 2.2
    conv = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)
    assert models.forward_macs(conv, (2, 3, 4, 4)) == 8 * 4 * 4 * 27


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
