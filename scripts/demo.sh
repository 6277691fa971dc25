#!/usr/bin/env bash
# The main job on a demo disk: build a realistic ext4 image from system files, capture it into
# a gallery as an image version, create a new VM disk from it, and show what happened.
set -euo pipefail
work=${DEMO_DIR:-$(mktemp -d /tmp/imagestore-demo.XXXXXX)}
export IMAGESTORE_HOME="$work/store"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "building a 512 MiB ext4 disk from /usr/share/doc in $work"
truncate -s 512M "$work/demo.raw"
mkfs.ext4 -q -F -d /usr/share/doc "$work/demo.raw"
qemu-img convert -f raw -O vhdx "$work/demo.raw" "$work/demo.vhdx"
ls -lsh "$work/demo.raw" "$work/demo.vhdx"

say "capturing demo.vhdx into the store"
imagestore store ingest "$work/demo.vhdx" -o table
digest=$(imagestore store ingest "$work/demo.vhdx" --query digest -o tsv)

say "creating a new disk (fixed VHD, Azure-ready) from the captured content"
imagestore store materialize "$digest" --path "$work/disk.vhd" --format vhd-fixed -o table

say "checking the new disk against the source with qemu-img compare"
qemu-img compare -f raw "$work/demo.raw" -F vpc "$work/disk.vhd"

say "store statistics"
imagestore store stats -o table
imagestore store verify -o table
echo
echo "demo files are in $work (remove with: rm -rf $work)"
