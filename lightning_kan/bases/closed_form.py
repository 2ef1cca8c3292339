"""Bases whose input derivatives come in closed form, and the chain rule they share.

A family implements ``_derivatives(x, order) -> (phi, phi', [phi''])`` (each
``(..., I, K)``, derivatives in the input ``x_i``), which :meth:`Basis.derivatives` calls;
this mixin also makes it the fused layer's backward hook :meth:`Basis.input_grad`
(``sum_k g_k phi_k'``), differentiable when grad mode is on.
"""

from __future__ import annotations

import torch

from lightning_kan.bases.base import Basis

__all__ = ["ClosedFormBasis", "chain_rule"]


class ClosedFormBasis(Basis):
    """A :class:`Basis` whose ``_derivatives`` (``(phi, phi')`` for ``order=1``, ``(phi,
    phi', phi'')`` for ``order=2``) is a closed form, so ``input_grad`` reuses it."""

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
