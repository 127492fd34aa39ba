"""kdlab.sftn: branch shapes for homogeneous and heterogeneous pairs, the three-term loss against a hand computation,
gradients from the branch terms reaching the teacher's first stage (the pitfall is a detached feature), export to
the plain zoo model, and clear errors for pairs that cannot be joined."""
import copy

import pytest
import torch
import torch.nn.functional as F

from kdlab.models import create
from kdlab.sftn import SFTN, SFTNLoss, stage_shapes

K = 10


def pair(teacher, student, seed=0):
    torch.manual_seed(seed)
    return SFTN(create(teacher, K), create(student, K))


@pytest.mark.parametrize("teacher, student", [("resnet20", "resnet8"), ("wrn_16_2", "wrn_16_1"),
                                              ("resnet32x4", "ShuffleV2"), ("vgg13", "vgg8")])
def test_branches_end_in_logits_and_transforms_give_the_students_stage_shapes(teacher, student):
    m = pair(teacher, student).train()
    x = torch.randn(2, 3, 32, 32)
    logits = m(x)
    n = len(m.teacher.stages)
    assert logits.shape == (2, K) and len(m.branch_logits) == n - 1
    assert all(b.shape == (2, K) for b in m.branch_logits)
    s_shapes = stage_shapes(create(student, K))
    feats = m.teacher.features(x)
    for i, branch in enumerate(m.branches):
        assert tuple(branch.transform(feats[i]).shape[1:]) == s_shapes[i]
        assert len(branch.stages) == n - 1 - i  # student stages i+1..N


def test_eval_forward_is_the_teacher_alone():
    m = pair("resnet20", "resnet8").eval()
    x = torch.randn(3, 3, 32, 32)
    assert torch.equal(m(x), m.teacher(x))
    assert m.branch_logits is None


def test_branches_are_fresh_copies_sharing_nothing():
    torch.manual_seed(0)
    student = create("resnet8", K)
    m = SFTN(create("resnet20", K), student)
    ids = [{id(p) for p in b.parameters()} for b in m.branches] + [{id(p) for p in student.parameters()},
                                                                    {id(p) for p in m.teacher.parameters()}]
    for i in range(len(ids)):
        for j in range(i + 1, len(ids)):
            assert not ids[i] & ids[j]
    with torch.no_grad():
        student.head[-1].weight.add_(1.0)
    assert not torch.equal(student.head[-1].weight, m.branches[0].head[-1].weight)


def test_loss_matches_a_hand_computation():
    m = pair("resnet14", "resnet8").train()
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 3, 5, 9])
    tau, lt, lkl, lce = 2.0, 0.7, 3.0, 1.5
    zt = m(x)
    branches = [b.detach().clone() for b in m.branch_logits]
    loss, stats = SFTNLoss(m, tau=tau, lambda_t=lt, lambda_kl=lkl, lambda_ce=lce)(zt, None, y)
    p_t = F.softmax(zt.detach().double() / tau, 1)
    kl = sum(tau ** 2 * (p_t * (p_t.log() - F.log_softmax(b.double() / tau, 1))).sum(1).mean() for b in branches)
    ce_b = sum(F.cross_entropy(b.double(), y) for b in branches)
    want = lt * F.cross_entropy(zt.detach().double(), y) + lkl * kl + lce * ce_b
    assert float(loss.detach()) == pytest.approx(float(want), rel=1e-5)
    assert float(stats["branch_kl"]) == pytest.approx(float(kl), rel=1e-5)
    assert 0 <= float(stats["branch_acc"]) <= 1


def test_branch_terms_reach_the_teachers_first_stage_and_a_detached_feature_would_not():
    m = pair("resnet14", "resnet8").train()
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, K, (4,))
    zt = m(x)
    loss, _ = SFTNLoss(m, lambda_t=0.0)(zt, None, y)  # only the branch terms (KL and branch CE)
    loss.backward()
    first = m.teacher.stages[0][0].conv1.weight.grad
    assert first is not None and first.abs().sum() > 0
    assert m.teacher.head[-1].weight.grad.abs().sum() > 0  # the KL's teacher side is not detached either

    # the unofficial code's pitfall: features detached before the branches cut that path
    m.zero_grad(set_to_none=True)
    feats, zt = m.teacher.forward_features(x)
    branch_ce = sum(F.cross_entropy(b(f.detach()), y) for b, f in zip(m.branches, feats[:-1]))
    branch_ce.backward()
    assert m.teacher.stages[0][0].conv1.weight.grad is None


def test_export_gives_the_plain_zoo_model():
    m = pair("resnet20", "resnet8")
    exported = m.export_teacher()
    plain = create("resnet20", K)
    assert list(exported.state_dict()) == list(plain.state_dict())
    plain.load_state_dict(exported.state_dict())  # strict
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(plain.eval()(x), exported(x))
    assert not exported.training
    exported.head[-1].weight.data.zero_()  # a copy: the SFTN's teacher is untouched
    assert m.teacher.head[-1].weight.abs().sum() > 0


def test_fit_trains_an_sftn_and_logs_the_terms(data):
    from kdlab.recipe import Recipe
    from kdlab.train import fit
    torch.manual_seed(0)
    m = SFTN(create("resnet8", data.num_classes), create("resnet8", data.num_classes))
    before = copy.deepcopy(m.teacher.stages[0].state_dict())
    h = fit(m, data, Recipe(epochs=1, batch_size=50, lr=0.05, schedule="onecycle"), objective=SFTNLoss(m),
            progress=False, verbose=False, eval_splits=("val",))
    for col in ("train_teacher_ce", "train_branch_kl", "train_branch_ce", "train_branch_acc", "val_acc"):
        assert col in h.columns and h[col].notna().all()
    assert any(not torch.equal(before[k], v) for k, v in m.teacher.stages[0].state_dict().items())


@pytest.mark.parametrize("teacher, student, message", [
    ("resnet20", "vgg8", "same number of stages"),
    ("ShuffleV2", "resnet8", "integer multiple"),
])
def test_pairs_that_cannot_be_joined_are_refused(teacher, student, message):
    with pytest.raises(ValueError, match=message):
        SFTN(create(teacher, K), create(student, K))


def test_other_bad_inputs():
    with pytest.raises(ValueError, match="classes"):
        SFTN(create("resnet20", 10), create("resnet8", 100))
    with pytest.raises(TypeError, match="zoo model"):
        SFTN(torch.nn.Linear(2, 2), create("resnet8", K))
    m = pair("resnet14", "resnet8")
    with pytest.raises(TypeError, match="SFTN model"):
        SFTNLoss(create("resnet8", K))
    with pytest.raises(ValueError, match="lambda_kl"):
        SFTNLoss(m, lambda_kl=-1)
    with pytest.raises(RuntimeError, match="train mode"):
        SFTNLoss(m)(torch.randn(2, K), None, torch.tensor([0, 1]))
    m.train()
    m(torch.randn(2, 3, 32, 32))
    with pytest.raises(ValueError, match="same batch"):
        SFTNLoss(m)(torch.randn(3, K), None, torch.tensor([0, 1, 2]))


def test_cached_student_friendly_teacher_is_the_plain_model_under_its_own_key(data, tmp_path):
    from kdlab.cache import get_teacher, teacher_key
    from kdlab.recipe import Recipe
    recipe = Recipe(epochs=1, batch_size=50, lr=0.05, schedule="onecycle")
    sftn = {"student": "resnet8", "lambda_kl": 3.0}
    t = get_teacher("resnet14", data, recipe, seed=0, home=tmp_path, verbose=False, progress=False, sftn=sftn)
    assert list(t.state_dict()) == list(create("resnet14", data.num_classes).state_dict())
    assert not t.training and not any(p.requires_grad for p in t.parameters())
    info = t.cache_info
    assert info["key"]["kind"] == "sftn-teacher" and info["key"]["student"] == "resnet8"
    assert "lambda_kl=3" in info["key"]["objective"]
    assert "train_branch_kl" in info["history"][0]
    assert info["path"].split("/")[-1].startswith("sftn-resnet8-resnet14-")
    plain_key = teacher_key("resnet14", data, recipe, 0)
    assert teacher_key("resnet14", data, recipe, 0, sftn=sftn) != plain_key
    assert teacher_key("resnet14", data, recipe, 0, sftn={**sftn, "tau": 2.0}) != teacher_key("resnet14", data, recipe, 0, sftn=sftn)
    again = get_teacher("resnet14", data, recipe, seed=0, home=tmp_path, verbose=False, sftn=sftn)  # from the cache
    assert all(torch.equal(a, b) for a, b in zip(t.state_dict().values(), again.state_dict().values()))
    with pytest.raises(ValueError, match="'student'"):
        get_teacher("resnet14", data, recipe, home=tmp_path, sftn={"lambda_kl": 3.0})
    with pytest.raises(ValueError, match="lambda_ce"):
        teacher_key("resnet14", data, recipe, sftn={"student": "resnet8", "lambda_ce": -1})
