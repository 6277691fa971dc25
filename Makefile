# make demo — install, then run the main job on a demo disk
# make test — install, then run the whole test suite (what .ci/run does)
.PHONY: setup demo test lint bench

setup:
	bash scripts/setup.sh

demo: setup
	bash scripts/demo.sh

# The whole suite runs twice: on the native backend, then on the pure-Python twin
# (IMAGESTORE_PUREPYTHON=1, inherited by every subprocess the tests start). Both must pass.
# Tests marked one_pass (REST server, VM boots, Azurite, PostgreSQL, az) exercise no native
# byte loop of their own, so the second pass leaves them out to keep CI short.
test: setup
	python3 -m pytest -q -p no:cacheprovider tests
	IMAGESTORE_PUREPYTHON=1 python3 -m pytest -q -p no:cacheprovider -m "not one_pass" tests

lint:
	ruff check .

bench: setup
	python3 -m pytest benchmarks --benchmark-only -q
