"""A learned update rule as a saved artifact: the LPG network's shape and parameters in one file.

``save_rule(path, network, eta, info)`` writes a msgpack file (flax.serialization) holding a format
tag, the network's sizes, the parameters and a JSON string of provenance (meta-training config,
steps); ``load_rule(path)`` returns ``(network, eta, info)`` or raises a one-line error naming
what is wrong with the file.
"""

from __future__ import annotations

import json
import os

import jax
import numpy as np
from flax import serialization

from jaxpg.meta.network import LPGNetwork

FORMAT = "jaxpg-lpg-rule-v1"


def save_rule(path: str, network: LPGNetwork, eta, info: dict | None = None) -> str:
    """Write the rule atomically (a temporary file, then a rename); returns ``path``."""
    payload = {"format": FORMAT,
               "network": {"prediction_dim": network.prediction_dim, "hidden_size": network.hidden_size,
                           "embed_size": network.embed_size},
               "eta": jax.tree.map(np.asarray, eta), "info": json.dumps(info or {}, default=str)}
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as fh:
        fh.write(serialization.msgpack_serialize(payload))
    os.replace(tmp, path)
    return path


def load_rule(path: str) -> tuple[LPGNetwork, dict, dict]:
    """``(network, eta, info)`` of a rule written by :func:`save_rule`."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no learned rule at {path!r} (write one with `jaxpg meta-train`)")
    with open(path, "rb") as fh:
        try:
            payload = serialization.msgpack_restore(fh.read())
        except Exception as error:  # msgpack raises several types on bad bytes
            raise ValueError(f"{path!r} is not a jaxpg learned-rule file ({type(error).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path!r} is not a jaxpg learned-rule file (expected format {FORMAT!r})")
    sizes = {name: int(value) for name, value in payload["network"].items()}
    return LPGNetwork(**sizes), payload["eta"], json.loads(payload["info"])
