# SPDX-License-Identifier: Apache-2.0
# `make demo` and `make test` are the two entry points; both install what is missing first.
BUILD ?= build
PYTHON ?= /usr/bin/python3
PYTEST_ARGS ?=

.PHONY: all deps build test unit integration demo bench clean

all: build

deps:
	@./scripts/install-deps.sh

$(BUILD)/build.ninja:
	meson setup $(BUILD)

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

unit: build
	meson test -C $(BUILD) --print-errorlogs --suite unit

integration: build
	TART_BIN=$(CURDIR)/$(BUILD)/tart $(PYTHON) -m pytest -q -rs tests/integration $(PYTEST_ARGS)

test: build
	@rc=0; meson test -C $(BUILD) --print-errorlogs --suite unit || rc=1; \
	TART_BIN=$(CURDIR)/$(BUILD)/tart $(PYTHON) -m pytest -q -rs \
		--junitxml=$(CURDIR)/$(BUILD)/pytest-junit.xml tests/integration $(PYTEST_ARGS) || rc=1; \
	exit $$rc

demo: build
	./scripts/demo.sh

clean:
	rm -rf $(BUILD)
