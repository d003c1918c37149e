"""Recipes: exact-mode updates equal the tabular algorithms'; gradients pulled back; sampling."""

import types

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)  # tiny models: threads only contend on a busy 2-core machine
pytest.importorskip("transformers")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import nlhf_theory as nt  # noqa: E402
from nlhf_theory import InvalidInputError  # noqa: E402
from nlhf_theory.algorithms import float64_mode  # noqa: E402
from nlhf_theory.llm import (  # noqa: E402
    RECIPES,
    exact_loss,
    exact_step,
    game_tables,
    make_bridge,
    sampled_loss,
)

BETA, ETA, LR, MIX = 0.5, 0.8, 0.7, 0.3
A = nt.algorithms

#: recipe name -> (tabular factory call, recipe hyper-parameters, iterations compared)
CASES = {
    "dpo": (lambda: A.dpo(BETA, LR), {}, 1),
    "ipo": (lambda: A.ipo(BETA, LR), {}, 1),
    "slic": (lambda: A.slic(BETA, LR), {}, 1),
    "online_dpo": (lambda: A.online_dpo(BETA, LR), {}, 1),
    "online_ipo": (lambda: A.online_ipo(BETA, LR), {}, 1),
    "ipo_md": (lambda: A.ipo_md(BETA, LR, mixture=MIX), {"mixture": MIX}, 1),
    "egpo": (lambda: A.egpo(BETA, LR), {}, 1),
    "xpo": (lambda: A.xpo(BETA, LR, alpha=0.05), {"alpha": 0.05}, 1),
    "nash_md_pg": (lambda: A.nash_md_pg(BETA, LR, mixture=MIX), {"mixture": MIX}, 1),
    "sail_pr": (lambda: A.sail_pr(BETA, LR, gamma=0.3), {"gamma": 0.3}, 1),
    "sail_pp": (lambda: A.sail_pp(BETA, LR, pi=0.2), {"pi": 0.2}, 1),
    "sail_dp": (lambda: A.sail_dp(BETA, LR, rho=0.2), {"rho": 0.2}, 1),
    "inpo": (lambda: A.inpo(BETA, ETA, form="loss", loss_steps=3, loss_learning_rate=LR),
             {"eta": ETA, "loss_steps": 3}, 1),
    "nash_md": (lambda: A.nash_md(BETA, ETA, form="loss", loss_steps=3, loss_learning_rate=LR),
                {"eta": ETA, "loss_steps": 3}, 1),
    "sppo": (lambda: A.sppo(ETA, form="loss", loss_steps=3, loss_learning_rate=LR),
             {"eta": ETA, "loss_steps": 3}, 1),
    # DNO's registry factory is the mirror form of SPPO's step with 1 / eta; its regression is
    # SPPO's loss with that step.
    "dno": (lambda: A.sppo(1.0 / ETA, form="loss", loss_steps=3, loss_learning_rate=LR),
            {"eta": ETA, "loss_steps": 3}, 1),
    "comal": (lambda: A.comal(BETA, ETA, period=2, form="loss", loss_steps=3,
                              loss_learning_rate=LR),
              {"eta": ETA, "loss_steps": 3, "period": 2}, 3),
    "mpo": (lambda: A.mpo(BETA, ETA, period=2, form="loss", loss_steps=3, loss_learning_rate=LR),
            {"eta": ETA, "loss_steps": 3, "period": 2}, 3),
}
SAIL_IMPLEMENTED = (lambda: A.sail_pr(BETA, LR, gamma=0.3, variant="implemented", hook_scale=8.0),
                    {"gamma": 0.3, "variant": "implemented", "hook_scale": 8.0}, 1)


class FreeLogits(torch.nn.Module):
    """A causal 'LM' whose next-token logits are free parameters indexed by the current token."""

    def __init__(self, vocab):
        super().__init__()
        self.table = torch.nn.Parameter(torch.zeros(vocab, vocab, dtype=torch.float64))
        self.config = types.SimpleNamespace(vocab_size=vocab)

    def forward(self, input_ids, attention_mask=None, position_ids=None, use_cache=None):
        return types.SimpleNamespace(logits=self.table[input_ids])


@pytest.fixture(scope="module")
def one_token():
    bridge = make_bridge(vocab_size=4, length=1, num_prompts=2, preference="random_skew",
                         seed=3, fit_steps=30)
    rng = np.random.default_rng(0)
    pi0 = rng.dirichlet(np.ones(4), size=2)
    return bridge, pi0


def _free_model(bridge, pi0):
    model = FreeLogits(bridge.config.vocab_size)
    with torch.no_grad():
        for x in range(bridge.num_prompts):
            row = bridge.prompt_ids[x, -1]
            model.table[row, bridge.response_tokens] = torch.as_tensor(np.log(pi0[x]))
    return model


def _tabular(factory, game, log_pi0, iterations):
    with float64_mode():
        alg = factory()
        state = alg.init(game, jax.random.key(0))
        replace = {"logits": jnp.asarray(log_pi0)}
        state = state._replace(**replace)
        for i in range(iterations):
            state = alg.update(state, game, jax.random.key(i + 1))
        return np.asarray(alg.policy(state), dtype=np.float64)


@pytest.mark.parametrize("name", [*CASES, "sail_pr_implemented"])
def test_one_token_exact_update_equals_tabular(one_token, name):
    bridge, pi0 = one_token
    factory, hp, iterations = SAIL_IMPLEMENTED if name == "sail_pr_implemented" else CASES[name]
    recipe = RECIPES["sail_pr" if name == "sail_pr_implemented" else name]
    game = bridge.to_game()
    expected = _tabular(factory, game, np.log(pi0), iterations)
    model = _free_model(bridge, pi0)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    tables = game_tables(game)
    state = None
    for _ in range(iterations):
        state = exact_step(recipe, lambda: bridge.logprobs(model), model.parameters(), optimizer,
                           tables, beta=BETA, state=state, **hp)
    got = bridge.policy(model)
    assert np.abs(got - pi0).max() > 1e-5, "the update moved nothing"
    assert np.abs(got - expected).max() < 1e-10


def test_every_required_recipe_exists():
    required = {"dpo", "ipo", "slic", "online_dpo", "sail_pr", "sail_pp", "sail_dp", "nash_md",
                "nash_md_pg", "online_ipo", "ipo_md", "sppo", "inpo", "egpo", "mpo", "comal",
                "xpo", "dno", "optimistic_nlhf"}
    assert required <= set(RECIPES)
    assert set(RECIPES) <= set(nt.ALGORITHMS)
    assert required - {"optimistic_nlhf"} <= set(CASES)


@pytest.fixture(scope="module")
def two_tokens():
    bridge = make_bridge(vocab_size=3, length=2, num_prompts=2, preference="cyclic", seed=1,
                         fit_steps=30, architecture="gpt2")  # float64 throughout
    model = bridge.new_model(seed=5)
    return bridge, model


@pytest.mark.parametrize("name", [n for n in CASES if n != "egpo"] + ["egpo_first_gradient"])
def test_exact_gradient_is_tabular_gradient_pulled_back(two_tokens, name):
    """Longer responses: the adapter's gradient in the model's parameters equals J^T G, with G
    the tabular algorithm's gradient in the logits at log pi_theta (read off one SGD step of
    size 1 of the registry factory) and J the Jacobian of the enumerated log pi_theta."""
    bridge, model = two_tokens
    game = bridge.to_game()
    recipe = RECIPES["egpo" if name == "egpo_first_gradient" else name]
    if name == "egpo_first_gradient":  # EGPO's gradient against pi_t: uniform-pair online IPO
        factory, hp = (lambda: A.online_ipo(BETA, 1.0, pairs="uniform")), {}
    else:
        factory, hp, _ = CASES[name]
        hp = {k: v for k, v in hp.items() if k != "loss_steps"}
    params = list(model.parameters())
    logp = bridge.logprobs(model)
    log_pi = logp.detach().numpy()
    with float64_mode():
        alg = _unit_step(factory, name)
        state = alg.init(game, jax.random.key(0))._replace(logits=jnp.asarray(log_pi))
        new = np.log(np.asarray(alg.policy(alg.update(state, game, jax.random.key(1)))))
    G = log_pi - new  # = gradient + a per-prompt constant (log-softmax renormalizes)
    G = G - G.mean(-1, keepdims=True)  # a gradient in the logits sums to zero per prompt
    pulled = torch.autograd.grad(logp, params, grad_outputs=torch.as_tensor(G))
    loss = exact_loss(recipe, bridge.logprobs(model), game_tables(game), beta=BETA,
                      prev=torch.as_tensor(log_pi), **hp)
    ours = torch.autograd.grad(loss, params)
    scale = max(float(g.abs().max()) for g in ours)
    err = max(float((a - b).abs().max()) for a, b in zip(ours, pulled))
    assert scale > 1e-4 and err < 1e-10, (scale, err)


def _unit_step(factory, name):
    """The same factory with learning rate 1 and a single loss step."""
    cases = {
        "dpo": lambda: A.dpo(BETA, 1.0), "ipo": lambda: A.ipo(BETA, 1.0),
        "slic": lambda: A.slic(BETA, 1.0), "online_dpo": lambda: A.online_dpo(BETA, 1.0),
        "online_ipo": lambda: A.online_ipo(BETA, 1.0),
        "ipo_md": lambda: A.ipo_md(BETA, 1.0, mixture=MIX),
        "egpo_first_gradient": lambda: A.online_ipo(BETA, 1.0, pairs="uniform"),
        "xpo": lambda: A.xpo(BETA, 1.0, alpha=0.05),
        "nash_md_pg": lambda: A.nash_md_pg(BETA, 1.0, mixture=MIX),
        "sail_pr": lambda: A.sail_pr(BETA, 1.0, gamma=0.3),
        "sail_pp": lambda: A.sail_pp(BETA, 1.0, pi=0.2),
        "sail_dp": lambda: A.sail_dp(BETA, 1.0, rho=0.2),
        "inpo": lambda: A.inpo(BETA, ETA, form="loss", loss_steps=1, loss_learning_rate=1.0),
        "nash_md": lambda: A.nash_md(BETA, ETA, form="loss", loss_steps=1,
                                     loss_learning_rate=1.0),
        "sppo": lambda: A.sppo(ETA, form="loss", loss_steps=1, loss_learning_rate=1.0),
        "dno": lambda: A.sppo(1.0 / ETA, form="loss", loss_steps=1, loss_learning_rate=1.0),
        "comal": lambda: A.comal(BETA, ETA, period=2, form="loss", loss_steps=1,
                                 loss_learning_rate=1.0),
        "mpo": lambda: A.mpo(BETA, ETA, period=2, form="loss", loss_steps=1,
                             loss_learning_rate=1.0),
    }
    return cases[name]()


#: z-score bound: |mean - exact| <= Z standard errors on each of 3 random projections per
#: recipe (3 x 4 = 12 two-sided checks; with Z = 4.5 a correct estimator fails one with
#: probability about 12 x 6.8e-6 = 1e-4 under the normal approximation; the seeds are fixed).
#: Each seed's gradient averages 256 pairs per prompt (power: with the oracle's label
#: orientation reversed the online IPO, Nash-MD-PG and MPO checks reach z = 7 to 8).
Z = 4.5


@pytest.mark.parametrize("name", ["online_ipo", "egpo", "nash_md_pg", "mpo"])
def test_sampled_gradient_is_unbiased(two_tokens, name):
    bridge, model = two_tokens
    recipe = RECIPES[name]
    hp = {"eta": ETA, "period": 2} if recipe.inner_steps else {}
    params = list(model.parameters())
    tables = game_tables(bridge.to_game())
    exact = torch.autograd.grad(exact_loss(recipe, bridge.logprobs(model), tables, beta=BETA,
                                           **hp), params)
    rng = torch.Generator().manual_seed(0)
    directions = [[torch.randn(p.shape, generator=rng, dtype=p.dtype) for p in params]
                  for _ in range(3)]
    seeds, samples = 30, []
    for s in range(seeds):
        g = torch.autograd.grad(
            sampled_loss(recipe, model, bridge, beta=BETA, pairs_per_prompt=256,
                         generator=torch.Generator().manual_seed(100 + s), **hp), params)
        samples.append([sum(float((a * d).sum()) for a, d in zip(g, dirs))
                        for dirs in directions])
    samples = np.array(samples)
    target = np.array([sum(float((a * d).sum()) for a, d in zip(exact, dirs))
                       for dirs in directions])
    se = samples.std(0, ddof=1) / np.sqrt(seeds)
    z = np.abs(samples.mean(0) - target) / se
    assert np.all(se > 0) and np.all(z < Z), (z, target, se)


def test_bad_hyperparameters_are_named(two_tokens):
    bridge, model = two_tokens
    tables = game_tables(bridge.to_game())
    with pytest.raises(InvalidInputError, match="eta"):
        exact_loss("inpo", bridge.logprobs(model), tables, beta=BETA)
    with pytest.raises(InvalidInputError, match="gamma"):
        exact_loss("dpo", bridge.logprobs(model), tables, beta=BETA, gamma=0.1)
    with pytest.raises(InvalidInputError, match="recipe"):
        exact_loss("nope", bridge.logprobs(model), tables, beta=BETA)


def test_best_of_n_enhancer_is_the_law_of_the_best_draw(two_tokens):
    """Optimistic equilibrium learning's enhancer: the exact best-of-n law over the sequences
    against Monte Carlo (the best of n draws by the score), and the tabular factory's formula."""
    from nlhf_theory.llm import best_of_n, collection_weights

    bridge, model = two_tokens
    tables = game_tables(bridge.to_game())
    prev = bridge.logprobs(model).detach()
    P_hat = tables.P
    w1, w2 = collection_weights("optimistic_nlhf", tables, prev, model_preference=P_hat,
                                num_candidates=3)
    pi = torch.exp(prev)
    score = torch.einsum("xab,xb->xa", P_hat, pi)
    assert torch.allclose(w1, pi) and float((w2.sum(-1) - 1).abs().max()) < 1e-12
    gen = torch.Generator().manual_seed(0)
    draws = 20000
    for x in range(bridge.num_prompts):
        cand = torch.multinomial(pi[x], 3 * draws, replacement=True, generator=gen).reshape(-1, 3)
        best = cand.gather(1, score[x][cand].argmax(1, keepdim=True))[:, 0]
        freq = torch.bincount(best, minlength=bridge.num_responses).double() / draws
        p = w2[x].numpy()
        bound = 0.5 * np.sum(np.sqrt(p * (1 - p) / draws)) + np.sqrt(np.log(1e6) / (2 * draws))
        assert 0.5 * float((freq - w2[x]).abs().sum()) < bound
    with float64_mode():  # optimistic_nlhf's best_of_n formula, in jax
        main, sc = jnp.asarray(pi.numpy()), jnp.asarray(score.numpy())
        rank = jnp.argsort(jnp.argsort(sc, -1), -1)
        cdf = jnp.take_along_axis(jnp.cumsum(jnp.take_along_axis(main, jnp.argsort(sc, -1), -1),
                                             -1), rank, -1)
        tab = np.asarray(cdf**3 - (cdf - main)**3)
    assert np.abs(tab - w2.numpy()).max() < 1e-12
    assert torch.allclose(best_of_n(pi, score, 1), pi)
