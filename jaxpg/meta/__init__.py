"""Meta-learned update rules: Learned Policy Gradient (LPG) and the pieces GROOVE trains it with."""

from jaxpg.meta.lpg import (AgentState, LPGAgent, LPGHParams, a2c_update, agent_loss, agent_update, algorithmic_regret,
                            collect, evaluate_agent, init_agent, meta_loss, oracle_update, rule_inputs, rule_update,
                            tabular_optimizer, train_lifetime, value_loss)
from jaxpg.meta.network import LPGNetwork, RuleInputs

__all__ = ["AgentState", "LPGAgent", "LPGHParams", "LPGNetwork", "RuleInputs", "a2c_update", "agent_loss", "agent_update",
           "algorithmic_regret", "collect", "evaluate_agent", "init_agent", "meta_loss", "oracle_update", "rule_inputs", "rule_update",
           "tabular_optimizer", "train_lifetime", "value_loss"]
