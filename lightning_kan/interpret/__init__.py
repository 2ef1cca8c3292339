"""Reading a trained KAN: edge/node attribution scores and pruning (pykan's workflow).

``edge_scores``, ``node_scores``, ``feature_importance`` (:mod:`.scores`) and ``prune``
(:mod:`.prune`) work on dense :class:`~lightning_kan.nets.KAN` networks of any basis.
A pruning callback comes once it can re-wrap DDP (the standard: every callback works
under 2-process DDP).
"""

from lightning_kan.interpret.prune import EdgeMask, prune
from lightning_kan.interpret.scores import edge_scores, feature_importance, node_scores

__all__ = ["EdgeMask", "edge_scores", "feature_importance", "node_scores", "prune"]
