# make run  — set up and start the demo server on the embedded store
# make test — set up and run ruff, mypy, the import-layer contracts and the whole suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint install bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,analytics]'
	touch $(STAMP)

DASH := src/vigil/dashboard
VENDOR := $(DASH)/static/vendor/.installed

# The dashboard's third-party JavaScript (uPlot) from npm, copied where the server serves it.
$(VENDOR): $(DASH)/package.json $(DASH)/package-lock.json
	cd $(DASH) && npm ci --no-audit --no-fund --silent
	mkdir -p $(DASH)/static/vendor
	cp $(DASH)/node_modules/uplot/dist/uPlot.iife.min.js $(DASH)/node_modules/uplot/dist/uPlot.min.css $(DASH)/static/vendor/
	touch $(VENDOR)

# The browser tests drive Debian's Chromium.
/usr/bin/chromium:
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

install: $(STAMP) $(VENDOR) /usr/bin/chromium

run: $(STAMP) $(VENDOR)
	$(BIN)/vigil demo

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

# One BLAS thread: statsmodels fits stall for seconds when OpenBLAS's pool fights the
# test workers for two cores.
test: lint
	OPENBLAS_NUM_THREADS=1 $(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_tsbs.py

clean:
	rm -rf $(VENV) vigil-data .mypy_cache .ruff_cache
