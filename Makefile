# Each target bootstraps .venv by itself, so `make demo` and `make test` work on a fresh clone.
VENV   := .venv
PYTHON := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip
	$(PYTHON) -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	mkdir -p demo_output
	$(VENV)/bin/migrate convert examples/quickstart.py -o demo_output/quickstart_lightning.py
	$(VENV)/bin/migrate convert examples/quickstart.py --dry-run 2>/dev/null | grep -E '^[-+][^-+]' | cut -c1 | sort | uniq -c | sed 's/-$$/lines removed/; s/+$$/lines added/'
	cd demo_output && ../$(PYTHON) quickstart_lightning.py

test: $(STAMP)
	$(PYTHON) -m pytest -q

bench: $(STAMP)
	$(PYTHON) bench/overhead.py

clean:
	rm -rf $(VENV) lightning_logs .pytest_cache
