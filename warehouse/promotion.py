"""The promotion gate: a newly trained model replaces the one used downstream only if it is at least
as good as the current one on the fixed evaluation and beats the length baseline.

``decide`` is the rule (pure); ``promotion_for`` reads the incumbent from the registry and returns
the ``promotions`` event to commit together with the ``models`` row, so a model is never visible
without its decision.

Figures are compared only on the same evaluation set. Each registered model's metrics carry
``eval_sets``: per evaluation file it was evaluated on, ``{"id": hash of the items, "n": count}``
(``eval_set_identity``; written by ``assets.training._train``). When the candidate's gated figure
comes from another set than the incumbent's (the human labels grew, ``max_eval_labels`` changed),
the two numbers say nothing about each other, and the gate **refuses** promotion, naming both sets
in the reason — it does not re-evaluate the incumbent (that would load a second model in the
orchestrator). Every later model on the new set is refused the same way until a person decides: promote
one evaluated on the new set by hand, ``Warehouse().append([PromotionRow(model_id=…, kind=…,
promoted=True, reason="…")])``; from then on models are compared with it on that set. An incumbent
registered before sets were recorded has no identity: it is compared as before, and the reason says
its set is unknown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from warehouse.ids import canonical_json, content_id
from warehouse.registry import latest_model
from warehouse.schema import PromotionRow
from warehouse.store import Warehouse

# kind -> (metrics section, score key, length-baseline key, evaluation file the section is computed on)
# in a registered model's metrics
GATE_METRICS: dict[str, tuple[str, str, str, str]] = {
    "reward": ("eval_labels", "auc", "length_auc", "eval_labels"),
    "judge": ("eval", "auc", "length_auc", "eval_labels"),
}


def eval_set_identity(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What an evaluation set is: a hash of its items (in any order; a corrected label changes it)
    and their number."""
    return {"id": content_id("eval_set", sorted(canonical_json(r) for r in rows), length=16), "n": len(rows)}


@dataclass(frozen=True)
class Figures:
    metric: str
    value: float | None
    baseline: float | None
    eval_set: dict[str, Any] | None = None  # eval_set_identity of the items; None: not recorded


def figures(kind: str, metrics: dict[str, Any] | None) -> Figures | None:
    """The gate's figures for ``kind`` from a model's metrics; None for a kind without a gate metric."""
    if kind not in GATE_METRICS:
        return None
    section, key, base_key, eval_file = GATE_METRICS[kind]
    ev = (metrics or {}).get(section) or {}
    num = lambda v: float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None  # noqa: E731
    eval_set = ((metrics or {}).get("eval_sets") or {}).get(eval_file)
    return Figures(f"{section}.{key}", num(ev.get(key)), num(ev.get(base_key)),
                   eval_set if isinstance(eval_set, dict) and eval_set.get("id") else None)


def _describe(eval_set: dict[str, Any]) -> str:
    return f"{eval_set['id']} (n={eval_set.get('n')})"


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
        if kind in ("grpo", "mrpo") and (why := _policy_regressed(metrics)):
            return row(False, why)
        return row(True, f"no promotion metric for kind {kind!r}: promoted (policy_evaluation compares policies)")
    if cand.value is None:
        return row(True, f"no evaluation metrics ({cand.metric} missing): promoted without evidence",
                   metric=cand.metric)
    inc_figs = figures(kind, incumbent["metrics"]) if incumbent else None
    inc = inc_figs.value if inc_figs else None
    figs = {"metric": cand.metric, "candidate": cand.value, "incumbent": inc, "baseline": cand.baseline}
    if cand.baseline is not None and cand.value <= cand.baseline:
        why = f"{cand.metric} {cand.value:.4g} does not beat the length baseline {cand.baseline:.4g}"
        if incumbent is None and bootstrap:  # rejecting the first model would leave downstream nothing to use
            return row(True, f"first {kind} model: promoted although {why}", **figs)
        return row(False, why, **figs)
    note = ""
    if inc is not None and inc_figs is not None:
        if cand.eval_set and inc_figs.eval_set and cand.eval_set["id"] != inc_figs.eval_set["id"]:
            return row(False, f"not comparable: {cand.metric} {cand.value:.4g} is on evaluation set "
                       f"{_describe(cand.eval_set)}, {inc:.4g} of the current model {inc_id} on "
                       f"{_describe(inc_figs.eval_set)}; refused until a model evaluated on the new set is promoted by "
                       "hand (a promotions row with promoted=true)", **figs)
        if cand.eval_set and not inc_figs.eval_set:
            note = " (the current model's evaluation set is not recorded)"
    if inc is not None and cand.value < inc:
        return row(False, f"{cand.metric} {cand.value:.4g} < {inc:.4g} of the current model {inc_id}{note}", **figs)
    parts = [f"{cand.metric} {cand.value:.4g}"]
    parts.append(f"> length baseline {cand.baseline:.4g}" if cand.baseline is not None else "(no length baseline)")
    parts.append(f"≥ current {inc:.4g}" if inc is not None else
                 "(no current model)" if incumbent is None else "(current model has no figure)")
    if cand.eval_set and inc is not None and not note:
        parts.append(f"on the same evaluation set {_describe(cand.eval_set)}")
    return row(True, " ".join(parts) + note, **figs)


def promotion_for(wh: Warehouse, model_id: str, kind: str, metrics: dict[str, Any]) -> PromotionRow:
    """The decision for a model not yet registered, against the promoted model of its kind (a
    registered model keeps the decision committed with it)."""
    return decide(model_id, kind, metrics, latest_model(wh, kind))
