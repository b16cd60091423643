# `make run` and `make test` do all the set-up on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app wsgi

.PHONY: run serve test lint format worker cron translations clean

$(BIN)/.installed: requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

# Front-end packages from the npm registry, served by the app (no CDN).
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --silent
	touch $@

# Compiled translations (the .po files are the source).
TRANSLATIONS := $(wildcard app/translations/*/LC_MESSAGES/messages.po)
app/translations/.compiled: $(BIN)/.installed $(TRANSLATIONS)
	$(BIN)/pybabel compile -d app/translations
	touch $@

SETUP := $(BIN)/.installed node_modules/.installed app/translations/.compiled

# Harpoon (with its in-process worker), the sandbox platform and the follower
# simulator, on the embedded default. Ctrl-C stops all.
run: $(SETUP)
	$(FLASK) demo

# Harpoon alone, for a real OA / WeCom corp.
serve: $(SETUP)
	$(FLASK) db upgrade
	$(BIN)/gunicorn -c config/gunicorn.py wsgi:app

test: $(SETUP) lint
	$(BIN)/pytest

# Formatting, lint, and DESIGN.md's layers (the import-linter contract in pyproject.toml).
lint: $(BIN)/.installed
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/lint-imports

format: $(BIN)/.installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# With REDIS_URL set: the separate processes of a production deployment.
worker: $(BIN)/.installed
	$(FLASK) worker

cron: $(BIN)/.installed
	$(FLASK) cron

# Translations: extract the strings of code and templates, update the catalogs.
translations: $(BIN)/.installed
	$(BIN)/pybabel extract -F babel.cfg -k _l -k N_ -k lazy_pgettext:1c,2 -o app/translations/messages.pot .
	$(BIN)/pybabel update -i app/translations/messages.pot -d app/translations

clean:
	rm -rf $(VENV) node_modules .pytest_cache .ruff_cache
