"""The bridge: tokenizer, saved-and-reloaded reference, exact game, generation, mixtures."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)  # tiny models: threads only contend on a busy 2-core machine
transformers = pytest.importorskip("transformers")

import nlhf_theory as nt  # noqa: E402
from nlhf_theory import InvalidInputError  # noqa: E402
from nlhf_theory.llm import make_bridge, token_mixture  # noqa: E402


@pytest.fixture(scope="module")
def bridge():
    return make_bridge(vocab_size=3, length=2, num_prompts=2, preference="cyclic", seed=0,
                       fit_steps=40)


def test_tokenizer_is_local_and_pad_is_not_eos(bridge):
    tok = bridge.tokenizer
    assert tok.pad_token_id != tok.eos_token_id and tok.padding_side == "left"
    ids = tok("<bos> p1 a2 a0")["input_ids"]
    assert ids == [tok.bos_token_id, bridge.prompt_ids[1, 1].item(),
                   bridge.response_tokens[2].item(), bridge.response_tokens[0].item()]
    reloaded = transformers.AutoTokenizer.from_pretrained(bridge.reference_path)
    assert reloaded("<bos> p1 a2 a0")["input_ids"] == ids


def test_reference_is_fitted_saved_reloaded_and_is_the_games_pi_ref(bridge):
    game = bridge.to_game()
    ref = bridge.reference_model()
    assert np.abs(bridge.policy(ref) - np.asarray(game.pi_ref)).max() < 1e-12
    assert np.abs(np.asarray(game.pi_ref).sum(-1) - 1).max() < 1e-12
    fresh = bridge.new_model(seed=0)  # the random init the fit started from
    uniform = np.full(bridge.num_responses, 1.0 / bridge.num_responses)
    skew_ref = np.abs(np.asarray(game.pi_ref) - uniform).sum()
    skew_init = np.abs(bridge.policy(fresh) - uniform).sum()
    assert skew_ref > 3 * skew_init  # the fit moved it toward the skewed target
    second = bridge.reference_model()
    for a, b in zip(ref.parameters(), second.parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("preference", ["transitive", "cyclic", "random_skew", "linear"])
def test_preferences_are_skew_and_as_stated(preference):
    b = make_bridge(vocab_size=3, length=2, num_prompts=2, preference=preference, seed=2,
                    fit_steps=0, architecture="gpt2")
    P = b.preference_table
    assert np.allclose(P + np.swapaxes(P, 1, 2), 1.0, atol=1e-12)
    assert np.all((P >= 0) & (P <= 1))
    game = b.to_game()
    sol = nt.solve_regularized_nash(game, 0.1)
    assert sol.converged and sol.duality_gap < 1e-9
    seqs = b.sequence_indices.numpy()
    if preference == "cyclic":  # first tokens 0 < 1 < 2 < 0 (token i beats i + 1 mod 3)
        y = [int(np.flatnonzero((seqs[:, 0] == v) & (seqs[:, 1] == 0))[0]) for v in range(3)]
        assert P[0, y[0], y[1]] > 0.5 and P[0, y[1], y[2]] > 0.5 and P[0, y[2], y[0]] > 0.5
    if preference == "transitive":  # Bradley-Terry: log-odds add up
        logit = np.log(P / (1 - P))
        assert np.allclose(logit[:, 0, 1] + logit[:, 1, 2], logit[:, 0, 2], atol=1e-9)


def test_exact_game_metrics_apply(bridge):
    game = bridge.to_game()
    sol = nt.solve_regularized_nash(game, 0.2)
    assert float(nt.duality_gap(game, sol.policy, 0.2)) < 1e-10
    ref = bridge.reference_model()
    assert float(nt.duality_gap(game, bridge.policy(ref), 0.2)) > 1e-3


def _tv_bound(p, n, delta=1e-6):
    """With probability >= 1 - delta over n iid draws from p, the empirical distribution's total
    variation from p is at most 1/2 sum_y sqrt(p_y (1 - p_y) / n) (its mean, by Jensen) plus
    sqrt(ln(1/delta) / (2 n)) (McDiarmid: one draw moves the l1 distance by <= 2/n, so
    P(l1 - E l1 >= t) <= exp(-n t^2 / 2); halve for the total variation)."""
    return 0.5 * np.sum(np.sqrt(p * (1 - p) / n)) + math.sqrt(math.log(1 / delta) / (2 * n))


def test_generate_at_temperature_one_matches_the_enumerated_policy(bridge):
    ref = bridge.reference_model()
    n = 2000
    for temperature in (1.0, 0.7):
        exact = bridge.policy(ref, temperature=temperature)
        for x in range(bridge.num_prompts if temperature == 1.0 else 1):
            draws = bridge.generate(ref, x, n, temperature=temperature, seed=x)
            assert set(draws.flatten().tolist()) <= set(bridge.response_tokens.tolist())
            freq = np.bincount(bridge.sequence_index(draws).numpy(),
                               minlength=bridge.num_responses) / n
            tv = 0.5 * np.abs(freq - exact[x]).sum()
            assert tv < _tv_bound(exact[x], n), (temperature, x, tv)
            if temperature == 0.7:  # and it is far from the temperature-1 policy
                other = bridge.policy(ref)[x]
                assert 0.5 * np.abs(freq - other).sum() > _tv_bound(other, n)


def test_mixtures_sequence_and_token(bridge):
    ref = bridge.reference_model()
    model = bridge.new_model(seed=7)
    pi, rho = bridge.policy(model), bridge.policy(ref)
    m = 0.3
    seq = bridge.mixture_logprobs(model, ref, m, "sequence").detach().exp().numpy()
    expected = pi ** (1 - m) * rho ** m
    assert np.abs(seq - expected / expected.sum(-1, keepdims=True)).max() < 1e-12
    tok = bridge.mixture_logprobs(model, ref, m, "token").detach().exp().numpy()
    assert np.abs(tok.sum(-1) - 1).max() < 1e-12
    # the tabular chain-rule form, computed from the two sequence distributions only
    assert np.abs(tok - token_mixture(pi, rho, m, 3, 2)).max() < 1e-12
    assert np.abs(tok - seq).max() > 1e-4  # they differ (L = 2)
    one = make_bridge(vocab_size=3, length=1, num_prompts=1, fit_steps=5)
    a, b = one.new_model(seed=1), one.reference_model()
    assert (one.mixture_logprobs(a, b, m, "token")
            - one.mixture_logprobs(a, b, m, "sequence")).abs().max() < 1e-12  # L = 1: equal


def test_bad_input(bridge):
    with pytest.raises(InvalidInputError, match="preference"):
        make_bridge(preference="nope")
    with pytest.raises(InvalidInputError, match="vocab_size"):
        make_bridge(vocab_size=1)
    with pytest.raises(InvalidInputError, match="V \\*\\* L"):
        make_bridge(vocab_size=9, length=4)
    other = transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=50, n_embd=8, n_layer=1, n_head=2, n_positions=8))
    with pytest.raises(InvalidInputError, match="vocabulary"):
        bridge.logprobs(other)
    with pytest.raises(InvalidInputError, match="completion_ids"):
        bridge.sequence_index(torch.tensor([[0, 0]]))
    with pytest.raises(InvalidInputError, match="weight"):
        bridge.mixture_logprobs(bridge.reference_model(), bridge.reference_model(), 1.5)


class _Bigram(torch.nn.Module):
    """A causal 'LM' whose next-token logits depend on the current token only: with one prompt
    and L = 2 it represents every distribution over the sequences (free parameters)."""

    def __init__(self, vocab):
        super().__init__()
        self.table = torch.nn.Parameter(torch.zeros(vocab, vocab, dtype=torch.float64))
        self.config = type("Config", (), {"vocab_size": vocab})()

    def forward(self, input_ids, attention_mask=None, position_ids=None, use_cache=None):
        return type("Out", (), {"logits": self.table[input_ids]})()


def _set_policy(model, bridge, pi):
    """Write the chain-rule conditionals of the (1, V * V) policy pi into the bigram table."""
    V = bridge.vocab_size
    grid = pi.reshape(V, V)
    tokens = bridge.response_tokens
    with torch.no_grad():
        model.table[bridge.prompt_ids[0, -1], tokens] = torch.as_tensor(np.log(grid.sum(1)))
        for a in range(V):
            row = np.log(grid[a] / grid[a].sum())
            model.table[tokens[a], tokens] = torch.as_tensor(row)


def test_nash_md_fixed_points_are_stationary_for_their_own_mixture():
    """The token-level (TRL) and sequence-level (paper) fixed points of Nash-MD with mixture
    weight m: the exact Nash-MD-PG gradient through the bridge vanishes at each for its own
    mixture and not for the other's; at m = 0 both are pi*_beta."""
    from nlhf_theory.llm import exact_loss, game_tables, nash_md_fixed_point

    b = make_bridge(vocab_size=3, length=2, num_prompts=1, preference="cyclic", seed=0,
                    fit_steps=40)
    game, ref, beta, m = b.to_game(), b.reference_model(), 0.1, 0.5
    star = nt.solve_regularized_nash(game, beta).policy
    for level in ("sequence", "token"):
        zero, res = nash_md_fixed_point(game, beta, 0.0, level, 3, 2)
        assert res < 1e-12 and np.abs(zero - star).max() < 1e-10
    model = _Bigram(b.config.vocab_size)
    grads = {}
    for fixed in ("sequence", "token"):
        pi, res = nash_md_fixed_point(game, beta, m, fixed, 3, 2)
        assert res < 1e-12
        _set_policy(model, b, pi)
        assert np.abs(b.policy(model) - pi).max() < 1e-12
        for level in ("sequence", "token"):
            mix = b.mixture_logprobs(model, ref, m, level).detach()
            loss = exact_loss("nash_md_pg", b.logprobs(model), game_tables(game), beta=beta,
                              mixture_logp=mix, mixture=m)
            grads[fixed, level] = float(torch.autograd.grad(loss, model.table)[0].abs().max())
    assert grads["sequence", "sequence"] < 1e-12 and grads["token", "token"] < 1e-12, grads
    assert grads["sequence", "token"] > 1e-4 and grads["token", "sequence"] > 1e-4, grads
