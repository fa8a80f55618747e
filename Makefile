# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test install services-up services-down lint bench clean run-example

demo: install
	$(BIN)/asyncfeeds demo

test: install
	bash scripts/test.sh

# The FastAPI example with Redis and two fanout workers, natively (Ctrl-C stops it).
run-example: install
	bash scripts/run-example.sh

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=25.1"
	$(BIN)/python -m pip install --quiet -e . --group dev
	touch $@

services-up:
	bash services/redis.sh start
	bash services/cassandra.sh start
	bash services/cassandra.sh start-cluster 2
	bash services/cassandra.sh start-secure

services-down:
	bash services/cassandra.sh stop-secure
	bash services/cassandra.sh stop-cluster
	bash services/cassandra.sh stop
	bash services/redis.sh stop

lint: install
	$(BIN)/ruff check asyncfeeds tests examples bench
	$(BIN)/mypy --strict asyncfeeds

bench: install
	bash bench/run.sh

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .coverage .services
