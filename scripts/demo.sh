#!/usr/bin/env bash
# The main job on a demo disk: build a realistic ext4 image from system files, capture it into
# a gallery as an image version replicated to a second region, create a new VM disk from it,
# and check the disk against the source with qemu-img.
set -euo pipefail
work=${DEMO_DIR:-$(mktemp -d /tmp/imagestore-demo.XXXXXX)}
export IMAGESTORE_HOME="$work/store"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

say "building a 512 MiB ext4 disk from /usr/share/doc in $work, then a dynamic VHDX of it"
truncate -s 512M "$work/demo.raw"
mkfs.ext4 -q -F -d /usr/share/doc "$work/demo.raw"
qemu-img convert -f raw -O vhdx "$work/demo.raw" "$work/demo.vhdx"
ls -lsh "$work/demo.raw" "$work/demo.vhdx"

say "a gallery, an image definition and a second region"
run imagestore sig create -r demoGallery -o none
run imagestore sig image-definition create -r demoGallery -i demoImage \
    -p Contoso -f Demo -s Ext4 --os-type Linux -o none
run imagestore region create second --path "$work/second-region" -o none

say "capturing demo.vhdx as version 1.0.0, replicated to both regions"
run imagestore sig image-version create -r demoGallery -i demoImage -e 1.0.0 \
    --os-vhd-uri "$work/demo.vhdx" --target-regions local second -o none
run imagestore sig image-version show -r demoGallery -i demoImage -e 1.0.0 \
    --expand ReplicationStatus --query "{state: properties.provisioningState, \
replication: properties.replicationStatus, local: properties.localStorage}"

say "creating a new disk (fixed VHD, Azure-ready) from the latest version, in region 'second'"
run imagestore disk create -n demo-os --gallery-image-reference demoGallery/demoImage \
    --format vhd-fixed -l second --path "$work/demo-os.vhd" -o table

say "checking the new disk against the source with qemu-img compare"
run qemu-img compare -f raw "$work/demo.raw" -F vpc "$work/demo-os.vhd"

say "store statistics and verification"
run imagestore store stats -o table
run imagestore store verify -o table
echo
echo "demo files are in $work (remove with: rm -rf $work)"
