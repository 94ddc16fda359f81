import math

import pytest
import torch
import torch.nn.functional as F

from rharm.vision.losses import negative_cosine, nt_xent, simsiam_loss


def nt_xent_loop(z1, z2, tau, clamp=False):
    """Independent, slow reference: explicit loops over the 2N anchors."""
    views = [F.normalize(v, dim=0) for v in list(z1) + list(z2)]
    n = z1.shape[0]
    total = 0.0
    for a in range(2 * n):
        pos = a + n if a < n else a - n
        sims = {}
        for b in range(2 * n):
            if b == a:
                continue
            s = float(views[a] @ views[b])
            if clamp:
                s = max(s, 1e-7)
            sims[b] = s / tau
        denom = sum(math.exp(v) for v in sims.values())
        total += -(sims[pos] - math.log(denom))
    return total / (2 * n)


@pytest.mark.parametrize("n", [2, 5, 9])
@pytest.mark.parametrize("d", [3, 16])
@pytest.mark.parametrize("tau", [0.1, 0.5, 1.0])
@pytest.mark.parametrize("clamp", [False, True])
def test_matches_loop_reference(n, d, tau, clamp):
    g = torch.Generator().manual_seed(n * 100 + d)
    z1, z2 = torch.randn(n, d, generator=g, dtype=torch.float64), torch.randn(n, d, generator=g, dtype=torch.float64)
    got = float(nt_xent(z1, z2, tau, clamp=clamp))
    assert got == pytest.approx(nt_xent_loop(z1, z2, tau, clamp), rel=1e-5)


@pytest.mark.parametrize("n", [1, 3, 6])
@pytest.mark.parametrize("tau", [0.2, 0.5, 1.0])
def test_closed_form_identical_views_orthogonal_negatives(n, tau):
    # both views of image i are the basis vector e_i: positive similarity 1, the 2N-2 negatives 0
    z = torch.eye(n, 8) * 3.0
    expected = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + 2 * n - 2))
    assert float(nt_xent(z, z.clone(), tau)) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("n", [2, 4])
def test_closed_form_all_views_equal(n):
    # every similarity is 1, so each anchor's softmax is uniform over 2N-1 candidates
    z = torch.ones(n, 5)
    assert float(nt_xent(z, z, 0.5)) == pytest.approx(math.log(2 * n - 1), rel=1e-6)


def test_closed_form_antipodal_negatives_and_clamp():
    # image 0 along +e, image 1 along -e: negatives have similarity -1
    z = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    tau = 0.5
    e = math.exp
    exact = -math.log(e(1 / tau) / (e(1 / tau) + 2 * e(-1 / tau)))
    clamped = -math.log(e(1 / tau) / (e(1 / tau) + 2 * e(1e-7 / tau)))
    assert float(nt_xent(z, z, tau)) == pytest.approx(exact, rel=1e-6)
    assert float(nt_xent(z, z, tau, clamp=True)) == pytest.approx(clamped, rel=1e-6)


def test_clamp_changes_value_only_with_negative_similarities():
    g = torch.Generator().manual_seed(0)
    pos = torch.rand(6, 4, generator=g)  # non-negative entries: every cosine >= 0
    pos2 = torch.rand(6, 4, generator=g)
    assert torch.allclose(nt_xent(pos, pos2, clamp=True), nt_xent(pos, pos2), atol=1e-6)
    mixed, mixed2 = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    assert not torch.allclose(nt_xent(mixed, mixed2, clamp=True), nt_xent(mixed, mixed2), atol=1e-4)


def test_gradient_flows_to_both_views():
    g = torch.Generator().manual_seed(1)
    z1 = torch.randn(4, 3, generator=g, requires_grad=True)
    z2 = torch.randn(4, 3, generator=g, requires_grad=True)
    nt_xent(z1, z2).backward()
    for z in (z1, z2):
        assert z.grad is not None and torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0


def test_nt_xent_rejects_bad_input():
    with pytest.raises(ValueError, match="temperature"):
        nt_xent(torch.ones(2, 3), torch.ones(2, 3), temperature=0)
    with pytest.raises(ValueError, match="same shape"):
        nt_xent(torch.ones(2, 3), torch.ones(3, 3))


def test_simsiam_value_and_stop_gradient():
    g = torch.Generator().manual_seed(2)
    z1 = torch.randn(5, 7, generator=g, requires_grad=True)
    z2 = torch.randn(5, 7, generator=g, requires_grad=True)
    # p equal to the other view's z: the loss reaches its minimum -1
    assert float(simsiam_loss(z2.detach() * 2, z1.detach(), z1, z2)) == pytest.approx(-1.0, abs=1e-6)
    p1 = torch.randn(5, 7, generator=g, requires_grad=True)
    p2 = torch.randn(5, 7, generator=g, requires_grad=True)
    loss = simsiam_loss(p1, p2, z1, z2)
    expected = -0.5 * (F.cosine_similarity(p1, z2).mean() + F.cosine_similarity(p2, z1).mean())
    assert float(loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-6)
    loss.backward()
    assert p1.grad.abs().sum() > 0 and p2.grad.abs().sum() > 0
    assert z1.grad is None and z2.grad is None  # stop-gradient on the targets
    assert float(negative_cosine(p1, p1).detach()) == pytest.approx(-1.0, abs=1e-6)
