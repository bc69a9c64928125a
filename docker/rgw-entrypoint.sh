#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# rgw-entrypoint - a single-node Ceph with its S3 gateway (radosgw) for the
# compose file: one monitor, one OSD, one radosgw, all on 127.0.0.1 (the
# host's network), no cephx (nothing but loopback reaches them). The S3 user
# and the bucket come from the environment; the data lives in RGW_DIR (a
# volume): the OSD is BlueStore on a sparse file of RGW_STORE_BYTES, so the
# evidence survives a new container.
#
#   S3_ACCESS_KEY, S3_SECRET_KEY  the S3 user's keys (required)
#   S3_BUCKET                     the bucket made at start (accord-evidence)
#   RGW_PORT                      the S3 endpoint's port on 127.0.0.1 (7480)
#   RGW_MON_PORT                  the monitor's port on 127.0.0.1 (3300)
#   RGW_STORE_BYTES               the OSD's size (20 GiB; a sparse file)
#   RGW_DIR                       where everything lives (/var/lib/accord-rgw)
#
# The first start makes the cluster (the same steps as tests/s3/rgw.py);
# later starts only start the daemons. The container ends when any of them
# does (its restart policy starts it again). Healthy (rgw-entrypoint health)
# once the endpoint answers and the bucket exists.
set -euo pipefail

D=${RGW_DIR:-/var/lib/accord-rgw}
HOST=127.0.0.1
RGW_PORT=${RGW_PORT:-7480}
MON_PORT=${RGW_MON_PORT:-3300}
BUCKET=${S3_BUCKET:-accord-evidence}
STORE_BYTES=${RGW_STORE_BYTES:-21474836480}
CONF=$D/ceph.conf
C=(-c "$CONF")

if [ "${1:-}" = health ]; then
    [ -f "$D/run/ready" ] && curl -sf -o /dev/null "http://$HOST:$RGW_PORT/"
    exit
fi
: "${S3_ACCESS_KEY:?set S3_ACCESS_KEY}" "${S3_SECRET_KEY:?set S3_SECRET_KEY}"

say() { echo "rgw-entrypoint: $*" >&2; }

mkdir -p "$D/run" "$D/log" "$D/mon.a" "$D/osd.0" "$D/rgw"
rm -f "$D/run/ready" "$D/run/"*.asok
# the ports may change between starts: the configuration is written each time
fsid=$(cat "$D/fsid" 2>/dev/null || true)
if [ -z "$fsid" ]; then
    fsid=$(cat /proc/sys/kernel/random/uuid)
fi
cat >"$CONF" <<EOF
[global]
fsid = $fsid
mon host = v2:$HOST:$MON_PORT
public addr = $HOST
auth cluster required = none
auth service required = none
auth client required = none
ms bind ipv6 = false
ms bind msgr1 = false
ms mon client mode = crc
ms client mode = crc
ms cluster mode = crc
ms service mode = crc
run dir = $D/run
log file = $D/log/\$name.log
admin socket = $D/run/\$name.asok
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
mon allow pool size one = true
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0
osd objectstore = bluestore
bluestore block path = $D/osd.0.block
bluestore block create = true
bluestore block size = $STORE_BYTES
bluestore cache size = 134217728
osd memory target = 939524096
osd data = $D/osd.\$id
mon data = $D/mon.\$id
osd crush chooseleaf type = 0
rgw data = $D/rgw
rgw frontends = beast endpoint=$HOST:$RGW_PORT
rgw dns name = $HOST
rgw enable usage log = false
debug rgw = 0
EOF

pids=()
stop() {
    # the gateway first, the monitor last (radosgw waits on RADOS to stop)
    local i p
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        p=${pids[i]}
        kill "$p" 2>/dev/null || continue
        for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$p" 2>/dev/null || true
    done
    wait 2>/dev/null || true
}
# whatever ends this script (a failed step included) ends the daemons
trap stop EXIT
trap 'exit 0' TERM INT

if [ ! -f "$D/fsid" ]; then
    say "first start: making the cluster (fsid $fsid)"
    rm -rf "$D/mon.a" "$D/osd.0" "$D/osd.0.block" && mkdir -p "$D/mon.a" "$D/osd.0" # an unfinished first start
    monmaptool --create --addv a "[v2:$HOST:$MON_PORT]" --fsid "$fsid" "$D/monmap" >/dev/null
    ceph-authtool --create-keyring "$D/mon.keyring" --gen-key -n mon. >/dev/null
    ceph-mon "${C[@]}" --mkfs -i a --monmap "$D/monmap" --keyring "$D/mon.keyring" \
        >"$D/log/mkfs.out" 2>&1 || { cat "$D/log/mkfs.out" >&2; exit 1; }
fi
if [ -f "$D/fsid" ]; then
    # a monitor made for another port: its map names the old address
    monmaptool --create --clobber --addv a "[v2:$HOST:$MON_PORT]" --fsid "$fsid" "$D/monmap" >/dev/null
    ceph-mon "${C[@]}" -i a --inject-monmap "$D/monmap" >/dev/null 2>&1
fi
ceph-mon "${C[@]}" -i a -f 2>>"$D/log/mon.a.out" &
pids+=($!)
if [ ! -f "$D/fsid" ]; then
    timeout 60 ceph "${C[@]}" --connect-timeout 30 osd create >/dev/null
    ceph-osd "${C[@]}" -i 0 --mkfs >"$D/log/mkfs.out" 2>&1 || { cat "$D/log/mkfs.out" >&2; exit 1; }
fi
ceph-osd "${C[@]}" -i 0 -f 2>>"$D/log/osd.0.out" &
pids+=($!)
radosgw "${C[@]}" -n client.rgw -f 2>>"$D/log/rgw.out" &
pids+=($!)

for i in $(seq 1 180); do
    curl -sf -o /dev/null "http://$HOST:$RGW_PORT/" && break
    for p in "${pids[@]}"; do
        kill -0 "$p" 2>/dev/null || { say "a daemon exited; logs in $D/log"; tail -n 5 "$D"/log/*.log >&2; exit 1; }
    done
    [ "$i" = 180 ] && { say "radosgw did not answer in 90 s"; exit 1; }
    sleep 0.5
done
if [ ! -f "$D/fsid" ]; then
    radosgw-admin "${C[@]}" -n client.rgw --admin-socket= user create --uid accord --display-name accord \
        --access-key "$S3_ACCESS_KEY" --secret-key "$S3_SECRET_KEY" >/dev/null
    echo "$fsid" >"$D/fsid"
fi
# the bucket: 200 when made, 409 BucketAlreadyOwnedByYou on later starts
code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT --aws-sigv4 aws:amz:us-east-1:s3 \
    --user "$S3_ACCESS_KEY:$S3_SECRET_KEY" -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' \
    "http://$HOST:$RGW_PORT/$BUCKET")
case "$code" in
200 | 409) ;;
*) say "creating bucket $BUCKET: HTTP $code"; exit 1 ;;
esac
touch "$D/run/ready"
say "S3 on http://$HOST:$RGW_PORT, bucket $BUCKET"
# ends when a daemon does
wait -n "${pids[@]}"
say "a daemon exited; logs in $D/log"
exit 1
