# make demo — install, then run the main job on a demo disk
# make test — install, then run the whole test suite (what .ci/run does)
.PHONY: setup demo test lint bench

setup:
	bash scripts/setup.sh

demo: setup
	bash scripts/demo.sh

test: setup
	python3 -m pytest -q -p no:cacheprovider tests

lint:
	ruff check .

bench: setup
	python3 -m pytest benchmarks --benchmark-only -q
