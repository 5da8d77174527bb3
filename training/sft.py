"""Supervised fine-tuning with TRL's SFTTrainer (full or LoRA); loss on the greeting only.

    python -m training.sft --config run.json
"""

from __future__ import annotations

import shutil
import time

from training import artifacts, devices, distributed, kernels
from training.config import SFTRunConfig
from training.data import read_jsonl, sft_records
from training.reporting import Reporter, ReporterCallback, run_cli


def peft_config(cfg):
    if cfg.lora is None:
        return None
    from peft import LoraConfig

    return LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                      target_modules=cfg.lora.target_modules, task_type="CAUSAL_LM")


def inject_lora(cfg, model, task_type: str = "CAUSAL_LM"):
    """(peft wrapper, the model with adapters injected in place), for the hand-written loops (fast RM engine,
    judge): they keep calling the inner model's modules; the wrapper saves and merges the adapters at the end."""
    from peft import get_peft_model

    peft = peft_config(cfg)
    peft.task_type = task_type
    wrapped = get_peft_model(model, peft)
    return wrapped, wrapped.get_base_model()


def train(cfg: SFTRunConfig, reporter: Reporter) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    rows = read_jsonl(cfg.train_file, required=("prompt", "response"))
    tmp = artifacts.partial_dir(cfg.output_dir)
    torch.manual_seed(cfg.seed)
    tok = AutoTokenizer.from_pretrained(cfg.base_model)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(cfg.base_model, dtype=torch.float32)
    applied = kernels.apply(model, cfg.kernels)
    args = SFTConfig(output_dir=str(tmp / "trainer"), per_device_train_batch_size=max(1, cfg.batch_size // distributed.world_size()),
                     learning_rate=cfg.learning_rate, max_steps=cfg.max_steps, num_train_epochs=cfg.num_epochs,
                     max_length=cfg.max_length, logging_steps=cfg.logging_steps, save_strategy="no", report_to=[],
                     bf16=devices.has_cuda(), seed=cfg.seed, gradient_checkpointing=cfg.gradient_checkpointing,
                     use_cpu=not devices.has_cuda(), dataloader_num_workers=0)
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(sft_records(rows)),
                         processing_class=tok, peft_config=peft_config(cfg), callbacks=[ReporterCallback(reporter)])
    reporter.info(f"SFT on {len(rows)} examples, {devices.describe()}")
    t0 = time.time()
    out = trainer.train()
    train_s = time.time() - t0
    if not distributed.is_main():
        return {"steps": out.global_step, "train_s": round(train_s, 2), "rank": distributed.rank()}  # rank 0 saves
    if cfg.lora is not None:
        artifacts.save_adapter(trainer.model, tmp)
    model = trainer.model.merge_and_unload() if cfg.lora is not None else trainer.model
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    metrics = {"kernels": applied, "train_loss": out.training_loss, "train_s": round(train_s, 2), "steps": out.global_step,
               "examples": len(rows), "examples_per_s": round(len(rows) * cfg.num_epochs / train_s, 2)
               if cfg.max_steps < 0 else None, "device": devices.describe(), "peak_mem_gb": devices.peak_memory_gb()}
    shutil.rmtree(tmp / "trainer", ignore_errors=True)
    artifacts.finalize(tmp, cfg.output_dir, {"kind": "sft", "config": cfg.model_dump(), "metrics": metrics,
                                             "log_history": reporter.history})
    return metrics


def main(argv: list[str] | None = None) -> int:
    return run_cli("training.sft", __doc__, SFTRunConfig, train, argv)


if __name__ == "__main__":
    raise SystemExit(main())
