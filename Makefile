# `make run` and `make test` do all the set-up on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app wsgi

.PHONY: run serve test lint format worker cron clean

$(BIN)/.installed: requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

# Harpoon (with its in-process worker), the sandbox platform and the follower
# simulator, on the embedded default. Ctrl-C stops all.
run: $(BIN)/.installed
	$(FLASK) demo

# Harpoon alone, for a real OA / WeCom corp.
serve: $(BIN)/.installed
	$(FLASK) db upgrade
	$(BIN)/gunicorn -c config/gunicorn.py wsgi:app

test: $(BIN)/.installed lint
	$(BIN)/pytest

lint: $(BIN)/.installed
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

format: $(BIN)/.installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# With REDIS_URL set: the separate processes of a production deployment.
worker: $(BIN)/.installed
	$(FLASK) worker

cron: $(BIN)/.installed
	$(FLASK) cron

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
