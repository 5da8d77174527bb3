"""The local backend: batched generation, per-request seeds, schema-valid JSON every time."""

from pydantic import BaseModel, Field

from resources.llm import ChatRequest, LLMRuntime, Sampling
from resources.llm.local import LocalBackend


class Point(BaseModel):
    dimension: str = Field(max_length=8)
    point: str = Field(max_length=24)
    evidence: str = Field(max_length=24)


class Debate(BaseModel):
    side: str = Field(pattern="^(positive|negative)$")
    points: list[Point] = Field(min_length=1, max_length=2)
    score: int = Field(ge=1, le=10)


class AsciiPoint(BaseModel):
    dimension: str = Field(pattern="^[a-z]{1,8}$")
    level: int = Field(ge=1, le=5)
    agree: bool


class AsciiDebate(BaseModel):
    """Random weights pick any token: ASCII patterns keep this test about structure, not about
    how a random model spells multi-byte characters."""

    side: str = Field(pattern="^(positive|negative)$")
    points: list[AsciiPoint] = Field(min_length=1, max_length=3)
    score: int = Field(ge=1, le=10)


def _reqs(n, max_new_tokens=24, temperature=0.9):
    return [ChatRequest(messages=[{"role": "user", "content": f"给第{i}位朋友写生日祝福"}],
                        sampling=Sampling(seed=i, max_new_tokens=max_new_tokens, temperature=temperature), item=f"i{i}")
            for i in range(n)]


def test_batched_generation_keeps_order_and_counts_tokens(tiny_model_dir):
    backend = LocalBackend(str(tiny_model_dir), batch_size=3, progress=False)
    gens = backend.generate(_reqs(7))
    assert len(gens) == 7
    assert all(g.tokens_out and 0 < g.tokens_out <= 24 and g.tokens_in > 5 for g in gens)


def test_a_request_samples_the_same_text_whatever_it_is_batched_with(tiny_model_dir):
    backend = LocalBackend(str(tiny_model_dir), batch_size=8, progress=False)
    reqs = _reqs(5)
    together = backend.generate(reqs)
    alone = [backend.generate([r])[0] for r in reqs[:2]]
    assert [g.text for g in alone] == [g.text for g in together[:2]]
    other_seed = backend.generate([reqs[0].model_copy(update={"sampling": Sampling(seed=99, max_new_tokens=24)})])
    assert other_seed[0].text != together[0].text


def test_greedy_is_deterministic(tiny_model_dir):
    backend = LocalBackend(str(tiny_model_dir), batch_size=4, progress=False)
    reqs = _reqs(3, temperature=0.0)
    assert [g.text for g in backend.generate(reqs)] == [g.text for g in backend.generate(reqs)]


def test_requests_sharing_a_system_message_generate_what_they_generate_alone(tiny_model_dir):
    """The shared-prefix cache is an optimisation only: two agents' instructions (two groups, mixed in
    one batch, suffixes of different lengths) give each request the text it gets on its own."""
    backend = LocalBackend(str(tiny_model_dir), batch_size=8, progress=False)
    systems = ["你是祝福语评审的正方。" * 6, "你是祝福语评审的反方，请指出问题。" * 5]
    reqs = [ChatRequest(messages=[{"role": "system", "content": systems[i % 2]},
                                  {"role": "user", "content": "请评价：" + "祝你生日快乐" * (1 + i)}],
                        sampling=Sampling(seed=i, max_new_tokens=16, temperature=0.9 if i % 3 else 0.0),
                        item=f"i{i}") for i in range(6)]
    built = []
    batch_cache = backend._batch_cache
    backend._batch_cache = lambda *a: built.append(a[2]) or batch_cache(*a)
    together = backend.generate(reqs)
    assert built and all(w >= 16 for w in built[0])  # the shared path ran, for both groups
    alone = [backend.generate([r])[0] for r in reqs]
    assert [g.text for g in together] == [g.text for g in alone]
    assert backend._prefixes == {}  # caches do not outlive the call


def test_nested_schema_output_is_valid_every_time_on_a_tiny_model(tiny_model_dir):
    rt = LLMRuntime(LocalBackend(str(tiny_model_dir), batch_size=4, progress=False))
    results = rt.structured(_reqs(8, max_new_tokens=300), AsciiDebate)
    assert [r.status for r in results] == ["ok"] * 8, [r.error for r in results]
    for r in results:
        AsciiDebate.model_validate(r.parsed)


def test_real_smollm2_generates_batched_text_and_valid_nested_json(embedded_model_dir):
    rt = LLMRuntime(LocalBackend(str(embedded_model_dir), model_id="smollm2-135m-instruct", batch_size=4,
                                 progress=False))
    texts = rt.chat(_reqs(3, max_new_tokens=16))
    assert all(r.ok and r.text.strip() for r in texts)
    reqs = [ChatRequest(messages=[{"role": "system", "content": "你是祝福语评审，只输出 JSON。"},
                                  {"role": "user", "content": f"评价这句祝福：“愿你{w}”。指出优点。"}],
                        sampling=Sampling(seed=i, max_new_tokens=512, temperature=0.7))
            for i, w in enumerate(["岁岁平安", "前程似锦", "笑口常开", "万事胜意"])]
    results = rt.structured(reqs, Debate)
    assert [r.status for r in results] == ["ok"] * 4, [r.error for r in results]
    assert all(Debate.model_validate(r.parsed).points for r in results)


def test_a_row_caught_in_a_loop_stops_without_holding_the_others():
    import torch

    from resources.llm.local import _Degenerate

    prompt = [[7, 8, 9]] * 3
    looping = [5, 6] * 20                      # period 2, like 看看看… in byte tokens
    varied = list(range(100, 140))             # a normal answer
    late = list(range(200, 220)) + [3] * 20    # loops only for its last 20 tokens: not yet
    ids = torch.tensor([p + g for p, g in zip(prompt, (looping, varied, late), strict=True)])
    stop = _Degenerate(prompt_width=3, window=32, max_period=4)
    assert stop(ids, None).tolist() == [True, False, False]
    assert stop.flagged == {0}
    assert not stop(ids[:, :20], None).any()  # fewer generated tokens than the window: never


def test_a_grammar_row_stopped_mid_answer_is_not_matched_against_its_padding(tiny_model_dir):
    import torch

    from resources.llm.local import _GrammarMasks
    from resources.llm.structured import schema_for

    backend = LocalBackend(str(tiny_model_dir), batch_size=2, progress=False)
    model, tok = backend.load()
    compiled = backend._compiled(schema_for(AsciiDebate))
    stopped: set[int] = set()
    masks = _GrammarMasks([compiled, compiled], stopped)
    vocab = model.config.vocab_size
    masks(torch.zeros((2, 3), dtype=torch.long), torch.zeros((2, vocab)))
    stopped.add(0)  # the loop criterion ended row 0; generate now feeds it padding
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    brace = tok.encode("{", add_special_tokens=False)[0]
    out = masks(torch.tensor([[0, 0, 0, pad], [0, 0, 0, brace]]), torch.zeros((2, vocab)))
    assert out.shape == (2, vocab)
