"""``MetaKAN`` / ``MetaConvKAN``: KANs whose edge weights come from shared meta-learners.

Layers are grouped into ``n_clusters`` clusters by K-Means on their output widths
(:func:`cluster_layers`); each cluster shares one
:class:`~lightning_kan.layers.meta.MetaLearner`. Trainable parameters of a
``MetaKAN`` (linear layers, ``C`` clusters, prompt dimension ``d_z``, hidden width ``h``,
``K`` basis functions, base branch on)::

    sum_l I_l * O_l * d_z  +  C * (d_z*h + h + h*(K+1) + K+1)  [+ sum_l O_l with bias]
                                                               [+ norm parameters]

(``K`` instead of ``K+1`` outputs without a base branch). ``MetaConvKAN`` has one prompt
per (out, in, tap) edge: ``O * C_in * kh * kw * d_z`` per convolution, plus its norms.

Prompts and meta-learners may be given their own learning rates under a first-order
optimizer: set ``lr_prompt``/``lr_meta``; :meth:`param_groups` returns the optimizer
groups and ``KANTask.configure_optimizers`` uses them automatically. (The MetaKAN
authors fit functions with full-batch L-BFGS at ``lr=1`` over all parameters, one group,
``configs/feynman_metakan_official.yaml``; their image-classification scripts use Adam
with per-group rates.) ``init`` picks the initialisation: ``"xavier"`` (theirs, the
default) or ``"scaled"`` (ours, the default before), see
:mod:`lightning_kan.layers.meta`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

from lightning_kan.bases import build_basis
from lightning_kan.bases.base import _check_positive_int, basis_options, is_finite_number
from lightning_kan.layers.activations import resolve_activation
from lightning_kan.layers.meta import DEFAULT_CHUNK_SIZE, Generated, MetaLearner, check_init
from lightning_kan.nets.conv_kan import ConvKAN, ConvNorm
from lightning_kan.nets.kan import KAN, Norm, check_sizes, resolve_widths

__all__ = ["MetaConvKAN", "MetaKAN", "cluster_layers"]


def cluster_layers(widths: Sequence[int], n_clusters: int, seed: int = 0) -> list[int]:
    """K-Means cluster label of every layer, from the layers' output ``widths``.

    scikit-learn ``KMeans(n_clusters, n_init=10, random_state=seed)`` on the widths;
    labels are renumbered by cluster centre (0 = narrowest), so the result is
    deterministic. ``n_clusters`` must be in ``1..number of distinct widths``.
    """
    widths = [int(w) for w in widths]
    distinct = len(set(widths))
    if isinstance(n_clusters, bool) or not isinstance(n_clusters, int) or n_clusters < 1:
        raise ValueError(f"n_clusters={n_clusters!r} must be a positive integer, e.g. 1")
    if n_clusters > distinct:
        raise ValueError(
            f"n_clusters={n_clusters} is more than the {distinct} distinct output widths of "
            f"the {len(widths)} layers ({widths}); use n_clusters between 1 and {distinct}"
        )
    if n_clusters == 1:
        return [0] * len(widths)
    import numpy as np
    from sklearn.cluster import KMeans

    points = np.asarray(widths, dtype=np.float64).reshape(-1, 1)
    kmeans = KMeans(n_clusters=n_clusters, n_init=10, random_state=seed).fit(points)
    rank = np.argsort(np.argsort(kmeans.cluster_centers_[:, 0]))
    return [int(rank[label]) for label in kmeans.labels_]


class _MetaNetMixin:
    """Shared meta-learners, learning-rate groups and layer access of the MetaKAN nets."""

    meta_learners: nn.ModuleList
    lr_prompt: float | None
    lr_meta: float | None

    @staticmethod
    def _shared_generators(
        in_features: int,
        out_widths: Sequence[int],
        n_clusters: int,
        basis: str,
        basis_kwargs: dict[str, Any] | None,
        base_activation: Any,
        embed_dim: int,
        hidden_dim: int,
        chunk_size: int,
        init: str,
    ) -> tuple[list[int], list[MetaLearner], list[Generated]]:
        """Cluster labels of the layers, one learner per cluster, and each layer's
        :class:`Generated` strategy (sharing its cluster's learner)."""
        check_init(init)
        labels = cluster_layers(out_widths, n_clusters)
        outputs = _num_outputs(basis, in_features, basis_kwargs, base_activation)
        learners = [MetaLearner(outputs, embed_dim, hidden_dim, init) for _ in range(n_clusters)]
        generators = [
            Generated(learners[label], chunk_size=chunk_size, init=init) for label in labels
        ]
        return labels, learners, generators

    def _register_meta(
        self,
        labels: list[int],
        learners: list[MetaLearner],
        lr_prompt: float | None,
        lr_meta: float | None,
    ) -> None:
        """After the parent constructor: register the learners, keep the rates."""
        for name, rate in (("lr_prompt", lr_prompt), ("lr_meta", lr_meta)):
            if rate is not None and (not is_finite_number(rate) or rate <= 0):
                raise ValueError(
                    f"{name} must be a finite learning rate > 0 or None (the optimizer's), "
                    f"got {rate!r}"
                )
        self.cluster_labels = labels
        self.meta_learners = nn.ModuleList(learners)
        self.lr_prompt, self.lr_meta = lr_prompt, lr_meta

    def meta_layers(self) -> Iterator[nn.Module]:
        """The layers whose weights are generated (those with ``prompts``)."""
        for module in self.modules():  # type: ignore[attr-defined]
            if isinstance(module.__dict__.get("coefficients"), Generated):
                yield module

    def param_groups(
        self, lr_prompt: float | None = None, lr_meta: float | None = None
    ) -> list[dict[str, Any]]:
        """Optimizer parameter groups: prompts, meta-learners, everything else.

        ``lr_prompt``/``lr_meta`` default to the constructor's; a group without a
        learning rate uses the optimizer's. Everything else (biases, norms, a linear
        head) trains at ``lr_meta`` when given.
        """
        lr_prompt = self.lr_prompt if lr_prompt is None else lr_prompt
        lr_meta = self.lr_meta if lr_meta is None else lr_meta
        prompts = [_prompt_parameter(layer) for layer in self.meta_layers()]
        meta = list(self.meta_learners.parameters())
        taken = {id(p) for p in prompts + meta}
        rest = [p for p in self.parameters() if id(p) not in taken]  # type: ignore[attr-defined]
        groups = []
        for name, params, lr in (
            ("prompts", prompts, lr_prompt),
            ("meta_learners", meta, lr_meta),
            ("other", rest, lr_meta),
        ):
            if params:
                group: dict[str, Any] = {"params": params, "name": name}
                if lr is not None:
                    group["lr"] = lr
                groups.append(group)
        return groups


def _prompt_parameter(layer: nn.Module) -> nn.Parameter:
    """The layer's prompt Parameter, also under a parametrisation (a LoTRA adapter)."""
    parametrizations = getattr(layer, "parametrizations", None)
    if parametrizations is not None and "prompts" in parametrizations:
        return parametrizations["prompts"].original
    return layer.prompts


def _num_outputs(
    basis: str, in_features: int, basis_kwargs: dict[str, Any] | None, base_activation: Any
) -> int:
    """K (+ 1 with a base branch): numbers a meta-learner generates per edge."""
    num_functions = build_basis(basis, in_features, **basis_options(basis_kwargs)).num_functions
    return num_functions + (resolve_activation(base_activation) is not None)


class MetaKAN(_MetaNetMixin, KAN):
    """A :class:`KAN` of :class:`~lightning_kan.layers.MetaKANLinear` layers.

    Args:
        widths, basis, basis_kwargs, base_activation, norm, compiled, in_features,
        out_features: as :class:`KAN`.
        n_clusters: number of meta-learners ``C``; layers are clustered by output width.
        embed_dim: prompt dimension ``d_z`` (the paper uses 1).
        hidden_dim: meta-learner hidden width ``h`` (the paper uses 16-64).
        bias: per-layer biases (off by default, as in the paper's parameter count).
        lr_prompt, lr_meta: learning rates of the prompts and of the meta-learners (and
            every other parameter), used by :meth:`param_groups`; ``None``: the
            optimizer's.
        chunk_size: edges per weight-generation chunk (bounds peak memory).
        init: ``"xavier"`` (default; the MetaKAN authors' code: xavier-normal prompts and
            meta-learner weights, zero biases, no scaling) or ``"scaled"`` (``N(0, 1)``
            prompts, PyTorch's ``Linear`` init, generated weights times
            ``1/sqrt(fan_in)``; the default before ``"xavier"`` was measured 2x better
            on Feynman equations); see :mod:`lightning_kan.layers.meta`.
            Checkpoints keep the scale they were trained with.

    Shapes: ``x (..., widths[0]) -> (..., widths[-1])``.
    """

    # Explicit, not **kwargs: it reads widths/in_features/out_features/basis*/base_activation
    # before KAN's constructor (to size and cluster the shared meta-learners), has its own
    # ``bias`` default, and must not offer KAN's spline_init_scale (Generated ignores it).
    def __init__(
        self,
        widths: Sequence[int],
        n_clusters: int = 1,
        embed_dim: int = 1,
        hidden_dim: int = 32,
        basis: str = "bspline",
        basis_kwargs: dict[str, Any] | None = None,
        base_activation: str | Callable[[torch.Tensor], torch.Tensor] | None = "silu",
        bias: bool = False,
        norm: Norm | None = None,
        lr_prompt: float | None = None,
        lr_meta: float | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        compiled: bool = False,
        in_features: int | None = None,
        out_features: int | None = None,
        init: str = "xavier",
    ) -> None:
        all_widths = resolve_widths(widths, in_features, out_features)
        labels, learners, generators = self._shared_generators(
            all_widths[0],
            all_widths[1:],
            n_clusters,
            basis,
            basis_kwargs,
            base_activation,
            embed_dim,
            hidden_dim,
            chunk_size,
            init,
        )
        super().__init__(
            all_widths,
            basis=basis,
            basis_kwargs=basis_kwargs,
            base_activation=base_activation,
            bias=bias,
            norm=norm,
            compiled=compiled,
            coefficients=generators,
        )
        self._register_meta(labels, learners, lr_prompt, lr_meta)


class MetaConvKAN(_MetaNetMixin, ConvKAN):
    """A :class:`ConvKAN` of :class:`~lightning_kan.layers.MetaKANConv2d` blocks.

    The KAN head (``head="kan"``) is a :class:`~lightning_kan.layers.MetaKANLinear`
    and takes part in the clustering with output width ``num_classes``; a linear head
    is a plain ``nn.Linear``. One prompt per (out, in, tap) edge; its K+1 generated
    numbers are that edge's coefficients and base weight.

    Args:
        n_clusters, embed_dim, hidden_dim, lr_prompt, lr_meta, chunk_size: as
            :class:`MetaKAN`; the others as :class:`ConvKAN`.
        init: as :class:`MetaKAN` (the shipped digits configs keep ``"scaled"``, with
            which their README figures were measured).
    """

    # Explicit, not **kwargs: it reads in_channels/num_classes/channels/head/basis*/
    # base_activation before ConvKAN's constructor to size and cluster the meta-learners.
    def __init__(
        self,
        in_channels: int | None = None,
        num_classes: int | None = None,
        channels: Sequence[int] = (16, 32),
        n_clusters: int = 1,
        embed_dim: int = 1,
        hidden_dim: int = 32,
        kernel_size: int = 3,
        basis: str = "bspline",
        basis_kwargs: dict[str, Any] | None = None,
        base_activation: str | Callable[[torch.Tensor], torch.Tensor] | None = "silu",
        norm: ConvNorm | None = "batch",
        pool: str | None = "max",
        pool_every: int = 1,
        head: str = "kan",
        dropout: float = 0.0,
        lr_prompt: float | None = None,
        lr_meta: float | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        compiled: bool = False,
        init: str = "xavier",
    ) -> None:
        if in_channels is None or num_classes is None:
            raise ValueError(
                f"MetaConvKAN needs in_channels and num_classes, got {in_channels!r} and "
                f"{num_classes!r} (the CLI fills both in from the data module)"
            )
        _check_positive_int("in_channels", in_channels)
        channels = check_sizes("channels", channels, "(16, 32)")
        out_widths = [*channels, num_classes] if head == "kan" else channels
        labels, learners, generators = self._shared_generators(
            in_channels,
            out_widths,
            n_clusters,
            basis,
            basis_kwargs,
            base_activation,
            embed_dim,
            hidden_dim,
            chunk_size,
            init,
        )
        super().__init__(
            in_channels,
            num_classes,
            channels=channels,
            kernel_size=kernel_size,
            basis=basis,
            basis_kwargs=basis_kwargs,
            base_activation=base_activation,
            norm=norm,
            pool=pool,  # type: ignore[arg-type]
            pool_every=pool_every,
            head=head,  # type: ignore[arg-type]
            dropout=dropout,
            compiled=compiled,
            coefficients=generators,
        )
        self._register_meta(labels, learners, lr_prompt, lr_meta)
