# Fresh machine: `make demo` runs the main job, `make test` runs the whole suite.
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed

.PHONY: demo test bench build firmware clean

$(STAMP): pyproject.toml requirements-bench.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(STAMP)
	$(PY) tools/demo.py

test: $(STAMP)
	$(VENV)/bin/pytest -q

bench: $(STAMP)
	$(PY) -m pip install --quiet -r requirements-bench.txt
	$(PY) tools/bench.py

build: $(STAMP)
	$(PY) tools/build_mpy.py --arch xtensawin --out build/xtensawin

# Needs ESP-IDF and a MicroPython checkout (see the README); stdlib only, so no venv: ESP-IDF's
# export.sh brings its own Python.
firmware:
	python3 tools/build_firmware.py --board "$(BOARD)" --micropython "$(MICROPY_DIR)"

clean:
	rm -rf $(VENV) build .pytest_cache
