"""Sequence-level policy losses (language-model RL) as composable pure functions.

>>> from jaxpg.losses import sequence as seq
>>> batch = seq.SequenceBatch(logp=..., old_logp=..., mask=..., rewards=..., group_ids=..., ref_logp=...)
>>> loss, aux = seq.get_recipe("grpo")(batch)

Modules: :mod:`.batch` (the container), :mod:`.groups` (per-prompt statistics), slot functions in
:mod:`.rewards`, :mod:`.advantages`, :mod:`.ratios`, :mod:`.surrogates`, :mod:`.aggregation`,
:mod:`.regularizers`; :mod:`.recipe` assembles them; :mod:`.recipes` is the catalog.
"""

from jaxpg.losses.sequence import advantages, aggregation, groups, ratios, regularizers, rewards, surrogates
from jaxpg.losses.sequence.batch import SequenceBatch
from jaxpg.losses.sequence.recipe import LossRecipe, PolicyTerm, Recipe
from jaxpg.losses.sequence.recipes import RECIPES, get_recipe

__all__ = [
    "LossRecipe",
    "PolicyTerm",
    "RECIPES",
    "Recipe",
    "SequenceBatch",
    "advantages",
    "aggregation",
    "get_recipe",
    "groups",
    "ratios",
    "regularizers",
    "rewards",
    "surrogates",
]
