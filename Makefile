# make demo — install, then run the main job on a demo disk
# make test — install, then run the whole test suite (what .ci/run does)
.PHONY: setup demo test lint bench

setup:
	bash scripts/setup.sh

demo: setup
	bash scripts/demo.sh

# The whole suite runs on the active backend (native when it built); the data-path tests run
# a second time on the pure-Python twin, which must give identical results.
test: setup
	python3 -m pytest -q -p no:cacheprovider tests
	IMAGESTORE_PUREPYTHON=1 python3 -m pytest -q -p no:cacheprovider \
	    tests/test_store.py tests/test_format_matrix.py tests/test_giant.py tests/test_reflink_store.py

lint:
	ruff check .

bench: setup
	python3 -m pytest benchmarks --benchmark-only -q
