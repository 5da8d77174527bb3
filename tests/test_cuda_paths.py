"""The CUDA-only paths on a small random Llama: flash varlen attention for packed reward-model
rows, the CUDA-graph sampler, torch's fused RMSNorm. Skipped without a GPU (CI has none); on
the lent GPU machine: ``python tests/test_cuda_paths.py``."""

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _config():
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=512, hidden_size=192, intermediate_size=512, num_hidden_layers=3,
                       num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=512,
                       pad_token_id=0, eos_token_id=2, bos_token_id=1, tie_word_embeddings=True)


def test_packed_rewards_on_flash_varlen_equal_the_padded_forward():
    from transformers import LlamaForSequenceClassification

    from training.packing import pack_pairs, packed_rewards, use_packed_attention
    from training.scoring import last_token_rewards

    torch.manual_seed(0)
    model = LlamaForSequenceClassification(_config()).to("cuda", torch.bfloat16).eval()
    g = torch.Generator().manual_seed(1)
    prompts = [torch.randint(3, 500, (n,), generator=g).tolist() for n in (20, 7, 33, 12)]
    chosen = [p + torch.randint(3, 500, (n,), generator=g).tolist() for p, n in zip(prompts, (40, 5, 61, 9), strict=True)]
    rejected = [p + torch.randint(3, 500, (n,), generator=g).tolist() for p, n in zip(prompts, (3, 30, 8, 70), strict=True)]
    seqs = chosen + rejected
    width = max(map(len, seqs))
    ids = torch.tensor([s + [0] * (width - len(s)) for s in seqs], device="cuda")
    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs], device="cuda")
    with torch.no_grad():
        padded = last_token_rewards(model, ids, mask)
        use_packed_attention(model)
        c, r = packed_rewards(model, pack_pairs(chosen, rejected).to("cuda"))
    assert torch.allclose(torch.cat([c, r]), padded, atol=3e-2, rtol=3e-2), (torch.cat([c, r]), padded)
    model.train()
    c, r = packed_rewards(model, pack_pairs(chosen, rejected).to("cuda"))
    (-torch.nn.functional.logsigmoid(c - r).mean()).backward()
    assert model.model.layers[0].self_attn.k_proj.weight.grad.abs().sum() > 0


def test_graph_sampler_replays_match_eager_greedy_and_follow_weight_updates():
    from transformers import LlamaForCausalLM

    from training.graph_sampler import GraphSampler, Sampling

    torch.manual_seed(0)
    model = LlamaForCausalLM(_config()).to("cuda", torch.float32).eval()
    prompts = [[1, 5, 6, 7, 8], [1, 9], [1, 4, 4, 10, 11, 12, 13]]
    graph = GraphSampler(model, eos_token_ids=[2], pad_token_id=0, sampling=Sampling(temperature=0))
    eager = GraphSampler(model, eos_token_ids=[2], pad_token_id=0, sampling=Sampling(temperature=0), use_graphs=False)
    assert graph.generate(prompts, 40) == eager.generate(prompts, 40)
    with torch.no_grad():  # an optimizer step changes weights in place: the captured graph must see it
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    assert graph.generate(prompts, 40) == eager.generate(prompts, 40)
    sampled = GraphSampler(model, eos_token_ids=[2], pad_token_id=0, sampling=Sampling(temperature=1.0))
    outs = sampled.generate(prompts * 8, 40)
    assert len({tuple(o) for o in outs}) > 3  # draws differ between rows and replays


def test_fused_rms_norm_on_cuda_matches():
    from transformers import LlamaForSequenceClassification

    from training.kernels import apply

    torch.manual_seed(0)
    model = LlamaForSequenceClassification(_config()).to("cuda", torch.bfloat16).eval()
    ids = torch.randint(3, 500, (2, 50), device="cuda")
    with torch.no_grad():
        before = model(input_ids=ids).logits.float()
        apply(model, "fused_norm")
        after = model(input_ids=ids).logits.float()
    assert torch.allclose(before, after, atol=5e-2, rtol=5e-2)


if __name__ == "__main__":
    for name, fn in list(globals().items()):
        if name.startswith("test_"):
            fn()
            print("ok", name)
