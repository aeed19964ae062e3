# Fresh machine: `make demo` runs the main job, `make test` runs the whole suite.
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed

.PHONY: demo test bench build micropython firmware clean

$(STAMP): pyproject.toml requirements-bench.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(STAMP)
	$(PY) tools/demo.py

test: $(STAMP) micropython
	$(VENV)/bin/pytest -q

bench: $(STAMP) micropython
	$(PY) -m pip install --quiet -r requirements-bench.txt
	$(PY) tools/bench.py

build: $(STAMP)
	$(PY) tools/build_mpy.py --arch xtensawin --out build/xtensawin

# The unix port from source (MICROPY_DIR, default ../shared/micropython): 64- and 32-bit with the
# app frozen and meterkit_c linked, 32-bit stock (build/micropython/{unix64,unix32,unix32-stock}/).
# Skipped while nothing changed.
micropython:
	python3 tools/build_micropython.py --micropython "$(or $(MICROPY_DIR),../shared/micropython)"

# Needs ESP-IDF and a MicroPython checkout (see the README); stdlib only, so no venv: ESP-IDF's
# export.sh brings its own Python.
firmware:
	python3 tools/build_firmware.py --board "$(BOARD)" --micropython "$(MICROPY_DIR)"

clean:
	rm -rf $(VENV) build .pytest_cache
