"""HiddenCapture on a real tiny Qwen2: the right layer, masked rows only, checkpointing, peft LoRA."""

from __future__ import annotations

import pytest
import torch

from resrl.algos import HiddenCapture, find_decoder_layers
from resrl.models.hf_api import enable_activation_checkpointing
from tests.algos.tiny import VOCAB, capture_mask, tiny_batch, tiny_model, token_logprobs


def test_captures_second_to_last_layer_at_masked_positions():
    model = tiny_model(layers=4).eval()
    batch = tiny_batch()
    cmask = capture_mask(batch["mask"])
    with torch.no_grad():
        full = model(input_ids=batch["ids"], output_hidden_states=True).hidden_states
        with HiddenCapture(model, mask=cmask) as cap:
            model(input_ids=batch["ids"])
    # hidden_states = (embeddings, layer 0, ..., layer L-1 normed): the output of layer L-2 is index -2
    assert cap.calls == 1
    assert torch.allclose(cap.packed(), full[-2][cmask], atol=1e-6)
    assert cap.packed().shape == (int(cmask.sum()), 32)
    assert not cap.packed().requires_grad
    assert torch.allclose(cap.dense(cmask)[cmask], full[-2][cmask])


def test_configurable_layer_and_micro_batched_forwards():
    model = tiny_model(layers=4).eval()
    batch = tiny_batch()
    cmask = capture_mask(batch["mask"])
    with torch.no_grad():
        full = model(input_ids=batch["ids"], output_hidden_states=True).hidden_states
        with HiddenCapture(model, layer=1) as cap:
            for start in range(0, 12, 5):
                cap.set_mask(cmask[start : start + 5])
                model(input_ids=batch["ids"][start : start + 5])
    assert cap.calls == 3
    assert torch.allclose(cap.packed(), full[2][cmask], atol=1e-5)


def test_hooks_are_removed_on_exit():
    model = tiny_model()
    with HiddenCapture(model) as cap, torch.no_grad():
        model(input_ids=torch.zeros(1, 4, dtype=torch.long))
    with torch.no_grad():
        model(input_ids=torch.zeros(1, 4, dtype=torch.long))
    assert cap.calls == 1


@pytest.mark.parametrize("reentrant", [True, False])
def test_gradient_checkpointing_captures_once(reentrant):
    model = tiny_model(layers=3)
    enable_activation_checkpointing(model, reentrant=reentrant)
    model.train()
    layer = find_decoder_layers(model)[-2]
    calls = []
    # counted inside the layer: transformers >= 5.24 recomputes the layer's forward without its own hooks
    handle = layer.mlp.register_forward_hook(lambda *_: calls.append(1))
    batch = tiny_batch()
    cmask = capture_mask(batch["mask"])
    with HiddenCapture(model, mask=cmask) as cap:
        lp = token_logprobs(model, batch["ids"])
        lp[batch["mask"]].sum().backward()
    handle.remove()
    if reentrant:  # the layer really ran twice: forward, then the recompute in backward
        assert len(calls) == 2
    assert cap.calls == 1 and cap.packed().shape[0] == int(cmask.sum())
    assert model.model.embed_tokens.weight.grad is not None
    with torch.no_grad():
        model.eval()
        want = model(input_ids=batch["ids"], output_hidden_states=True).hidden_states[-2][cmask]
    assert torch.allclose(cap.packed(), want, atol=1e-5)


def test_peft_lora_wrapped_model():
    peft = pytest.importorskip("peft")
    base = tiny_model(layers=3)
    lora = peft.get_peft_model(base, peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    assert len(find_decoder_layers(lora)) == 3
    ids = torch.randint(0, VOCAB, (2, 9), generator=torch.Generator().manual_seed(0))
    mask = torch.ones(2, 9, dtype=torch.bool)
    mask[:, :3] = False
    with torch.no_grad():
        want = lora(input_ids=ids, output_hidden_states=True).hidden_states[-2][mask]
        with HiddenCapture(lora, mask=mask) as cap:
            lora(input_ids=ids)
    assert cap.calls == 1
    assert torch.allclose(cap.packed(), want, atol=1e-6)


def test_errors_are_clear():
    model = tiny_model()
    with pytest.raises(ValueError, match="out of range"):
        HiddenCapture(model, layer=7)
    with pytest.raises(ValueError, match="no decoder layer list"):
        find_decoder_layers(torch.nn.Linear(2, 2))
    with pytest.raises(RuntimeError, match="nothing captured"):
        HiddenCapture(model).packed()
    with HiddenCapture(model, mask=torch.ones(3, 3, dtype=torch.bool)), pytest.raises(ValueError, match="mask"):
        model(input_ids=torch.zeros(1, 4, dtype=torch.long))
