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
