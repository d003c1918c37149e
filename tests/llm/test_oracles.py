"""Preference oracles for language models (nlhf_theory.llm._oracles)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from nlhf_theory import InvalidInputError  # noqa: E402
from nlhf_theory.llm import (  # noqa: E402
    CallableOracle,
    Completions,
    PairwiseOracle,
    RewardModelOracle,
    TableOracle,
)


def tiny_reward_model(architecture="llama", seed=0, vocab=12):
    import transformers as tf

    torch.manual_seed(seed)
    if architecture == "gpt2":  # absolute positions: left padding matters without position ids
        config = tf.GPT2Config(vocab_size=vocab, n_embd=16, n_layer=1, n_head=2,
                               n_positions=32, pad_token_id=0, num_labels=1)
        return tf.GPT2ForSequenceClassification(config).double().eval()
    config = tf.LlamaConfig(vocab_size=vocab, hidden_size=16, intermediate_size=32,
                            num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                            max_position_embeddings=32, pad_token_id=0, num_labels=1)
    return tf.LlamaForSequenceClassification(config).double().eval()


def batch(prompts, completions):
    """Completions from lists of token lists (prompts left-padded, completions right-padded)."""
    P = max(map(len, prompts))
    C = max(map(len, completions))
    pid = torch.tensor([[0] * (P - len(p)) + p for p in prompts])
    pmask = torch.tensor([[0] * (P - len(p)) + [1] * len(p) for p in prompts])
    cid = torch.tensor([c + [0] * (C - len(c)) for c in completions])
    return Completions(pid, pmask, cid, torch.tensor([len(c) for c in completions]))


PROMPTS = [[5, 6, 7], [8]]
FIRST = [[3, 4], [9, 10, 11]]
SECOND = [[2], [3, 3]]


@pytest.mark.parametrize("architecture", ["llama", "gpt2"])
def test_reward_model_oracle_is_bradley_terry_of_unpadded_rewards(architecture):
    model = tiny_reward_model(architecture)
    oracle = RewardModelOracle(model)
    a, b = batch(PROMPTS, FIRST), batch(PROMPTS, SECOND)

    def alone(prompt, completion):  # each sequence alone: no padding at all
        with torch.no_grad():
            return float(model(input_ids=torch.tensor([prompt + completion])).logits[0, 0])

    expected = [1 / (1 + np.exp(-(alone(p, x) - alone(p, y))))
                for p, x, y in zip(PROMPTS, FIRST, SECOND)]
    np.testing.assert_allclose(oracle(a, b).numpy(), expected, atol=1e-12)
    np.testing.assert_allclose((oracle(a, b) + oracle(b, a)).numpy(), 1.0, atol=1e-15)
    np.testing.assert_allclose(oracle(a, a).numpy(), 0.5, atol=1e-15)
    scaled = RewardModelOracle(model, scale=2.0)(a, b).numpy()
    logit = np.log(np.array(expected) / (1 - np.array(expected)))
    np.testing.assert_allclose(scaled, 1 / (1 + np.exp(-2 * logit)), atol=1e-12)


def test_reward_model_oracle_on_text_and_on_a_callable():
    calls = []

    def reward(prompts, texts):
        calls.append((prompts, texts))
        return torch.tensor([float(len(t)) for t in texts])

    class Decoder:
        def decode(self, ids, skip_special_tokens=True):
            return "".join(chr(ord("a") + i) for i in ids)

    oracle = RewardModelOracle(reward, tokenizer=Decoder())
    p = oracle(batch(PROMPTS, FIRST), batch(PROMPTS, SECOND))
    np.testing.assert_allclose(p.numpy(), 1 / (1 + np.exp(-np.array([1.0, 1.0]))))
    assert calls[0] == (["fgh", "i"], ["de", "jkl"])  # padding and tail dropped
    with pytest.raises(InvalidInputError, match="reward_model: returned NaN"):
        RewardModelOracle(lambda c: torch.full((2,), float("nan")))(
            batch(PROMPTS, FIRST), batch(PROMPTS, SECOND))
    with pytest.raises(InvalidInputError, match="share their prompts"):
        oracle(batch(PROMPTS, FIRST), batch([[5, 6, 7], [9]], SECOND))


def test_pairwise_oracle_is_made_antisymmetric():
    # a position-biased, non-skew pairwise model: q(y, y') = 0.7 sigma(s(y) - s(y')) + 0.25
    def score(c):
        return c.completion_ids.sum(-1).double() / 10.0

    def model(first, second):
        return 0.7 * torch.sigmoid(score(first) - score(second)) + 0.25

    a, b = batch(PROMPTS, FIRST), batch(PROMPTS, SECOND)
    raw_ab, raw_ba = model(a, b), model(b, a)
    assert not torch.allclose(raw_ab + raw_ba, torch.ones(2, dtype=torch.float64))
    oracle = PairwiseOracle(model)
    np.testing.assert_allclose(oracle(a, b).numpy(), (0.5 * (raw_ab + 1 - raw_ba)).numpy(),
                               atol=1e-15)
    np.testing.assert_allclose((oracle(a, b) + oracle(b, a)).numpy(), 1.0, atol=1e-15)
    np.testing.assert_allclose(oracle(a, a).numpy(), 0.5, atol=1e-15)
    logits = PairwiseOracle(lambda x, y: torch.logit(model(x, y)), logits=True)
    np.testing.assert_allclose(logits(a, b).numpy(), oracle(a, b).numpy(), atol=1e-12)


@pytest.mark.parametrize("values, match", [
    ([0.5, 1.2], r"oracle: returned probabilities outside \[0, 1\]"),
    ([-0.1, 0.2], r"outside \[0, 1\]"),
    ([0.5, float("nan")], "NaN"),
    ([0.5], "returned 1 values for 2 pairs"),
])
def test_callable_oracle_checks_its_output(values, match):
    oracle = CallableOracle(lambda a, b: torch.tensor(values))
    with pytest.raises(InvalidInputError, match=match):
        oracle(batch(PROMPTS, FIRST), batch(PROMPTS, SECOND))


def test_callable_oracle_round_off_is_clipped_and_sampling_is_bernoulli():
    oracle = CallableOracle(lambda a, b: torch.tensor([1 + 1e-9, 0.25]))
    a, b = batch(PROMPTS, FIRST), batch(PROMPTS, SECOND)
    assert oracle(a, b).tolist() == [1.0, 0.25]
    many = Completions(*(t.repeat_interleave(4000, 0) for t in a))
    other = Completions(*(t.repeat_interleave(4000, 0) for t in b))
    fn = CallableOracle(lambda x, y: torch.tensor([0.25, 0.75]).repeat_interleave(4000))
    draws = fn.sample(many, other, generator=torch.Generator().manual_seed(0))
    assert set(draws.unique().tolist()) <= {0.0, 1.0}
    means = draws.reshape(2, 4000).mean(-1).numpy()
    se = np.sqrt(0.25 * 0.75 / 4000)
    np.testing.assert_allclose(means, [0.25, 0.75], atol=5 * se)


def test_table_oracle_looks_up_the_exact_table():
    rng = np.random.default_rng(0)
    A = rng.uniform(size=(2, 3, 3))
    P = 0.5 * (A + 1 - np.swapaxes(A, -1, -2))
    sequences = [[2, 3], [3, 2], [4, 4]]
    oracle = TableOracle(P, [[5, 6, 7], [8]], sequences)
    a = batch(PROMPTS, [[2, 3], [4, 4]])
    b = batch(PROMPTS, [[4, 4], [3, 2]])
    np.testing.assert_allclose(oracle(a, b).numpy(), [P[0, 0, 2], P[1, 2, 1]], atol=1e-15)
    with pytest.raises(InvalidInputError, match="not an enumerated response"):
        oracle(a, batch(PROMPTS, [[2], [4, 4]]))
    with pytest.raises(InvalidInputError, match="not in the table"):
        oracle(batch([[5], [8]], [[2, 3], [4, 4]]), batch([[5], [8]], [[4, 4], [3, 2]]))
    with pytest.raises(InvalidInputError, match="P"):
        TableOracle(A, [[5], [8]], sequences)  # not skew
    with pytest.raises(InvalidInputError, match="sequences: need 3 distinct"):
        TableOracle(P, [[5], [8]], [[2, 3], [2, 3], [4, 4]])


def test_table_oracle_of_the_bridge():
    from nlhf_theory.llm import make_bridge

    bridge = make_bridge(vocab_size=2, length=2, num_prompts=2, preference="cyclic",
                             seed=0, fit_steps=5)
    oracle = TableOracle.from_bridge(bridge)
    seqs = bridge.sequences
    prompts = bridge.prompt_ids
    x = torch.tensor([0, 1, 1])
    y, y2 = torch.tensor([0, 3, 2]), torch.tensor([1, 1, 2])
    first = Completions(prompts[x], torch.ones_like(prompts[x]), seqs[y],
                        torch.full((3,), seqs.shape[1]))
    second = Completions(prompts[x], torch.ones_like(prompts[x]), seqs[y2],
                         torch.full((3,), seqs.shape[1]))
    np.testing.assert_allclose(oracle(first, second).numpy(),
                               bridge.preference_table[x, y, y2], atol=1e-15)
