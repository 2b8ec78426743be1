"""Capture one decoder layer's hidden states with a forward hook (never ``output_hidden_states=True``)."""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Any

import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)

_LAYER_LIST_NAMES = ("layers", "h", "blocks", "layer")


def find_decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The decoder layer list of a HF causal LM, also inside peft wrappers.

    Looks for ``ModuleList``s named like ``layers`` / ``h`` / ``blocks`` (``model.model.layers``,
    ``transformer.h``, ``gpt_neox.layers``, ``base_model.model.model.layers`` under peft, ...) and takes the
    longest, which is the decoder stack.
    """
    best: nn.ModuleList | None = None
    for name, module in model.named_modules():
        is_stack = isinstance(module, nn.ModuleList) and name.rsplit(".", 1)[-1] in _LAYER_LIST_NAMES
        if is_stack and (best is None or len(module) > len(best)):
            best = module
    if best is None or len(best) == 0:
        raise ValueError(f"no decoder layer list found in {type(model).__name__}; pass layer=<module> explicitly")
    return best


class HiddenCapture:
    """Keep the output of one decoder layer at trainable positions, detached.

    Default layer: the second-to-last decoder layer (index -2), as in the ResRL reference. Use as a context
    manager around forward passes; call :meth:`set_mask` before each forward with that forward's (B, T) mask
    (or pass ``mask=`` to the constructor for a single forward). Each forward appends the (N, H) rows at the
    masked positions, row-major, to :attr:`chunks`; :meth:`packed` concatenates them.

    Gradient checkpointing re-runs layer forwards during backward; those re-runs are ignored because a capture
    is armed only by the top-level model's forward (a pre-hook on ``model``), and disarmed after one capture.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        layer: int | nn.Module = -2,
        mask: Tensor | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        self.model = model
        if isinstance(layer, nn.Module):
            self.layer = layer
        else:
            layers = find_decoder_layers(model)
            if not -len(layers) <= layer < len(layers):
                raise ValueError(f"layer {layer} out of range for {len(layers)} decoder layers")
            self.layer = layers[layer]
        self.dtype = dtype
        self.device = device
        self.chunks: list[Tensor] = []
        self.calls = 0
        self._mask = mask
        self._armed = False
        self._handles: list[Any] = []

    def set_mask(self, mask: Tensor | None) -> None:
        """The (B, T) bool mask of the next forward; None keeps every position (B*T rows)."""
        self._mask = mask

    def clear(self) -> None:
        """Drop what was captured so far."""
        self.chunks.clear()
        self.calls = 0

    def packed(self) -> Tensor:
        """All captured rows, (N, H), in capture order."""
        if not self.chunks:
            raise RuntimeError("nothing captured: run a forward pass inside the HiddenCapture context")
        return torch.cat(self.chunks, 0)

    def dense(self, mask: Tensor) -> Tensor:
        """Scatter :meth:`packed` back to (B, T, H), zeros at unmasked positions (tests and small batches)."""
        rows = self.packed()
        out = rows.new_zeros(*mask.shape, rows.shape[-1])
        out[mask.to(torch.bool)] = rows
        return out

    def _arm(self, module: nn.Module, args: Any) -> None:
        self._armed = True

    def _grab(self, module: nn.Module, args: Any, output: Any) -> None:
        if not self._armed:
            return  # a recompute under gradient checkpointing, or a call outside the model's forward
        self._armed = False
        hidden = output[0] if isinstance(output, tuple | list) else output
        hidden = hidden.detach()
        if self._mask is not None:
            mask = self._mask.to(device=hidden.device, dtype=torch.bool)
            if mask.shape != hidden.shape[:2]:
                raise ValueError(f"capture mask {tuple(mask.shape)} does not match hidden {tuple(hidden.shape[:2])}")
            rows = hidden[mask]
        else:
            rows = hidden.reshape(-1, hidden.shape[-1])
        if self.dtype is not None or self.device is not None:
            rows = rows.to(device=self.device, dtype=self.dtype)
        self.chunks.append(rows)
        self.calls += 1

    def __enter__(self) -> HiddenCapture:
        self._handles = [
            self.model.register_forward_pre_hook(self._arm),
            self.layer.register_forward_hook(self._grab),
        ]
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._armed = False
