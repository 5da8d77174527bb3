"""Reward model (Bradley–Terry) on preference pairs, evaluated beside the length baseline.

    python -m training.rm --config run.json

Two engines: ``trl`` (TRL's RewardTrainer) and ``fast``: the same loss in a plain loop that
tokenizes once and runs chosen and rejected in one forward pass — packed into one padding-free
row with the shared prompt computed once (``training/packing.py``), or, with ``packing`` off, as
length-bucketed padded rows — with bf16 weights and fp32 master copies on CUDA. Both honour
``lora`` (adapters merged into the artifact) and ``gradient_checkpointing``.
"""

from __future__ import annotations

import contextlib
import math
import random
import shutil
import time

import torch
from tqdm.auto import tqdm

from training import artifacts, devices, distributed, kernels
from training.config import RMRunConfig
from training.data import pair_records, read_jsonl
from training.packing import pack_pairs, packed_layout, packed_rewards, use_packed_attention
from training.reporting import Reporter, ReporterCallback, run_cli
from training.rm_eval import evaluate_labels, evaluate_pairs
from training.scoring import RewardScorer, chat_texts, last_token_rewards


def load_pairs(cfg: RMRunConfig) -> list[dict]:
    rows = [r for f in cfg.train_files for r in read_jsonl(f, required=("prompt", "chosen", "rejected"))]
    rows = [r for r in rows if r["chosen"] != r["rejected"]]  # no signal in a tie
    return rows[: cfg.max_train_pairs] if cfg.max_train_pairs else rows


def _model_and_tokenizer(base: str):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1, dtype=torch.float32)
    model.config.pad_token_id = tok.pad_token_id
    return model, tok


def train_trl(cfg: RMRunConfig, rows: list[dict], model, tok, tmp, reporter: Reporter) -> dict:
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    from training.sft import peft_config

    args = RewardConfig(output_dir=str(tmp / "trainer"), per_device_train_batch_size=cfg.batch_size,
                        learning_rate=cfg.learning_rate, max_steps=cfg.max_steps, num_train_epochs=cfg.num_epochs,
                        max_length=cfg.max_length, logging_steps=cfg.logging_steps, save_strategy="no", report_to=[],
                        bf16=devices.has_cuda(), seed=cfg.seed, use_cpu=not devices.has_cuda(),
                        gradient_checkpointing=cfg.gradient_checkpointing)
    peft = peft_config(cfg)
    if peft is not None:
        peft.task_type = "SEQ_CLS"
    trainer = RewardTrainer(model=model, args=args, train_dataset=Dataset.from_list(pair_records(rows)),
                            processing_class=tok, peft_config=peft, callbacks=[ReporterCallback(reporter)])
    t0 = time.time()
    out = trainer.train()
    if devices.has_cuda():
        torch.cuda.synchronize()
    shutil.rmtree(tmp / "trainer", ignore_errors=True)
    model = trainer.model.merge_and_unload() if peft is not None else trainer.model
    return {"model": model, "train_s": time.time() - t0, "steps": out.global_step, "train_loss": out.training_loss}


def length_buckets(lengths: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Batches of similar length (sorted, with a little jitter so batches differ between epochs),
    in random order."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i] + rng.random() * 8))
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


def random_batches(n: int, batch_size: int, rng: random.Random) -> list[list[int]]:
    order = list(range(n))
    rng.shuffle(order)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def _pad(seqs: list[list[int]], pad_id: int, multiple: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    width = (width + multiple - 1) // multiple * multiple
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
        mask[i, : len(s)] = 1
    return ids, mask


def _checkpointing(model, action: str):
    """``activation_checkpointing_<action>``; transformers < 5 calls it ``gradient_checkpointing_<action>``."""
    return getattr(model, f"activation_checkpointing_{action}", None) or getattr(model, f"gradient_checkpointing_{action}")


def train_fast(cfg: RMRunConfig, rows: list[dict], model, tok, reporter: Reporter) -> dict:
    from training.precision import MasterWeights

    dev = devices.device()
    t0 = time.time()
    prompts = [r["prompt"] for r in rows]
    enc = lambda texts: tok(texts, add_special_tokens=False, truncation=True, max_length=cfg.max_length)["input_ids"]  # noqa: E731
    chosen = enc(chat_texts(tok, prompts, [r["chosen"] for r in rows]))
    rejected = enc(chat_texts(tok, prompts, [r["rejected"] for r in rows]))
    lengths = [max(len(a), len(b)) for a, b in zip(chosen, rejected, strict=True)]
    prep_s = time.time() - t0
    rng = random.Random(cfg.seed)
    torch.manual_seed(cfg.seed)
    lora = None
    if cfg.lora is not None:
        from training.sft import inject_lora

        lora, model = inject_lora(cfg, model, "SEQ_CLS")  # SEQ_CLS keeps the score head fully trainable
    if cfg.gradient_checkpointing:  # non-reentrant: also right when the inputs need no grad (LoRA)
        _checkpointing(model, "enable")({"use_reentrant": False})
        model.config.use_cache = False
    model.to(dev).train()
    steps_per_epoch = math.ceil(len(rows) / cfg.batch_size)
    total = cfg.max_steps if cfg.max_steps > 0 else math.ceil(steps_per_epoch * cfg.num_epochs)
    precision = ("bf16_master" if dev == "cuda" else "fp32") if cfg.precision == "auto" else cfg.precision
    master = MasterWeights(model, cfg.learning_rate, fused=dev == "cuda", shard=cfg.shard_optimizer) \
        if precision == "bf16_master" else None
    trainable = [p for p in model.parameters() if p.requires_grad]
    averager = distributed.GradientAverager(trainable)  # under torchrun: all-reduce overlapped with backward
    opt = master.optimizer if master else torch.optim.AdamW(trainable, lr=cfg.learning_rate,
                                                            weight_decay=0.0, fused=dev == "cuda")
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1 - s / total))  # linear decay, as HF
    if cfg.compile:
        for layer in model.base_model.layers:  # identical layers: one compiled graph, reused
            layer.compile(dynamic=True)
    packing = cfg.packing if cfg.packing is not None else dev == "cuda"
    attn_before = use_packed_attention(model) if packing else None
    step, losses, accs, tokens, seen = 0, [], [], 0, 0
    if dev == "cuda":
        torch.cuda.synchronize()
    t1 = time.time()
    bar = tqdm(total=total, desc="reward model", unit="step", mininterval=10, dynamic_ncols=True,
               disable=not distributed.is_main())  # ETA on stderr, once per run
    while step < total:
        for batch in (random_batches(len(rows), cfg.batch_size, rng) if packing
                      else length_buckets(lengths, cfg.batch_size, rng)):
            if step >= total:
                break
            if len(batch) < distributed.world_size():
                continue  # a tail too small to give every rank a pair (every rank skips it alike)
            batch = distributed.shard(batch)  # under torchrun: this rank's share; gradients averaged below
            micro = cfg.micro_batch_size or len(batch)
            chunks = [batch[i: i + micro] for i in range(0, len(batch), micro)]
            margins, loss = [], torch.zeros((), device=dev)
            for j, chunk in enumerate(chunks):  # gradient accumulation: the step's loss is the mean over the share
                averager.armed = j == len(chunks) - 1  # the all-reduce starts in the share's last backward
                with contextlib.ExitStack() as held:
                    with torch.autocast(device_type=dev, dtype=torch.bfloat16, enabled=precision == "amp"):
                        if packing:
                            packed = pack_pairs([chosen[i] for i in chunk], [rejected[i] for i in chunk]).to(dev)
                            tokens += packed.n_tokens
                            held.enter_context(packed_layout(packed))  # checkpointed layers re-run attention in backward
                            r_chosen, r_rejected = packed_rewards(model, packed)
                            margin = r_chosen - r_rejected
                        else:
                            ids, mask = _pad([chosen[i] for i in chunk] + [rejected[i] for i in chunk], tok.pad_token_id)
                            ids, mask = ids.to(dev, non_blocking=True), mask.to(dev, non_blocking=True)
                            tokens += ids.numel()
                            r = last_token_rewards(model, ids, mask, mask_attention=False)
                            margin = r[: len(chunk)] - r[len(chunk):]
                    part = -torch.nn.functional.logsigmoid(margin).sum() / len(batch)
                    part.backward()
                margins.append(margin.detach())
                loss = loss + part.detach()
            margin = torch.cat(margins)
            averager.finish()
            if master:
                master.step()
            else:
                torch.nn.utils.clip_grad_norm_(trainable, 1.0)
                opt.step()
                opt.zero_grad(set_to_none=True)
            sched.step()
            step += 1
            bar.update(1)
            seen += len(batch)
            losses.append(loss.detach())
            accs.append((margin > 0).float().mean().detach())
            if step % cfg.logging_steps == 0 or step == total:
                k = cfg.logging_steps
                reporter.metrics(step, {"loss": torch.stack(losses[-k:]).mean().item(),
                                        "accuracy": torch.stack(accs[-k:]).mean().item(),
                                        "learning_rate": sched.get_last_lr()[0], "epoch": step / steps_per_epoch})
    if dev == "cuda":
        torch.cuda.synchronize()
    train_s = time.time() - t1
    bar.close()
    averager.close()
    optimizer_gb = round(master.state_bytes() / 1e9, 4) if master else None  # this rank's, before gathering
    if master:
        model = master.load_into(model)
    if attn_before:
        use_packed_attention(model, attn_before)  # the saved model loads with its usual attention
    if cfg.gradient_checkpointing:
        _checkpointing(model, "disable")()
    if lora is not None:
        model = lora.merge_and_unload()  # the artifact is a plain model, as with the trl engine
    return {"model": model, "train_s": train_s, "prep_s": prep_s, "steps": step, "precision": precision,
            "optimizer_state_gb": optimizer_gb,
            "packing": packing, "tokens_per_pair": round(tokens / max(seen, 1), 1),
            "train_loss": torch.stack(losses).mean().item() if losses else None}


def train(cfg: RMRunConfig, reporter: Reporter) -> dict:
    rows = load_pairs(cfg)
    if not rows:
        raise ValueError("no usable preference pairs (every pair had chosen == rejected)")
    tmp = artifacts.partial_dir(cfg.output_dir)
    torch.manual_seed(cfg.seed)
    model, tok = _model_and_tokenizer(cfg.base_model)
    applied = kernels.apply(model, cfg.kernels)
    reporter.info(f"reward model ({cfg.engine}) on {len(rows)} pairs, {devices.describe()}")
    if devices.has_cuda():
        torch.cuda.reset_peak_memory_stats()
    if distributed.world_size() > 1 and cfg.engine != "fast":
        raise ValueError("several ranks (torchrun) need engine 'fast'; the trl engine runs on one GPU here")
    res = (train_fast(cfg, rows, model, tok, reporter) if cfg.engine == "fast"
           else train_trl(cfg, rows, model, tok, tmp, reporter))
    pairs_seen = len(rows) * cfg.num_epochs if cfg.max_steps < 0 else res["steps"] * cfg.batch_size
    metrics = {"engine": cfg.engine, "train_pairs": len(rows), "steps": res["steps"],
               "train_s": round(res["train_s"], 2), "pairs_per_s": round(pairs_seen / res["train_s"], 1),
               "prep_s": round(res.get("prep_s", 0.0), 2), "precision": res.get("precision", "trainer"),
               "optimizer_state_gb": res.get("optimizer_state_gb"),
               "packing": res.get("packing", False), "tokens_per_pair": res.get("tokens_per_pair"),
               "kernels": applied,
               "train_loss": res["train_loss"], "device": devices.describe(), "peak_mem_gb": devices.peak_memory_gb(),
               "ranks": distributed.world_size()}
    if not distributed.is_main():
        return metrics  # rank 0 saves, evaluates and finalizes
    model = res["model"]
    model.eval()
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    scorer = RewardScorer(str(tmp))
    if cfg.eval_pairs_file:
        metrics["eval_pairs"] = evaluate_pairs(scorer.score, read_jsonl(cfg.eval_pairs_file, ("prompt", "chosen", "rejected")))
    if cfg.eval_labels_file:
        metrics["eval_labels"] = evaluate_labels(scorer.score, read_jsonl(cfg.eval_labels_file, ("prompt", "response", "label")))
    artifacts.finalize(tmp, cfg.output_dir, {"kind": "reward", "config": cfg.model_dump(), "metrics": metrics,
                                             "log_history": reporter.history})
    return metrics


def main(argv: list[str] | None = None) -> int:
    return run_cli("training.rm", __doc__, RMRunConfig, train, argv)


if __name__ == "__main__":
    raise SystemExit(main())
