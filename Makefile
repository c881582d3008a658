# The two set-up commands of the README. Each creates the virtual environment it needs.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: train test bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	# MuJoCo Playground for the DMC smoke test, without warp-lang (GPU only, a 149 MB wheel):
	# the same pins as pyproject's `playground` extra.
	$(PY) -m pip install --quiet --no-deps playground==0.2.0 lxml==6.1.3
	touch $(STAMP)

# Main job: PPO on CartPole-v1 (4 seeds, 500k steps each, one compiled program),
# summary table on stdout, curves.png + metrics + checkpoint in runs/ppo-CartPole-v1-NNNN.
train: $(STAMP)
	$(VENV)/bin/jaxpg train ppo --env CartPole-v1 --seeds 4 --threshold 475

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/throughput.py

clean:
	rm -rf $(VENV) runs .pytest_cache
