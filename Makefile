# SPDX-License-Identifier: Apache-2.0
# `make demo` and `make test` are the two entry points; both install what is missing first.
BUILD ?= build
PYTHON ?= /usr/bin/python3
PYTEST_ARGS ?=

.PHONY: all deps test-deps build test unit integration sanitize demo bench clean

all: build

deps:
	@./scripts/install-deps.sh

# What the window test needs on top (a virtual X server, OCR, a VNC client): tests only.
test-deps:
	@./scripts/install-deps.sh --tests

$(BUILD)/build.ninja:
	meson setup $(BUILD)

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

unit: build
	meson test -C $(BUILD) --print-errorlogs --suite unit

integration: test-deps build
	TART_BIN=$(CURDIR)/$(BUILD)/tart $(PYTHON) -m pytest -q -rs tests/integration $(PYTEST_ARGS)

test: test-deps build
	@rc=0; meson test -C $(BUILD) --print-errorlogs --suite unit || rc=1; \
	TART_BIN=$(CURDIR)/$(BUILD)/tart $(PYTHON) -m pytest -q -rs \
		--junitxml=$(CURDIR)/$(BUILD)/pytest-junit.xml tests/integration $(PYTEST_ARGS) || rc=1; \
	exit $$rc

# Unit tests under AddressSanitizer + UndefinedBehaviorSanitizer.
sanitize: deps
	@[ -f build-asan/build.ninja ] || meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false
	ninja -C build-asan
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		meson test -C build-asan --print-errorlogs --suite unit

demo: build
	./scripts/demo.sh

clean:
	rm -rf $(BUILD) build-asan
