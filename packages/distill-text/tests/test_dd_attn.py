"""dd-attn (Maekawa et al., ACL 2023): the contract set on the tiny two-class set, the meta-gradient through the
fine-tuning steps against finite differences (float64), the attention KL term, the artifact reproducing its
evaluation, and the errors raised before any compute."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from distill_core import Budget, distill, evaluate_summary, get_modality, load_artifact
from distill_core.errors import DistillError
from distill_core.testing import MethodContract
from distill_text.methods.dd_attn import _start_params, attention_kl, finetune
from distill_text.models import EncoderClassifier
from distill_text.summary import AttentionTextSummary

FAST = {"steps": 20, "batch_real": 16, "lr_init": 0.1}


class TestDDAttnContract(MethodContract):
    method = "dd-attn"
    ipc = 1
    overrides = FAST
    protocol_overrides = {"n_models": 2}


def _learner(encoder, num_classes: int = 2, dtype: torch.dtype = torch.float32) -> EncoderClassifier:  # type: ignore[no-untyped-def]
    net = EncoderClassifier(model_path=encoder.path, embed_scale=encoder.scale, num_classes=num_classes, max_len=8)
    net.reset_head(torch.Generator().manual_seed(0))
    return net.to(dtype)


def _sequences(n: int, length: int, dim: int, *, lengths: list[int], seed: int, dtype: torch.dtype) -> torch.Tensor:
    """``(n, L, d + 1)`` random unit-scale embeddings with the given unmasked lengths."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(n, length, 1, dtype=dtype)
    for i, k in enumerate(lengths):
        mask[i, :k] = 1.0
    return torch.cat([torch.randn(n, length, dim, generator=g, dtype=dtype) * mask, mask], dim=-1)


def test_meta_gradient_matches_finite_differences(encoder) -> None:  # type: ignore[no-untyped-def]
    """d outer / d (embeddings, attention logits, lr) through two fine-tuning steps with soft and attention labels
    equals central finite differences along random directions (float64)."""
    torch.manual_seed(0)
    dt = torch.float64
    net = _learner(encoder, dtype=dt)
    start = _start_params(net)
    x_syn = _sequences(2, 5, encoder.dim, lengths=[5, 3], seed=1, dtype=dt)
    x_real = _sequences(4, 5, encoder.dim, lengths=[5, 4, 3, 5], seed=2, dtype=dt)
    y_real = torch.tensor([0, 1, 0, 1])
    targets = torch.tensor([[0.8, 0.2], [0.3, 0.7]], dtype=dt)
    g = torch.Generator().manual_seed(3)
    logits0 = torch.randn(2, net.num_layers, net.num_heads, 1, 5, generator=g, dtype=dt)
    keys = x_syn[..., -1] > 0.5

    def outer(emb: torch.Tensor, att: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
        x = torch.cat([emb, x_syn[..., -1:]], dim=-1)
        probs = att.masked_fill(~keys[:, None, None, None, :], float("-inf")).softmax(-1)
        final = finetune(net, start, x, targets, attention_targets=probs, steps=2, lr=lr, attention_weight=0.7)
        return F.cross_entropy(functional_call(net, final, (x_real,)), y_real)

    emb = x_syn[..., :-1].clone().requires_grad_(True)
    att = logits0.clone().requires_grad_(True)
    lr = torch.tensor(0.05, dtype=dt, requires_grad=True)
    grads = torch.autograd.grad(outer(emb, att, lr), (emb, att, lr))
    assert all(torch.isfinite(gr).all() and gr.abs().sum() > 0 for gr in grads)
    eps = 1e-5
    for seed in (4, 5):
        gen = torch.Generator().manual_seed(seed)
        dirs = [torch.randn(t.shape, generator=gen, dtype=dt) for t in (emb, att, lr)]
        dirs[0] = dirs[0] * (x_syn[..., -1:] > 0.5)  # padded positions are zeroed by the learner
        with torch.no_grad():
            plus = outer(*(t + eps * d for t, d in zip((emb, att, lr), dirs)))
            minus = outer(*(t - eps * d for t, d in zip((emb, att, lr), dirs)))
        numeric = float((plus - minus) / (2 * eps))
        analytic = float(sum((gr * d).sum() for gr, d in zip(grads, dirs)))
        assert analytic == pytest.approx(numeric, rel=1e-5, abs=1e-9)


def test_attention_kl_is_zero_at_the_models_own_attention(encoder) -> None:  # type: ignore[no-untyped-def]
    net = _learner(encoder)
    x = _sequences(3, 6, encoder.dim, lengths=[6, 4, 2], seed=0, dtype=torch.float32)
    net.return_attentions = True
    with torch.no_grad():
        attentions = net(x)[1]
    assert attentions.shape == (3, net.num_layers, net.num_heads, 6, 6)
    for q in (1, 6):  # the [CLS] row, every row
        summary = AttentionTextSummary(x=x, labels=torch.tensor([0, 1, 0]), num_classes=2,
                                       attention_logits=attentions[..., :q, :].clamp_min(1e-30).log())
        targets = summary.attention_targets()
        assert targets is not None
        targets = targets.detach()
        assert float(attention_kl(attentions, targets)) == pytest.approx(0.0, abs=1e-6)
        other = AttentionTextSummary(x=x, labels=torch.tensor([0, 1, 0]), num_classes=2,
                                     attention_logits=torch.zeros_like(attentions[..., :q, :]))
        assert float(attention_kl(attentions, other.attention_targets().detach())) > 1e-3
    # padded keys get no target mass, padded query rows no target
    assert float(targets[2, ..., 2:].abs().sum()) == 0.0
    assert float(targets[1, :, :, 4:].abs().sum()) == 0.0


def test_evaluation_is_the_inner_loop(encoder) -> None:  # type: ignore[no-untyped-def]
    """The evaluation's fine-tuning (no graph) gives the same weights as the differentiable inner loop."""
    net = _learner(encoder)
    x = _sequences(2, 6, encoder.dim, lengths=[6, 4], seed=0, dtype=torch.float32)
    targets = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    net.return_attentions = True
    with torch.no_grad():
        attn = net(x)[1][..., :1, :].flip(-1).softmax(-1) * (x[..., -1] > 0.5)[:, None, None, None, :]
    net.return_attentions = False
    kwargs = {"attention_targets": attn, "steps": 2, "lr": 0.1, "attention_weight": 1.0}
    a = finetune(net, _start_params(net), x, targets, differentiable=True, **kwargs)
    b = finetune(net, _start_params(net), x, targets, differentiable=False, **kwargs)
    for name in a:
        torch.testing.assert_close(a[name].detach(), b[name], rtol=1e-5, atol=1e-6)


def test_artifact_reproduces_the_evaluation(spec: str, tmp_path: Path) -> None:
    outcome = distill("dd-attn", dataset=spec, budget=Budget(ipc=1), out_dir=tmp_path / "art", progress=False,
                      overrides={**FAST, "steps": 6, "inner_steps": 2},
                      protocol_overrides={"n_models": 2})
    stored = outcome.artifact.evaluations[0]
    assert stored["protocol"]["model"] == "minilm-ft" and stored["protocol"]["epochs"] == 2
    assert stored["protocol"]["model_kwargs"] == {"attention_weight": 1.0}
    loaded = load_artifact(tmp_path / "art")
    summary = loaded.summary
    assert isinstance(summary, AttentionTextSummary) and summary.attention_logits is not None
    assert summary.attention_logits.shape[1:4] == (6, 12, 1)
    torch.testing.assert_close(summary.attention_logits, outcome.artifact.summary.attention_logits)
    assert float(summary.lr.detach()) == pytest.approx(stored["protocol"]["lr"])
    modality = get_modality("text")
    protocol = modality.default_protocol(loaded.dataset, summary).with_(n_models=2)
    assert protocol.model == "minilm-ft" and protocol.epochs == 2 and protocol.use_learned_lr
    again = evaluate_summary(summary, outcome.data, modality=modality, protocol=protocol, seed=stored["seed"])
    assert again.accuracies == pytest.approx(stored["accuracies"])


def test_fixed_lr_travels_with_the_artifact(spec: str) -> None:
    outcome = distill("dd-attn", dataset=spec, budget=Budget(ipc=1), evaluate=False, progress=False,
                      overrides={**FAST, "steps": 1, "learn_lr": False, "lr_init": 0.07, "attention_labels": False})
    summary = outcome.artifact.summary
    assert summary.lr is None and summary.attention_logits is None
    protocol = get_modality("text").default_protocol({}, summary)
    assert protocol.model == "minilm-ft" and protocol.lr == pytest.approx(0.07)
    assert "lr" not in protocol.model_kwargs


def test_other_learners_train_without_attention_labels(spec: str) -> None:
    outcome = distill("dd-attn", dataset=spec, budget=Budget(ipc=1), evaluate=False, progress=False,
                      overrides={**FAST, "steps": 2, "learner": "meanpool", "attention_labels": False,
                                 "lr_init": 1.0})
    summary = outcome.artifact.summary
    assert summary.native_model == "meanpool" and summary.native_kwargs == {"dropout": 0.0}
    protocol = get_modality("text").default_protocol({}, summary).with_(n_models=1)
    assert protocol.model == "meanpool" and protocol.epochs == 1
    assert 0.0 <= evaluate_summary(summary, outcome.data, modality=get_modality("text"), protocol=protocol).mean


def test_errors_before_compute(spec: str, tmp_path: Path, encoder) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DistillError, match="self-attention"):
        distill("dd-attn", dataset=spec, budget=Budget(ipc=1), evaluate=False, progress=False,
                overrides={**FAST, "learner": "meanpool"})
    long_spec = spec.replace("L=16", "L=600")
    with pytest.raises(DistillError, match="512 positions"):
        distill("dd-attn", dataset=long_spec, budget=Budget(ipc=1), evaluate=False, progress=False, overrides=FAST)
    with pytest.raises(DistillError, match="512 positions"):
        EncoderClassifier(model_path=encoder.path, embed_scale=1.0, num_classes=2, max_len=513)
    with pytest.raises(DistillError, match="inner_steps"):
        distill("dd-attn", dataset=spec, budget=Budget(ipc=1), evaluate=False, progress=False,
                overrides={**FAST, "inner_steps": 0})


def test_resume_is_exact(spec: str, tmp_path: Path) -> None:
    """3 + 3 resumed steps give the 6-step summary bit for bit (attention labels and their optimizer state too)."""
    common = {"dataset": spec, "budget": Budget(ipc=1), "evaluate": False, "progress": False}
    distill("dd-attn", out_dir=tmp_path / "cut", overrides={**FAST, "steps": 3}, **common)
    resumed = distill("dd-attn", out_dir=tmp_path / "cut", resume=True, overrides={**FAST, "steps": 6}, **common)
    full = distill("dd-attn", overrides={**FAST, "steps": 6}, **common)
    a, b = resumed.artifact.summary.tensors(), full.artifact.summary.tensors()
    assert sorted(a) == sorted(b) and "attention_logits" in a
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0)


def test_a_model_folder_that_is_not_an_encoder_is_refused(spec: str, tmp_path: Path) -> None:
    """A complete-looking folder whose config names no transformers architecture fails before any compute, naming
    the folder."""
    folder = tmp_path / "not-an-encoder"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "no-such-architecture"}', encoding="utf-8")
    (folder / "model.safetensors").write_bytes(b"")
    (folder / "vocab.txt").write_text("[PAD]\n[UNK]\nhello\n", encoding="utf-8")
    with pytest.raises(DistillError, match=f"cannot load the text model in {folder}"):
        distill("dd-attn", dataset=f"{spec}&model={folder}", budget=Budget(ipc=1), evaluate=False, progress=False,
                overrides=FAST)
