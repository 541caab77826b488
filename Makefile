# The two commands a new user needs: `make demo` and `make test`. Both set up everything.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Everything the platform can use (Spark, Kafka, PostgreSQL, PyTorch), plus the test tools for `make test`.
EXTRAS ?= all,test
comma  := ,
STAMP  := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))

# Apache Airflow for the tests of the generated DAGs, in its own virtualenv (it pins its own
# dependencies); every package pinned by the constraints file.
AIRFLOW_VERSION     := 3.3.2
AIRFLOW_VENV        := .venv-airflow
AIRFLOW_CONSTRAINTS := tests/orchestrate/airflow-constraints.txt
AIRFLOW_STAMP       := $(AIRFLOW_VENV)/.installed-$(AIRFLOW_VERSION)

.PHONY: demo test bench lint install airflow system-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[$(EXTRAS)]"
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

$(AIRFLOW_STAMP): $(AIRFLOW_CONSTRAINTS)
	rm -rf $(AIRFLOW_VENV)
	$(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/pip install --quiet --upgrade pip
	$(AIRFLOW_VENV)/bin/pip install --quiet "apache-airflow==$(AIRFLOW_VERSION)" -c $(AIRFLOW_CONSTRAINTS)
	touch $@

airflow: $(AIRFLOW_STAMP)

# Debian packages the tests drive: Chromium for the dashboard's browser test, InfluxDB 1.x for the
# connector tests (the tests start influxd themselves, with their own config; no system service).
system-deps:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/influxd ]; then \
		if [ "$$(id -u)" = "0" ]; then \
			apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium influxdb; \
		else \
			echo "chromium or influxd is missing: run 'sudo apt-get install chromium influxdb' (browser and connector tests)"; \
		fi; \
	fi

demo:
	$(MAKE) install EXTRAS=all
	$(BIN)/sparkhu demo

# The whole suite on the embedded defaults, then the integration tests again on the distributed
# configuration (PostgreSQL at 127.0.0.1:5432, a Tansu Kafka-protocol broker, Spark local[2]).
test: install system-deps airflow
	$(BIN)/ruff check src tests bench
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/pytest
	$(BIN)/pytest -m integration --sparkhu-config=distributed

bench:
	$(MAKE) install EXTRAS=all
	$(MAKE) airflow
	$(BIN)/python -m bench --history $(BENCH)

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports
	$(BIN)/mypy

clean:
	rm -rf $(VENV) $(AIRFLOW_VENV) build *.egg-info .pytest_cache .mypy_cache .import_linter_cache .grimp_cache
