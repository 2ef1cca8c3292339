"""Bases whose input derivatives come in closed form, and the chain rule they share.

A family implements ``_derivatives(x, order) -> (phi, phi', [phi''])`` (each
``(..., I, K)``, derivatives in the input ``x_i``); this mixin turns it into
:meth:`Basis.derivatives` and into the fused layer's backward hook
:meth:`Basis.input_grad` (``sum_k g_k phi_k'``), both differentiable when grad mode is on.
"""

from __future__ import annotations

import torch

from lightning_kan.bases.base import Basis

__all__ = ["ClosedFormBasis", "chain_rule"]


class ClosedFormBasis(Basis):
    """A :class:`Basis` with closed-form ``phi'`` and ``phi''`` (``_derivatives``)."""

    def _derivatives(self, x: torch.Tensor, order: int) -> tuple[torch.Tensor, ...]:
        """``(phi, phi')`` for ``order=1``, ``(phi, phi', phi'')`` for ``order=2``."""
        raise NotImplementedError

    def derivatives(self, x: torch.Tensor, order: int = 2) -> tuple[torch.Tensor, ...]:
        if order not in (1, 2):
            raise ValueError(f"order must be 1 or 2 (derivatives of phi in x), got {order!r}")
        return self._derivatives(x, order)

    def input_grad(self, x: torch.Tensor, grad_values: torch.Tensor) -> torch.Tensor:
        """``sum_k g_k phi_k'(x)`` from the closed form: ``(..., I)``."""
        return torch.linalg.vecdot(grad_values, self._derivatives(x, 1)[1])


def chain_rule(
    in_s: tuple[torch.Tensor, ...], ds: torch.Tensor, d2s: torch.Tensor | None
) -> tuple[torch.Tensor, ...]:
    """Derivatives in ``x`` of ``phi(s(x))`` from those in ``s``.

    ``in_s = (phi, dphi/ds[, d2phi/ds2])`` (``(..., I, K)``), ``ds = s'(x)`` and
    ``d2s = s''(x)`` (``(..., I)``, or ``None`` when ``s`` is affine). Returns
    ``(phi, phi_s s'[, phi_ss s'^2 + phi_s s''])``.
    """
    ds = ds.unsqueeze(-1)
    result = [in_s[0], in_s[1] * ds]
    if len(in_s) > 2:
        second = in_s[2] * ds.square()
        if d2s is not None:
            second = second + in_s[1] * d2s.unsqueeze(-1)
        result.append(second)
    return tuple(result)
