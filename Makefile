# Two commands: `make demo` and `make test`. Everything else is a step they share.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
TORCH   := torch==2.13.0

.PHONY: setup test demo bench clean browser-deps

setup: $(STAMP)

# The stamp depends on pyproject.toml, so a second `make setup` does nothing
# unless the dependencies changed.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first: the CPU build on this disk; an unpinned torch would pull CUDA.
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[train,onnx,ocr,dev]"
	touch $(STAMP)

# Debian's Chromium for the browser test and the HTML renderer of the data generator
# (root only; otherwise skipped quietly, and the generator draws every screen with Pillow).
browser-deps:
	@if { [ ! -x /usr/bin/chromium ] || ! fc-list 2>/dev/null | grep -qi "Noto Sans CJK"; } && [ "$$(id -u)" = "0" ]; then \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-color-emoji fonts-noto-cjk fonts-dejavu-core fonts-liberation >/dev/null; } \
			|| echo "browser-deps: could not install Chromium; the browser tests skip and the generator uses Pillow alone"; \
	fi

test: setup browser-deps
	$(BIN)/python -m pytest tests

demo: setup browser-deps
	$(BIN)/keypilot demo

bench: setup
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
