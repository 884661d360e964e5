# The README's two commands are `make demo` and `make test`; both build the environment first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: demo test test-fast lint bench java clean

java:
	@command -v java >/dev/null 2>&1 || [ -x "$$JAVA_HOME/bin/java" ] || { echo "partner-hunt needs Java 17+: install OpenJDK 17 (apt-get install openjdk-17-jre-headless, brew install openjdk@17, or https://adoptium.net) and put it on PATH"; exit 1; }
	@v=$$( (java -version 2>&1 || "$$JAVA_HOME/bin/java" -version 2>&1) | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1); \
	  [ -n "$$v" ] && [ "$$v" -ge 17 ] || { echo "partner-hunt needs Java 17+ (found '$$v'): install OpenJDK 17 (apt-get install openjdk-17-jre-headless or https://adoptium.net)"; exit 1; }

$(STAMP): pyproject.toml
	@[ -x "$(BIN)/python" ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[local,test]"
	@rm -f $(VENV)/.installed-*; touch $(STAMP)

demo: java $(STAMP)
	$(BIN)/partner-hunt demo

test: java $(STAMP) lint
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check lib
	$(BIN)/mypy

test-fast: java $(STAMP)
	$(BIN)/python -m pytest -m "not integration and not cluster"

bench: java $(STAMP)
	$(BIN)/python -m pip install -q -e ".[local,test,bench]"
	$(BIN)/python benchmarks/bench.py

clean:
	rm -rf lake spark-warehouse metastore_db derby.log .pytest_cache
