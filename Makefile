# Circle: `make run` starts the product; `make test` runs every test.
SWIFT ?= swift
CONFIG ?= debug
BIN := .build/$(CONFIG)

.PHONY: run build test test-swift test-python compose-test clean help

help:
	@echo "make run    build and start circle serve on the embedded default (http://localhost:8080)"
	@echo "make test   start a throwaway PostgreSQL and Redis, run every test, stop them"
	@echo "make build  build every executable (CONFIG=release for an optimised build)"
	@echo "make compose-test  start compose.yaml under podman (images from Debian packages) and drive it"

build:
	@scripts/ensure-deps.sh run
	$(SWIFT) build -c $(CONFIG)

run:
	@scripts/ensure-deps.sh run
	$(SWIFT) build -c $(CONFIG) --product circle
	$(BIN)/circle serve

test:
	@scripts/ensure-deps.sh test
	$(SWIFT) build --build-tests
	scripts/with-test-servers.sh $(MAKE) --no-print-directory test-swift test-python

# At most four tests at once: on two cores, more starve the timing-bound tests (the whole
# suite is no faster with more).
# Every answer the Swift tests get is recorded for Tests/Deploy/test_openapi.py, which holds each
# one to docs/openapi.yaml.
API_RECORD := $(CURDIR)/.build/api-responses.jsonl

test-swift:
	rm -f $(API_RECORD)
	CIRCLE_API_RECORD=$(API_RECORD) SWT_EXPERIMENTAL_MAXIMUM_PARALLELIZATION_WIDTH=4 $(SWIFT) test --skip-build

test-python:
	CIRCLE_API_RECORD=$(API_RECORD) CIRCLE_BUILD_DIR=$(CURDIR)/.build/debug python3 -m pytest -q --durations=25 Tests/Deploy Tests/Web

# compose.yaml started for real: about 5 minutes, so not part of `make test` (CI runs both).
compose-test:
	@scripts/ensure-deps.sh compose
	$(SWIFT) build --build-tests
	scripts/compose-test.sh

clean:
	rm -rf .build
