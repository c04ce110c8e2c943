# The two commands: `make up` runs the platform, `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
# The console's browser tests (tests/browser) drive Debian's Chromium, never a browser that
# Playwright downloads; a font, or headless Chromium renders pages without glyphs.
CHROMIUM := /usr/bin/chromium
BROWSER_PACKAGES := chromium fonts-dejavu-core
BROWSER_STAMP := $(VENV)/.browser

.PHONY: up test venv lint clean

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[dev,local]'
	touch $(STAMP)

venv: $(STAMP)

up: $(STAMP)
	$(VENV)/bin/schedctl up

$(BROWSER_STAMP): | $(STAMP)
	@if [ ! -x $(CHROMIUM) ] || ! dpkg -s fonts-dejavu-core >/dev/null 2>&1; then \
	  if [ "$$(id -u)" -ne 0 ]; then \
	    echo "make test: the browser tests need $(BROWSER_PACKAGES); as root:" >&2; \
	    echo "  apt-get update && apt-get install -y --no-install-recommends $(BROWSER_PACKAGES)" >&2; \
	    exit 1; \
	  fi; \
	  apt-get update && apt-get install -y --no-install-recommends $(BROWSER_PACKAGES); \
	fi
	touch $@

# Two groups at once, each with its own embedded PostgreSQL and broker: the platform-level
# tests (tests/system, tests/browser) spend most of their time waiting on timers and
# processes, so they overlap well with the rest. Each group's report is printed when both are
# done; the run fails if either does.
# Two groups of about the same length, run side by side: the executor's integration tests
# (each runs a whole platform in-process) go with the system and browser tests.
FAST_TESTS := tests/unit tests/integration --ignore-glob='tests/integration/test_executor*'
PLATFORM_TESTS := tests/system tests/browser tests/integration/test_executor*.py

test: $(STAMP) $(BROWSER_STAMP)
	@mkdir -p .test-logs; \
	$(VENV)/bin/python -m pytest $(FAST_TESTS) > .test-logs/fast.log 2>&1 & fast=$$!; \
	$(VENV)/bin/python -m pytest $(PLATFORM_TESTS) > .test-logs/platform.log 2>&1 & platform=$$!; \
	wait $$fast; fast_status=$$?; wait $$platform; platform_status=$$?; \
	echo "== $(FAST_TESTS)"; cat .test-logs/fast.log; \
	echo "== $(PLATFORM_TESTS)"; cat .test-logs/platform.log; \
	test $$fast_status -eq 0 && test $$platform_status -eq 0

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) .local .pytest_cache .test-logs
