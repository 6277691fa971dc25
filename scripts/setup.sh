#!/usr/bin/env bash
# Install everything imagestore and its tests need on a fresh Debian-like machine:
# system tools (qemu-img/qemu-io as the independent oracle, e2fsprogs for realistic images,
# libvhdi-utils, xfsprogs) and the Python package with its test extras.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v qemu-img >/dev/null || need_apt+=(qemu-utils)
command -v mkfs.ext4 >/dev/null || need_apt+=(e2fsprogs)
command -v debugfs >/dev/null || need_apt+=(e2fsprogs)
command -v vhdiinfo >/dev/null || need_apt+=(libvhdi-utils)
command -v mkfs.xfs >/dev/null || need_apt+=(xfsprogs)
command -v setpriv >/dev/null || need_apt+=(util-linux)
command -v strace >/dev/null || need_apt+=(strace)
command -v curl >/dev/null || need_apt+=(curl)  # disk export range downloads (tests/api)
# compute layer (issue 14): booting VMs (qemu-system, OVMF, swtpm) and building the boot
# fixture offline (fixtures/vm/build-boot-disks.sh: sfdisk, mkfs.fat, mtools, syslinux, cpio)
command -v qemu-system-x86_64 >/dev/null || need_apt+=(qemu-system-x86)
[ -f /usr/share/OVMF/OVMF_CODE_4M.secboot.fd ] || need_apt+=(ovmf)
command -v swtpm >/dev/null || need_apt+=(swtpm swtpm-tools)
command -v sfdisk >/dev/null || need_apt+=(fdisk)
command -v mkfs.fat >/dev/null || need_apt+=(dosfstools)
command -v mcopy >/dev/null || need_apt+=(mtools)
command -v syslinux >/dev/null || need_apt+=(syslinux syslinux-common)
command -v cpio >/dev/null || need_apt+=(cpio)
# perf (issue 17): the peers `imagestore bench --peers` compares with (it installs nothing itself)
command -v borg >/dev/null || need_apt+=(borgbackup)
command -v restic >/dev/null || need_apt+=(restic)
command -v npm >/dev/null || need_apt+=(nodejs npm)   # Azurite (below)
# PostgreSQL server binaries (/usr/lib/postgresql/*/bin): the tests start a throwaway cluster
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need_apt+=(postgresql)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "setup: please install: ${need_apt[*]} (sudo apt-get install ...)" >&2
    exit 1
  fi
fi
python3 -m pip install -q --disable-pip-version-check -e '.[test]'
# the previous (msrest) generation of the Azure SDK models, beside the installed one, for the
# JSON shape test (tests/gallery/test_shape_sdk.py); build/ is not tracked
legacy_sdk=build/sdk/azure-mgmt-compute-37
if [ ! -f "$legacy_sdk/azure/mgmt/compute/models/__init__.py" ]; then
  python3 -m pip install -q --disable-pip-version-check --no-deps --target "$legacy_sdk" \
    'azure-mgmt-compute==37.2.0'
fi
# Azurite, Microsoft's Azure Storage emulator, for the blob-region and page-blob tests
# (tests/azurite.py finds it in build/azurite); installed once, then cached
if [ ! -x build/azurite/bin/azurite-blob ]; then
  npm install -g --silent --no-fund --no-audit --prefix build/azurite azurite >/dev/null
fi
# the real az CLI (issue 12: tests/api/test_az.py drives `imagestore serve` with it), in a venv of
# its own: azure-cli pins its own azure-mgmt-compute, which must not replace the one the project
# is tested with. Cached: skipped when this version is installed (about 3.5 min the first time).
az_version=2.91.0
az_venv=build/az-venv
if [ ! -f "$az_venv/.installed-$az_version" ]; then
  rm -rf "$az_venv"
  python3 -m venv "$az_venv"
  "$az_venv/bin/pip" install -q --disable-pip-version-check "azure-cli==$az_version"
  touch "$az_venv/.installed-$az_version"
fi
