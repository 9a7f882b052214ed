#!/usr/bin/env bash
# demo_fs.sh — shows the TinyKV filesystem with ordinary tools on the mount `make run` made.
#
# Every step prints the command, then runs it. Files are keys: what you see
# here is readable by any client of the cluster. Environment: MNT (default
# ./mnt), PD_HTTP_PORT (2378, for the timestamp of the time-travel step).
set -euo pipefail
cd "$(dirname "$0")/.."
MNT=${MNT:-mnt}
HTTP=127.0.0.1:${PD_HTTP_PORT:-2378}
D=$MNT/demo

grep -qs " $(realpath -m "$MNT") fuse.tinykv" /proc/mounts ||
    { echo "$MNT is not a tinykv mount: run 'make run' first" >&2; exit 1; }

step() {
    echo
    echo "\$ $*"
    bash -c "$*"
}

xattr() { # FILE NAME: print one extended attribute (getfattr may not be installed)
    python3 -c 'import os,sys; print(os.getxattr(sys.argv[1], sys.argv[2]).decode())' "$1" "$2"
}

rm -rf "$D"
step "mkdir -p $D/notes && echo 'hello, tinykv' > $D/greeting && cat $D/greeting"
step "echo 'second line' >> $D/greeting && cat $D/greeting"
step "seq 1 5 > $D/notes/numbers && ls -l $D $D/notes"
step "mv $D/greeting $D/notes/greeting && ls $D/notes"
step "printf XY | dd of=$D/notes/numbers bs=1 seek=2 conv=notrunc status=none && cat $D/notes/numbers"
step "rmdir $D/notes || echo '(not empty, as expected)'"
step "echo '100% of this name is kept' > '$D/100% sure' && ls $D"

echo
echo "# Metadata is kept beside the content: modes, owners, times, symlinks, link counts."
step "chmod 600 $D/notes/numbers && touch -d '2020-01-02 03:04:05' $D/notes/numbers && ln -s notes/numbers $D/link && ls -l $D $D/notes"
step "printf '#!/bin/sh\\necho ran from the cluster\\n' > $D/hello.sh && chmod +x $D/hello.sh && $D/hello.sh"
step "df -h $MNT"

echo
echo "# A file past 1 MiB is stored in 1 MiB chunks; its own key then holds the empty value."
step "head -c 5000000 /dev/urandom > /tmp/demo-big && cp /tmp/demo-big $D/big && cmp /tmp/demo-big $D/big && ls -l $D/big && rm /tmp/demo-big"

echo
echo "# Where a file lives: its key, region, leader store and commit timestamp."
for a in key region_id leader_store commit_ts; do
    printf '  user.tinykv.%-13s %s\n' "$a" "$(xattr "$D/notes/greeting" user.tinykv.$a)"
done

echo
echo "# Time travel: overwrite a file, then read it as of a timestamp taken before."
ts=$(xattr "$D/notes/greeting" user.tinykv.read_ts)
echo "version two" > "$D/notes/greeting"
step "cat $D/notes/greeting"
step "cat $MNT/.snapshots/$ts/demo/notes/greeting"
echo "(the scheduler hands out the same kind of timestamp: curl -s http://$HTTP/pd/api/v1/tso)"

step "rm -r $D && ls $MNT"
