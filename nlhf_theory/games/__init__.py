"""Preference games: the tabular game, linear preference models and named games."""

from nlhf_theory.games._game import PreferenceGame, bernoulli_labels, stack_games, zipf_policy
from nlhf_theory.games._linear import LINKS, LinearPreferenceModel, bradley_terry_linear
from nlhf_theory.games._named import (
    GAMES,
    annotator_mixture,
    biased_rock_paper_scissors,
    bradley_terry,
    comal_cyclic,
    condorcet_cycle,
    condorcet_winner,
    list_games,
    make_game,
    munos_nontransitive,
    random_skew,
    rock_paper_scissors,
    voting_game,
)

__all__ = [
    "GAMES",
    "LINKS",
    "LinearPreferenceModel",
    "PreferenceGame",
    "annotator_mixture",
    "bernoulli_labels",
    "biased_rock_paper_scissors",
    "bradley_terry",
    "bradley_terry_linear",
    "comal_cyclic",
    "condorcet_cycle",
    "condorcet_winner",
    "list_games",
    "make_game",
    "munos_nontransitive",
    "random_skew",
    "rock_paper_scissors",
    "stack_games",
    "voting_game",
    "zipf_policy",
]
