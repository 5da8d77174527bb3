"""The promotion gate: a newly trained model replaces the one used downstream only if it is at least
as good as the current one on the fixed evaluation and beats the length baseline.

``decide`` is the rule (pure); ``promotion_for`` reads the incumbent from the registry and returns
the ``promotions`` event to commit together with the ``models`` row, so a model is never visible
without its decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from warehouse.registry import latest_model
from warehouse.schema import PromotionRow
from warehouse.store import Warehouse

# kind -> (metrics section, score key, length-baseline key) in the artifact manifest's metrics
GATE_METRICS: dict[str, tuple[str, str, str]] = {
    "reward": ("eval_labels", "auc", "length_auc"),
    "judge": ("eval", "auc", "length_auc"),
}


@dataclass(frozen=True)
class Figures:
    metric: str
    value: float | None
    baseline: float | None


def figures(kind: str, metrics: dict[str, Any] | None) -> Figures | None:
    """The gate's figures for ``kind`` from a manifest's metrics; None for a kind without a gate metric."""
    if kind not in GATE_METRICS:
        return None
    section, key, base_key = GATE_METRICS[kind]
    ev = (metrics or {}).get(section) or {}
    num = lambda v: float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None  # noqa: E731
    return Figures(f"{section}.{key}", num(ev.get(key)), num(ev.get(base_key)))


def _policy_regressed(metrics: dict[str, Any]) -> str | None:
    """GRPO reports the reward on held-out prompts before and after training, when it had them."""
    before, after = (metrics.get(k) or {} for k in ("before", "after"))
    b, a = before.get("reward_mean"), after.get("reward_mean")
    if isinstance(b, (int, float)) and isinstance(a, (int, float)) and a < b:
        return f"reward on held-out prompts fell during training: {b:.4g} → {a:.4g}"
    return None


def decide(model_id: str, kind: str, metrics: dict[str, Any], incumbent: dict[str, Any] | None, *,
           bootstrap: bool = True) -> PromotionRow:
    """The decision for a candidate (``metrics`` from its manifest) against the promoted ``incumbent``
    registry row (None: there is none). ``bootstrap``: with no incumbent the first model is promoted
    even below the length baseline (the reason says so), or nothing downstream could run."""
    inc_id = incumbent["model_id"] if incumbent else None
    row = lambda promoted, reason, **figs: PromotionRow(  # noqa: E731
        model_id=model_id, kind=kind, promoted=promoted, reason=reason, incumbent_id=inc_id, **figs)
    cand = figures(kind, metrics)
    if cand is None:
        if kind == "grpo" and (why := _policy_regressed(metrics)):
            return row(False, why)
        return row(True, f"no promotion metric for kind {kind!r}: promoted (policy_evaluation compares policies)")
    if cand.value is None:
        return row(True, f"no evaluation metrics ({cand.metric} missing): promoted without evidence",
                   metric=cand.metric)
    inc = figures(kind, incumbent["metrics"]).value if incumbent else None
    figs = {"metric": cand.metric, "candidate": cand.value, "incumbent": inc, "baseline": cand.baseline}
    if cand.baseline is not None and cand.value <= cand.baseline:
        why = f"{cand.metric} {cand.value:.4g} does not beat the length baseline {cand.baseline:.4g}"
        if incumbent is None and bootstrap:  # rejecting the first model would leave downstream nothing to use
            return row(True, f"first {kind} model: promoted although {why}", **figs)
        return row(False, why, **figs)
    if inc is not None and cand.value < inc:
        return row(False, f"{cand.metric} {cand.value:.4g} < {inc:.4g} of the current model {inc_id}", **figs)
    parts = [f"{cand.metric} {cand.value:.4g}"]
    parts.append(f"> length baseline {cand.baseline:.4g}" if cand.baseline is not None else "(no length baseline)")
    parts.append(f"≥ current {inc:.4g}" if inc is not None else
                 "(no current model)" if incumbent is None else "(current model has no figure)")
    return row(True, " ".join(parts), **figs)


def promotion_for(wh: Warehouse, model_id: str, kind: str, metrics: dict[str, Any]) -> PromotionRow:
    """The decision for a model not yet registered, against the promoted model of its kind (a
    registered model keeps the decision committed with it)."""
    return decide(model_id, kind, metrics, latest_model(wh, kind))
