"""Meta-learned update rules: Learned Policy Gradient (LPG) and GROOVE's meta-training."""

from jaxpg.meta.lpg import (AgentState, LPGAgent, LPGHParams, a2c_update, agent_loss, agent_update, algorithmic_regret,
                            collect, evaluate_agent, init_agent, meta_loss, oracle_update, positive_advantage_mean,
                            positive_value_loss, rule_inputs, rule_update, tabular_optimizer, train_lifetime,
                            value_loss)
from jaxpg.meta.network import LPGNetwork, RuleInputs
from jaxpg.meta.rule import load_rule, save_rule
from jaxpg.meta.train import CURRICULA, MetaConfig, MetaState, MetaTrainer

__all__ = [
    "AgentState", "CURRICULA", "LPGAgent", "LPGHParams", "LPGNetwork", "MetaConfig", "MetaState", "MetaTrainer",
    "RuleInputs", "a2c_update", "agent_loss", "agent_update", "algorithmic_regret", "collect", "evaluate_agent",
    "init_agent", "load_rule", "meta_loss", "oracle_update", "positive_advantage_mean", "positive_value_loss", "rule_inputs", "rule_update", "save_rule",
    "tabular_optimizer", "train_lifetime", "value_loss",
]
