"""Linear preference models: ``P(y beats y' | x) = link(theta . psi(x, y, y'))``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from nlhf_theory.games._game import PreferenceGame, bernoulli_labels
from nlhf_theory.validation import InvalidInputError, float_array, validation_tolerance

#: Links of a linear preference model: ``P = sigma(theta . psi)`` or ``1/2 + theta . psi``.
LINKS = ("logistic", "identity")


@jax.tree_util.register_pytree_node_class
class LinearPreferenceModel:
    """A linear preference model over antisymmetric features.

    ``P_theta(y beats y' | x) = sigma(theta . psi(x, y, y'))`` (``link="logistic"``) or
    ``1/2 + theta . psi(x, y, y')`` (``link="identity"``), with features antisymmetric in the
    responses, ``psi(x, y, y') = -psi(x, y', y)``, so that ``P + P^T = 1`` for every ``theta``.
    The Bradley-Terry-linear model ``psi = phi(x, y) - phi(x, y')`` is built by
    :func:`bradley_terry_linear`; one-hot pair indicators give the full tabular class, and
    ``psi = vec(phi_y phi_y'^T - phi_y' phi_y^T)`` a skew-bilinear, intransitive model.

    Args:
      features: ``psi`` of shape (Y, Y, d) or (X, Y, Y, d), antisymmetric in the two response
        axes.
      theta: (d,) parameter.
      link: ``"logistic"`` or ``"identity"`` (the latter requires ``|theta . psi| <= 1/2``).
      pi_ref, prompt_weights: as in :class:`~nlhf_theory.PreferenceGame`.

    Example:
      >>> import numpy as np, nlhf_theory as nt
      >>> model = nt.bradley_terry_linear(np.eye(3), np.array([1.0, 0.0, -1.0]))
      >>> model.game.P[0, 0, 2].round(4)
      np.float64(0.8808)

    References:
      Ye et al. 2024, arXiv:2402.07314, Sec. 4-5 (linear preference classes); Munos et al.
      2023, arXiv:2312.00886, Sec. 3 (preference models beyond Bradley-Terry).
    """

    __slots__ = ("features", "link", "pi_ref", "prompt_weights", "theta")

    def __init__(self, features, theta, link: str = "logistic", pi_ref=None,
                 prompt_weights=None):
        if link not in LINKS:
            raise InvalidInputError(f"link: must be one of {LINKS}, got {link!r}")
        psi = float_array(features, "features")
        if psi.ndim == 3:
            psi = psi[None]
        if psi.ndim != 4 or psi.shape[1] != psi.shape[2]:
            raise InvalidInputError(
                f"features: expected shape (Y, Y, d) or (X, Y, Y, d), got {np.shape(features)}"
            )
        asym = float(np.max(np.abs(psi + np.swapaxes(psi, 1, 2)))) if psi.size else 0.0
        if asym > validation_tolerance(psi.dtype):
            raise InvalidInputError(
                f"features: must be antisymmetric, psi(x, y, y') = -psi(x, y', y); largest "
                f"violation {asym:.3g}"
            )
        psi = 0.5 * (psi - np.swapaxes(psi, 1, 2))
        theta = float_array(theta, "theta").astype(psi.dtype)
        if theta.shape != (psi.shape[-1],):
            raise InvalidInputError(
                f"theta: expected shape ({psi.shape[-1]},) to match the feature dimension, got "
                f"{theta.shape}"
            )
        if link == "identity":
            worst = float(np.max(np.abs(psi @ theta))) if psi.size else 0.0
            if worst > 0.5 + validation_tolerance(psi.dtype):
                raise InvalidInputError(
                    f"theta: the identity link needs |theta . psi| <= 1/2 so that P is in "
                    f"[0, 1]; found {worst:.3g}"
                )
        # Validate pi_ref and the weights once, through the materialized game.
        game = PreferenceGame(_probabilities(np, psi, theta, link), pi_ref, prompt_weights)
        for name, value in (("features", psi), ("theta", theta), ("link", link),
                            ("pi_ref", game.pi_ref), ("prompt_weights", game.prompt_weights)):
            object.__setattr__(self, name, value)

    def __setattr__(self, name, value):
        raise AttributeError(f"LinearPreferenceModel is immutable; cannot set {name!r}")

    def tree_flatten(self):
        return (self.features, self.theta, self.pi_ref, self.prompt_weights), self.link

    @classmethod
    def tree_unflatten(cls, link, children):
        model = object.__new__(cls)
        features, theta, pi_ref, weights = children
        for name, value in (("features", features), ("theta", theta), ("link", link),
                            ("pi_ref", pi_ref), ("prompt_weights", weights)):
            object.__setattr__(model, name, value)
        return model

    @property
    def dim(self) -> int:
        """d, the feature dimension."""
        return self.features.shape[-1]

    def with_theta(self, theta) -> LinearPreferenceModel:
        """The same features, reference policy and prompt weights with a new ``theta``."""
        return LinearPreferenceModel(self.features, theta, self.link, self.pi_ref,
                                     self.prompt_weights)

    def probabilities(self, x, y, y_prime):
        """``P_theta(y beats y' | x)`` for index arrays of one broadcastable shape (jax)."""
        psi = jnp.asarray(self.features)[x, y, y_prime]
        return _probabilities(jnp, psi, jnp.asarray(self.theta), self.link)

    @property
    def game(self) -> PreferenceGame:
        """The materialized tabular :class:`~nlhf_theory.PreferenceGame`."""
        return PreferenceGame(_probabilities(np, np.asarray(self.features),
                                             np.asarray(self.theta), self.link),
                              self.pi_ref, self.prompt_weights)

    def oracle(self, key, x, y, y_prime):
        """Sample labels ``1[y beats y' | x] ~ Bernoulli(P_theta(y beats y' | x))``."""
        return bernoulli_labels(key, self.probabilities(x, y, y_prime))

    def __repr__(self) -> str:
        X, Y = self.features.shape[:2]
        return (f"LinearPreferenceModel(num_prompts={X}, num_responses={Y}, dim={self.dim}, "
                f"link={self.link!r})")


def _probabilities(xp, psi, theta, link):
    score = psi @ theta
    if link == "identity":
        return 0.5 + score
    return 1.0 / (1.0 + xp.exp(-score))


def bradley_terry_linear(phi, theta, *, pi_ref=None, prompt_weights=None):
    """Bradley-Terry-linear model: ``P(y beats y' | x) = sigma(theta . (phi(x, y) - phi(x, y')))``.

    The reward is ``r(x, y) = theta . phi(x, y)`` (Zhu, Jordan & Jiao 2023,
    arXiv:2301.11270, eq. 1).

    Args:
      phi: response features of shape (Y, d) or (X, Y, d).
      theta: (d,) reward parameter.
      pi_ref, prompt_weights: as in :class:`~nlhf_theory.PreferenceGame`.

    Returns:
      A :class:`LinearPreferenceModel` with the logistic link.
    """
    phi = float_array(phi, "phi")
    if phi.ndim == 2:
        phi = phi[None]
    if phi.ndim != 3:
        raise InvalidInputError(f"phi: expected shape (Y, d) or (X, Y, d), got {np.shape(phi)}")
    psi = phi[:, :, None, :] - phi[:, None, :, :]
    return LinearPreferenceModel(psi, theta, "logistic", pi_ref, prompt_weights)
