"""Requests sampled in one batch get seeds of their own: a shared seed shares the sampling noise."""

from agents import policy
from agents import reflection as rf
from resources.llm.types import request_seed


def test_request_seed_is_stable_and_differs_by_item():
    assert request_seed(1, "chain-a") == request_seed(1, "chain-a")
    seeds = {request_seed(1, f"chain-{i}") for i in range(200)}
    assert len(seeds) == 200
    assert request_seed(1, "chain-a") != request_seed(2, "chain-a")
    assert all(0 <= s < 2**31 for s in seeds)


def test_reflection_revisions_of_one_round_do_not_share_a_seed():
    settings = rf.Settings()
    seeds = [settings.revision_sampling(1, f"c{i}").seed for i in range(50)]
    assert len(set(seeds)) == 50
    assert settings.revision_sampling(1, "c0").seed != settings.revision_sampling(2, "c0").seed
    # the samples of one chain and round (Settings.revisions) too; the first keeps the seed it had before
    per_sample = [settings.revision_sampling(1, "c0", k).seed for k in range(4)]
    assert len(set(per_sample)) == 4 and per_sample[0] == request_seed(1, "c0")


def test_candidates_of_different_prompts_do_not_share_a_seed():
    a = policy.candidate_requests("p1", "写一条祝福", k=3, temperature=0.8, top_p=0.95, max_new_tokens=8, seed=0)
    b = policy.candidate_requests("p2", "写一条祝福", k=3, temperature=0.8, top_p=0.95, max_new_tokens=8, seed=0)
    sa, sb = [r.sampling.seed for r in a], [r.sampling.seed for r in b]
    assert len(set(sa)) == 3 and not set(sa) & set(sb)
    # the same prompt asked again samples the same way (its own cached calls)
    again = policy.candidate_requests("p1", "写一条祝福", k=3, temperature=0.8, top_p=0.95, max_new_tokens=8, seed=0)
    assert [r.sampling.seed for r in again] == sa
