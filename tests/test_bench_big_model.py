"""bench.big_model: the random bigger model is the named architecture, and the report's MFU is arithmetic on
what each engine computed (no GPU needed: the runs' outputs are written here as the scripts print them)."""

import json

from bench import big_model


def test_build_gives_the_named_shape_with_the_like_models_tokenizer(tiny_model_dir, tmp_path):
    from transformers import AutoConfig, AutoTokenizer

    info = big_model.build(str(tiny_model_dir), str(tmp_path / "big"), shape="tiny")
    cfg = AutoConfig.from_pretrained(tmp_path / "big")
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.head_dim) == (64, 2, 16)
    assert len(AutoTokenizer.from_pretrained(tmp_path / "big")) == len(AutoTokenizer.from_pretrained(tiny_model_dir))
    assert big_model.flops_per_token(str(tmp_path / "big")) == 6 * info["non_embedding_params"]
    assert info["params"] - info["non_embedding_params"] == cfg.vocab_size * 64  # tied: one embedding matrix


def test_report_computes_ratio_and_mfu_from_the_runs_outputs(tiny_model_dir, paper_data, tmp_path):
    big_model.build(str(tiny_model_dir), str(tmp_path / "big"), shape="tiny")
    anchor = {"train_pairs": 8, "pairs_per_s": 10.0, "peak_mem_gb": 1.0, "device": "NVIDIA H100 80GB HBM3"}
    (tmp_path / "anchor.log").write_text("{'loss': 0.69, 'epoch': 1}\n100%|####| 1/1\n" + json.dumps(anchor, indent=1))
    (tmp_path / "ours.json").write_text(json.dumps([{"variant": "fast:64:2e-5", "pairs_per_s": 35.0,
                                                     "tokens_per_pair": 100.0, "peak_mem_gb": 2.0}]))
    out = tmp_path / "report.json"
    big_model.main(["report", "--model", str(tmp_path / "big"), "--data", str(paper_data), "--limit", "8",
                    "--rm", str(tmp_path / "ours.json"), "--anchor-rm", str(tmp_path / "anchor.log"),
                    "--out", str(out)])
    rep = json.loads(out.read_text())
    anchor_row, ours = rep["rm"]
    assert ours["× anchor"] == 3.5
    assert ours["MFU"] == round(35.0 * 100.0 * rep["flops_per_token"] / 989.4e12, 3)
    assert anchor_row["tokens/pair"] > 0  # counted from the anchor's own chat-templated rows
