"""nlhf_theory: exact, certified ground truth for preference learning."""

from nlhf_theory import algorithms, data, estimation, losses, validation
from nlhf_theory.algorithms import ALGORITHMS, run
from nlhf_theory.equilibria import *  # noqa: F403
from nlhf_theory.equilibria import __all__ as _equilibria_all
from nlhf_theory.games import *  # noqa: F403
from nlhf_theory.games import __all__ as _games_all
from nlhf_theory.metrics import *  # noqa: F403
from nlhf_theory.metrics import __all__ as _metrics_all
from nlhf_theory.reward_models import *  # noqa: F403
from nlhf_theory.reward_models import __all__ as _reward_models_all
from nlhf_theory.social_choice import *  # noqa: F403
from nlhf_theory.social_choice import __all__ as _social_choice_all
from nlhf_theory.validation import InvalidInputError

__version__ = "0.1.0"
__all__ = ["ALGORITHMS", "InvalidInputError", "algorithms", "data", "estimation", "losses", "run",
           "validation",
           *_games_all, *_equilibria_all, *_metrics_all, *_social_choice_all,
           *_reward_models_all]
