"""Rejection sampling policies."""

import pytest

from agents.pairs import Labelled, make_pairs


def _c(cid, prompt, label, score=0.0, text=None):
    return Labelled(candidate_id=cid, prompt_id=prompt, text=text or f"text-{cid}", label=label, score=score)


CANDS = [_c("a", "p1", 1, 2), _c("b", "p1", 1, 5), _c("c", "p1", 0, -1), _c("d", "p1", 0, -4),
         _c("e", "p2", 1), _c("f", "p2", 1), _c("g", "p3", 0), _c("h", "p4", 1, text="same"), _c("i", "p4", 0, text="same")]


def test_all_pairs_every_chosen_with_every_rejected_per_prompt():
    pairs = make_pairs(CANDS, "all")
    assert {(p.chosen.candidate_id, p.rejected.candidate_id) for p in pairs} == {("a", "c"), ("a", "d"), ("b", "c"), ("b", "d")}


def test_best_vs_worst_uses_the_debate_score():
    (pair,) = make_pairs(CANDS, "best_vs_worst")
    assert (pair.chosen.candidate_id, pair.rejected.candidate_id) == ("b", "d")


def test_one_per_prompt_is_seeded_and_never_pairs_equal_texts():
    assert make_pairs(CANDS, "one_per_prompt", seed=3) == make_pairs(CANDS, "one_per_prompt", seed=3)
    assert all(p.prompt_id == "p1" for p in make_pairs(CANDS, "one_per_prompt"))


def test_unknown_policy_is_an_error():
    with pytest.raises(ValueError, match="unknown pairing policy"):
        make_pairs(CANDS, "random")


def test_pairs_never_mix_two_policies_candidates():
    mixed = [Labelled("x", "p", "好的一条", 1, policy="sft-1"), Labelled("y", "p", "差的一条", 0, policy="grpo-2")]
    assert make_pairs(mixed, "all") == []
    same = [*mixed, Labelled("z", "p", "另一条差的", 0, policy="sft-1")]
    (pair,) = make_pairs(same, "all")
    assert (pair.chosen.candidate_id, pair.rejected.candidate_id) == ("x", "z")


def test_an_unknown_pairing_policy_fails_even_without_candidates():
    with pytest.raises(ValueError, match="unknown pairing policy"):
        make_pairs([], "bogus")  # type: ignore[arg-type]
