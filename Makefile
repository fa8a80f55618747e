# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test install services-up services-down lint bench load clean run-example

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

# The load test of bench/load (README there): locust against a FastAPI app with arq
# workers on a private redis-server. Options as variables, e.g.
#   make load LOAD_USERS=200 LOAD_DURATION=60 LOAD_FAULTS=1
#   make load LOAD_MIX=feed=70,aggregated=10,post=10,like=5,notifications=5
# (also LOAD_GRAPH, LOAD_WAIT, LOAD_POPULAR_SHARE, LOAD_WORKERS, LOAD_DOWN, LOAD_JSON).
load: install $(VENV)/.load-installed
	$(BIN)/python bench/load/run.py $(LOAD_ARGS)

$(VENV)/.load-installed: pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[load]"
	touch $@

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .coverage .services
