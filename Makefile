# make demo — install, then run the main job on a demo disk
# make test — install, then run the whole test suite (what .ci/run does)
.PHONY: setup demo test test-postgres lint bench

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
	$(PG_SUBSET)

# The gallery tests on PostgreSQL (a throwaway cluster, a fresh database per test; issue 16).
# `make test` runs the subset below once (the PostgreSQL-specific tests already ran in the
# first pass); `make test-postgres` runs the whole tests/gallery directory on PostgreSQL.
PG_TESTS = tests/gallery/test_gallery_versions.py \
	tests/gallery/test_gallery_types.py \
	tests/gallery/test_replication_gallery.py::test_latest_per_region \
	tests/gallery/test_replication_gallery.py::test_status_transitions_and_failed_region \
	tests/gallery/test_replication_gallery.py::test_update_adds_and_removes_regions \
	tests/gallery/test_worker.py::test_one_worker_at_a_time_and_stale_lease
PG_SUBSET = IMAGESTORE_TEST_DATABASE=postgres python3 -m pytest -q -p no:cacheprovider $(PG_TESTS)

test-postgres: setup
	IMAGESTORE_TEST_DATABASE=postgres python3 -m pytest -q -p no:cacheprovider tests/gallery

lint:
	ruff check .

bench: setup
	python3 -m pytest benchmarks --benchmark-only -q
