"""Meta-learned update rules: Learned Policy Gradient (LPG) and the pieces GROOVE trains it with."""

from jaxpg.meta.lpg import (AgentState, LPGAgent, LPGHParams, agent_loss, agent_update, collect, meta_loss,
                            rule_inputs, tabular_optimizer, value_loss)
from jaxpg.meta.network import LPGNetwork, RuleInputs

__all__ = ["AgentState", "LPGAgent", "LPGHParams", "LPGNetwork", "RuleInputs", "agent_loss", "agent_update", "collect",
           "meta_loss", "rule_inputs", "tabular_optimizer", "value_loss"]
