"""Idealized policy-space (mirror) updates against their parametric (loss) forms."""

import numpy as np
import pytest

import nlhf_theory as nt

GAME = nt.make_game("random_skew", num_responses=6, seed=2, random_ref=True)


def metrics(frame):
    return frame.drop(columns=["step", "seed"]).to_numpy()


def test_inpo_loss_form_equals_its_mirror_step():
    # INPO's square loss is minimized exactly by the online-mirror-descent step.
    mirror = nt.run("inpo", GAME, beta=0.1, steps=20, learning_rate=2.0)
    loss = nt.run("inpo", GAME, beta=0.1, steps=20, learning_rate=2.0, form="loss",
                  loss_steps=500, loss_learning_rate=1.0)
    np.testing.assert_allclose(metrics(loss), metrics(mirror), atol=1e-10)


@pytest.mark.parametrize("hyper", [{"learning_rate": 2.0}, {}])  # constant step, Thm. 1 schedule
def test_nash_md_loss_form_equals_its_mirror_step(hyper):
    mirror = nt.run("nash_md", GAME, beta=0.1, steps=20, **hyper)
    loss = nt.run("nash_md", GAME, beta=0.1, steps=20, form="loss", loss_steps=500,
                  loss_learning_rate=1.0, **hyper)
    np.testing.assert_allclose(metrics(loss), metrics(mirror), atol=1e-10)


@pytest.mark.parametrize("name, hyper", [
    ("mpo", {"learning_rate": 0.4, "period": 10}),
    ("comal", {"learning_rate": 2.0, "period": 10}),
])
def test_magnet_methods_loss_form_equals_mirror_form(name, hyper):
    game = nt.make_game("comal_cyclic")
    mirror = nt.run(name, game, beta=0.1, steps=40, **hyper)
    inner = {"loss_steps": 300, "loss_learning_rate": 1.0}
    loss = nt.run(name, game, beta=0.1, steps=40, form="loss", **hyper, **inner)
    np.testing.assert_allclose(metrics(loss), metrics(mirror), atol=1e-9)


def test_sppo_loss_form_agrees_to_second_order_in_the_step():
    # SPPO's loss replaces log Z by eta / 2: the forms differ by O(eta^2) per step.
    errors = []
    for eta in (0.4, 0.1):
        mirror = nt.run("sppo", GAME, beta=0.1, steps=5, learning_rate=eta)
        loss = nt.run("sppo", GAME, beta=0.1, steps=5, learning_rate=eta, form="loss",
                      loss_steps=500, loss_learning_rate=1.0)
        errors.append(np.abs(metrics(loss) - metrics(mirror)).max())
    assert errors[1] < errors[0] / 4 ** 2 * 1.1  # at least second order


def test_bad_form_rejected():
    with pytest.raises(nt.InvalidInputError, match="form"):
        nt.run("inpo", GAME, beta=0.1, steps=1, learning_rate=1.0, form="other")
    with pytest.raises(nt.InvalidInputError, match="loss_steps"):
        nt.run("inpo", GAME, beta=0.1, steps=1, learning_rate=1.0, form="loss", loss_steps=0)


def test_inpo_loss_is_ipo_loss_with_a_moving_reference():
    rng = np.random.default_rng(0)
    lp, lp2, r, r2, pv, pv2 = rng.normal(size=(6, 10))
    label = rng.uniform(size=10)
    eta, beta = 2.0, 0.1
    R, R2 = eta * beta * r + (1 - eta * beta) * pv, eta * beta * r2 + (1 - eta * beta) * pv2
    np.testing.assert_allclose(nt.losses.inpo_loss(lp, lp2, r, r2, pv, pv2, label, eta, beta),
                               nt.losses.ipo_loss(lp, lp2, R, R2, label, 1 / eta), atol=1e-12)
