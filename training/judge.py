"""A trained, principle-conditioned generative judge: a causal LM fine-tuned to answer 是 or 否.

    python -m training.judge --config run.json

Input: ``agents.judging.judge_messages`` (principles + request + greeting), exactly as the agents
score it at use. The score is the logit margin of 是 over 否 at the answer position (one forward
pass); training minimises binary cross-entropy of that margin against the human label, plus
(``pairwise_weight``) a Bradley–Terry term on the pairs in the batch (chosen above rejected of the
same request), which teaches what separates two greetings of one request rather than what
separates requests. Each row carries its own principle list (the asset varies them), so the model
reads principles instead of memorising one prompt. On CUDA: fp32 weights under bf16 autocast
(plain bf16 weights round small updates away, bench/RESULTS.md); fp32 on CPU.

Reports AUC on labelled items (all and the 30–49-character band) and pair accuracy (all and
length-matched) beside the length baseline, the same with empty / shuffled / foreign principles,
and principle following: good greetings under a checkable rule they keep or break (``rules``).
"""

from __future__ import annotations

import math
import random
import shutil
import time
from collections.abc import Sequence

import torch
from tqdm.auto import tqdm

from agents.judging import LABELS, RULE_KINDS, judge_messages, rule_eval_rows
from training import artifacts, devices, distributed, kernels
from training.config import JudgeRunConfig
from training.data import read_jsonl
from training.metrics import auc
from training.reporting import Reporter, run_cli
from training.rm_eval import evaluate_labels, evaluate_pairs


class MarginModel:
    """A causal LM read as a judge: margin = logit(是) − logit(否) after the chat prompt."""

    def __init__(self, model, tokenizer, *, max_length: int = 1024, device: str | None = None):
        self.model, self.tok = model, tokenizer
        tokenizer.truncation_side = "left"  # an over-long prompt loses its start, never the answer position
        self.max_length = max_length
        self.device = device or devices.device()
        ids = [tokenizer.encode(x, add_special_tokens=False) for x in LABELS]
        self.yes, self.no = ids[0][0], ids[1][0]

    @classmethod
    def load(cls, path: str, *, max_length: int = 1024, dtype: torch.dtype = torch.float32) -> MarginModel:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(path)
        tok.padding_side = "right"
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(devices.device())
        return cls(model, tok, max_length=max_length)

    def texts(self, principles: Sequence[str], prompts: Sequence[str], responses: Sequence[str]) -> list[str]:
        return self.texts_each([principles] * len(prompts), prompts, responses)

    def texts_each(self, principle_lists: Sequence[Sequence[str]], prompts: Sequence[str],
                   responses: Sequence[str]) -> list[str]:
        return [self.tok.apply_chat_template(judge_messages(rules, p, r), tokenize=False, add_generation_prompt=True)
                for rules, p, r in zip(principle_lists, prompts, responses, strict=True)]

    def margins(self, texts: Sequence[str]) -> torch.Tensor:
        enc = self.tok(list(texts), return_tensors="pt", padding=True, truncation=True, max_length=self.max_length,
                       add_special_tokens=False).to(self.device)
        last = enc["attention_mask"].sum(1) - 1  # right padding: each row's last real token
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device == "cuda"):
            h = self.model.base_model(**enc).last_hidden_state
            logits = self.model.get_output_embeddings()(h[torch.arange(h.shape[0], device=h.device), last]).float()
        return logits[:, self.yes] - logits[:, self.no]

    def score(self, principles: Sequence[str], prompts: Sequence[str], responses: Sequence[str],
              batch_size: int = 128) -> list[float]:
        return self.score_each([principles] * len(prompts), prompts, responses, batch_size)

    @torch.no_grad()
    def score_each(self, principle_lists: Sequence[Sequence[str]], prompts: Sequence[str],
                   responses: Sequence[str], batch_size: int = 128) -> list[float]:
        """Margins, each row under its own principle list."""
        was = self.model.training
        self.model.eval()
        texts = self.texts_each(principle_lists, prompts, responses)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = [0.0] * len(texts)
        for s in range(0, len(order), batch_size):
            idx = order[s : s + batch_size]
            for i, m in zip(idx, self.margins([texts[i] for i in idx]).tolist(), strict=True):
                out[i] = m
        self.model.train(was)
        return out


def _units(rows: list[dict]) -> list[list[dict]]:
    """Training units: a pair's two rows stay together (for the pairwise term), others alone."""
    by_pair: dict[str, list[dict]] = {}
    units: list[list[dict]] = []
    for r in rows:
        if r.get("pair"):
            by_pair.setdefault(r["pair"], []).append(r)
        else:
            units.append([r])
    return units + list(by_pair.values())


def evaluate(judge: MarginModel, cfg: JudgeRunConfig) -> dict:
    """Labelled AUC and pair accuracy with the evaluation principles, and the principle ablations."""
    out: dict = {}
    labels = read_jsonl(cfg.eval_labels_file, ("prompt", "response", "label")) if cfg.eval_labels_file else []
    pairs = read_jsonl(cfg.eval_pairs_file, ("prompt", "chosen", "rejected")) if cfg.eval_pairs_file else []
    shuffled = random.Random(cfg.seed).sample(list(cfg.eval_principles), len(cfg.eval_principles))
    variants = {"eval": list(cfg.eval_principles)}
    if cfg.principle_ablations and cfg.eval_principles:
        variants.update({"no_principles": [], "shuffled_principles": shuffled,
                         "foreign_principles": list(cfg.foreign_principles)})
    for name, principles in variants.items():
        kept: list[list[float]] = []  # the evaluation's scores in call order: labels, chosen, rejected

        def scorer(ps, rs, principles=principles, kept=kept if name == "eval" and cfg.keep_scores else None):
            s = judge.score(principles, ps, rs)
            if kept is not None:
                kept.append([round(float(x), 4) for x in s])
            return s

        res = {}
        if labels:
            res.update(evaluate_labels(scorer, labels))
        if pairs:
            res.update(evaluate_pairs(scorer, pairs))
        out[name] = res
        if name != "eval":
            continue
        if kept:  # per-item margins, so runs can be ensembled afterwards (bench/judge_ensemble.py)
            res["scores"] = dict(zip((["labels"] if labels else []) + (["chosen", "rejected"] if pairs else []), kept,
                                     strict=True))
        if labels:  # the threshold on P(是) that best separates the labels (for a quick label)
            t = res.get("threshold")
            res["threshold_p"] = None if t is None else round(1 / (1 + math.exp(-t)), 4)
    if labels and cfg.rule_eval:  # `rules`: the word rule (its historical name); `rules_length`: the length rule
        for kind in RULE_KINDS:
            key = "rules" if kind == "word" else f"rules_{kind}"
            out[key] = principle_following(judge, labels, list(cfg.eval_principles), cfg.seed, kind)
    return out


def principle_following(judge: MarginModel, labels: list[dict], principles: list[str], seed: int = 0,
                        kind: str = "word") -> dict:
    """Does the judge follow its principles? The evaluation set's good greetings, each under the
    evaluation principles plus a checkable rule of ``kind`` (``rule_eval_rows``: a must-have / must-not
    word, or a character count): AUC of the score against "keeps the rule", with the rule in the prompt
    and without it (chance if the judge reads no principles), and accuracy at the margin's sign."""
    rows = rule_eval_rows(labels, principles, seed, kind)
    if not rows:
        return {}
    y = [r["label"] for r in rows]
    prompts, responses = [r["prompt"] for r in rows], [r["response"] for r in rows]
    with_rule = judge.score_each([r["principles"] for r in rows], prompts, responses)
    without = judge.score(principles, prompts, responses)
    acc = sum(int((m > 0) == bool(t)) for m, t in zip(with_rule, y, strict=True)) / len(y)
    return {"n": len(rows), "kept_share": round(sum(y) / len(y), 4), "auc_with_rule": _round(auc(with_rule, y)),
            "auc_without_rule": _round(auc(without, y)), "accuracy_with_rule": round(acc, 4)}


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def train(cfg: JudgeRunConfig, reporter: Reporter) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    rows = [r for r in read_jsonl(cfg.train_file, ("prompt", "response", "label")) if str(r["response"]).strip()]
    tmp = artifacts.partial_dir(cfg.output_dir)
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    tok = AutoTokenizer.from_pretrained(cfg.base_model)
    tok.padding_side = "right"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(cfg.base_model, dtype=torch.float32).to(devices.device())
    applied = kernels.apply(model, cfg.kernels)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    wrapped = None
    if cfg.lora is not None:
        from training.sft import inject_lora

        wrapped, model = inject_lora(cfg, model)  # MarginModel reads the inner LM's layers
    judge = MarginModel(model, tok, max_length=cfg.max_length)
    before = evaluate(judge, cfg) if cfg.eval_before and distributed.is_main() else None
    units = _units(rows)
    per_epoch = max(1, math.ceil(len(rows) / cfg.batch_size))
    steps = cfg.max_steps if cfg.max_steps > 0 else max(1, round(per_epoch * cfg.num_epochs))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.learning_rate, weight_decay=0.0,
                            fused=devices.has_cuda())
    warmup = max(1, min(cfg.warmup_steps, steps // 10))  # a 3-step demo run still reaches its learning rate
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * (max(0.0, 1 - s / steps) if cfg.decay else 1.0))
    trained = [p for p in model.parameters() if p.requires_grad]
    averager = distributed.GradientAverager(trained)  # under torchrun: all-reduce overlapped with backward
    ema = [p.detach().clone() for p in trained] if cfg.ema_decay else None
    reporter.info(f"judge on {len(rows)} rows ({len(units)} units), {steps} steps of {cfg.batch_size}, "
                  f"{devices.describe()}" + (f", weight EMA {cfg.ema_decay}" if ema else ""))
    model.train()
    order: list[list[dict]] = []
    t0 = time.time()
    for step in tqdm(range(steps), desc="judge", unit="step", mininterval=10, dynamic_ncols=True,
                     disable=not distributed.is_main()):  # ETA on stderr, once per run
        picked: list[list[dict]] = []  # whole units: a pair's two rows stay together for the pairwise term
        while sum(map(len, picked)) < cfg.batch_size:
            if not order:
                order = rng.sample(units, len(units))
            picked.append(order.pop())
        batch = [r for u in distributed.shard(picked) for r in u]  # under torchrun: this rank's units
        texts = [judge.texts(r.get("principles") or [], [r["prompt"]], [r["response"]])[0] for r in batch]
        m = judge.margins(texts)
        y = torch.tensor([float(r["label"]) for r in batch], device=m.device)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(m, y)
        bt = _pairwise_loss(batch, m) if cfg.pairwise_weight else None
        total = loss + cfg.pairwise_weight * bt if bt is not None else loss
        total.backward()
        averager.finish()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        if ema is not None:
            with torch.no_grad():
                d = min(cfg.ema_decay, (1 + step) / (10 + step))  # early steps: no pull towards the base weights
                torch._foreach_lerp_(ema, [p.detach() for p in trained], 1.0 - d)
        if step % cfg.logging_steps == 0 or step == steps - 1:
            reporter.metrics(step + 1, {"loss": loss.item(), "pairwise_loss": bt.item() if bt is not None else None,
                                        "learning_rate": sched.get_last_lr()[0]})
    if devices.has_cuda():
        torch.cuda.synchronize()
    train_s = time.time() - t0
    averager.close()
    if ema is not None:  # the average is the model that is evaluated and saved
        with torch.no_grad():
            torch._foreach_copy_(trained, ema)
        del ema
    if not distributed.is_main():
        return {"steps": steps, "train_s": round(train_s, 2), "rank": distributed.rank()}  # rank 0 evaluates and saves
    after = evaluate(judge, cfg)
    if wrapped is not None:
        artifacts.save_adapter(wrapped, tmp)
        model = wrapped.merge_and_unload()
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    metrics = {"steps": steps, "rows": len(rows), "train_s": round(train_s, 2), "kernels": applied,
               "rows_per_s": round(steps * cfg.batch_size / train_s, 1) if train_s else None,
               **after, "before": before, "device": devices.describe(), "peak_mem_gb": devices.peak_memory_gb()}
    shutil.rmtree(tmp / "trainer", ignore_errors=True)
    artifacts.finalize(tmp, cfg.output_dir, {"kind": "judge", "config": cfg.model_dump(), "metrics": metrics,
                                             "log_history": reporter.history})
    return metrics


def _pairwise_loss(batch: list[dict], margins: torch.Tensor) -> torch.Tensor | None:
    """−log σ(m_chosen − m_rejected) over the complete pairs in the batch."""
    pos: dict[str, int] = {}
    neg: dict[str, int] = {}
    for i, r in enumerate(batch):
        if r.get("pair"):
            (pos if int(r["label"]) == 1 else neg)[r["pair"]] = i
    both = [(pos[k], neg[k]) for k in pos if k in neg]
    if not both:
        return None
    c = margins[[a for a, _ in both]]
    r = margins[[b for _, b in both]]
    return -torch.nn.functional.logsigmoid(c - r).mean()


def main(argv: list[str] | None = None) -> int:
    return run_cli("training.judge", __doc__, JudgeRunConfig, train, argv)


if __name__ == "__main__":
    raise SystemExit(main())
