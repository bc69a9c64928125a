#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# docker/test.sh - `make docker-test`: builds the image and runs the compose
# file for real, then checks what the README promises.
#
# No registry is reachable here, so the Debian 12 base image is made with
# debootstrap from the Debian mirror and `docker import` (cached in
# $ACCORD_DOCKER_CACHE, with the daemon's image store, so only the first run
# pays for it), and PostgreSQL runs from docker/postgres.Dockerfile, a
# stand-in with the official image's interface. The object store (Ceph's
# radosgw, docker/rgw.Dockerfile) is built from Debian's packages.
#
# The script starts its own dockerd on a socket of its own with
# --bridge=none --iptables=false (no bridge network, no NAT: every container
# uses the host's network, and so only loopback), and stops it, by its pid,
# however it ends. Ports are picked free at the start; every wait is bounded.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${ACCORD_DOCKER_CACHE:-/var/cache/accord-docker}
DOCKER=/usr/bin/docker          # Debian's client, whatever else is on PATH
BASE_IMAGE=accord-base:bookworm
PG_IMAGE=accord-test-postgres:15
IMAGE=accord:test
START=$(date +%s)

say() { printf '[docker-test %3ds] %s\n' $(($(date +%s) - START)) "$*"; }
die() { say "FAIL: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (dockerd, debootstrap)"
for c in dockerd docker-compose debootstrap curl python3; do
    command -v $c >/dev/null || die "$c is missing (make docker-test installs docker.io, docker-compose, debootstrap)"
done
mkdir -p "$CACHE"
exec 9>"$CACHE/lock"
flock -w 1200 9 || die "another docker-test holds $CACHE/lock"

RUN=$(mktemp -d /tmp/accord-docker-XXXXXX)
export DOCKER_HOST=unix://$RUN/docker.sock
PROJECT=accordtest$$
COMPOSE=(docker-compose -f "$ROOT/docker/docker-compose.yml" -p "$PROJECT")
DPID=

cleanup() {
    local rc=$?
    set +e
    if [ -n "$DPID" ]; then
        if [ $rc -ne 0 ]; then
            say "logs of the failed run:"
            timeout 60 "${COMPOSE[@]}" logs --no-color --tail=40 2>&1 | sed 's/^/    /'
        fi
        timeout 120 "${COMPOSE[@]}" down -v --remove-orphans >/dev/null 2>&1
        kill "$DPID" 2>/dev/null
        for _ in $(seq 1 100); do kill -0 "$DPID" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$DPID" 2>/dev/null
        say "dockerd (pid $DPID) stopped"
    fi
    # dockerd leaves its network namespace file mounted under the exec root
    grep -o " $RUN/[^ ]*" /proc/mounts | sort -r | while read -r m; do umount -l "$m"; done
    rm -rf "$RUN"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the daemon: no bridge, no iptables ----------------------------------
dockerd --bridge=none --iptables=false --ip-masq=false --ip6tables=false \
    --host "$DOCKER_HOST" --pidfile "$RUN/docker.pid" --data-root "$CACHE/data-root" \
    --exec-root "$RUN/exec" >"$RUN/dockerd.log" 2>&1 &
DPID=$!
for i in $(seq 1 120); do
    $DOCKER version >/dev/null 2>&1 && break
    kill -0 "$DPID" 2>/dev/null || { cat "$RUN/dockerd.log"; die "dockerd exited"; }
    [ "$i" = 120 ] && { tail -20 "$RUN/dockerd.log"; die "dockerd did not start in 60 s"; }
    sleep 0.5
done
say "dockerd $($DOCKER version -f '{{.Server.Version}}') up (pid $DPID), bridge none"

# --- the base image: debootstrap once, then the cache ----------------------
if ! $DOCKER image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    if [ ! -s "$CACHE/bookworm-minbase.tar" ]; then
        say "debootstrap bookworm (minbase) from the Debian mirror: a few minutes, once"
        rm -rf "$CACHE/rootfs.tmp"
        timeout 1200 debootstrap --variant=minbase bookworm "$CACHE/rootfs.tmp" \
            http://deb.debian.org/debian >"$RUN/debootstrap.log" 2>&1 ||
            { tail -20 "$RUN/debootstrap.log"; die "debootstrap failed"; }
        tar -C "$CACHE/rootfs.tmp" -cf "$CACHE/bookworm-minbase.tar.tmp" .
        mv "$CACHE/bookworm-minbase.tar.tmp" "$CACHE/bookworm-minbase.tar"
        rm -rf "$CACHE/rootfs.tmp"
    fi
    $DOCKER import "$CACHE/bookworm-minbase.tar" "$BASE_IMAGE" >/dev/null
    say "imported $BASE_IMAGE"
fi

# --- images ------------------------------------------------------------------
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export ACCORD_BASE_IMAGE=$BASE_IMAGE ACCORD_POSTGRES_IMAGE=$PG_IMAGE ACCORD_IMAGE=$IMAGE
export ACCORD_PORT=$(free_port) ACCORD_DB_PORT=$(free_port)
export ACCORD_RGW_PORT=$(free_port) ACCORD_RGW_MON_PORT=$(free_port)
export ACCORD_DB_PASSWORD=test-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')
export ACCORD_S3_ACCESS_KEY=test$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')
export ACCORD_S3_SECRET_KEY=test-$(od -An -N16 -tx8 /dev/urandom | tr -d ' ')
export ACCORD_RGW_STORE_BYTES=$((2 << 30)) ACCORD_RGW_IMAGE=accord-rgw:test
timeout 1200 $DOCKER build -q --network host -f "$ROOT/docker/postgres.Dockerfile" \
    --build-arg BASE=$BASE_IMAGE -t $PG_IMAGE "$ROOT" >/dev/null || die "building $PG_IMAGE"
say "built $PG_IMAGE"
timeout 1800 "${COMPOSE[@]}" build -q rgw accord >"$RUN/build.log" 2>&1 ||
    { tail -30 "$RUN/build.log"; die "docker-compose build"; }
size() { $DOCKER image inspect -f '{{.Size}}' "$1" | awk '{printf "%.0f MB", $1/1e6}'; }
say "built $IMAGE ($(size $IMAGE)) and $ACCORD_RGW_IMAGE ($(size $ACCORD_RGW_IMAGE))"

# --- the image itself --------------------------------------------------------
user=$($DOCKER image inspect -f '{{.Config.User}}' $IMAGE)
[ "$user" = accord ] || die "the image runs as '$user', not the accord user"
$DOCKER image inspect -f '{{json .Config.Healthcheck.Test}}' $IMAGE | grep -q readyz ||
    die "no HEALTHCHECK on /readyz"
tools=$($DOCKER run --rm --network host --entrypoint sh $IMAGE -c \
    'for t in gcc cc make pkg-config; do command -v $t; done; dpkg-query -W -f "\${Package}\n" | grep -e "-dev$" || true')
[ -z "$tools" ] || die "build tools or -dev packages in the runtime image: $tools"
say "image: user accord, HEALTHCHECK on /readyz, no compiler or -dev package"

# --- the compose file ----------------------------------------------------------
timeout 600 "${COMPOSE[@]}" up -d >"$RUN/up.log" 2>&1 || { cat "$RUN/up.log"; die "docker-compose up"; }
cid=$("${COMPOSE[@]}" ps -q accord)
health() { $DOCKER inspect -f '{{.State.Health.Status}}' "$cid"; }
wait_health() {
    local want=$1 bound=$2 t0=$SECONDS
    until [ "$(health)" = "$want" ]; do
        [ $((SECONDS - t0)) -lt "$bound" ] || die "accord not $want after ${bound}s (it is $(health))"
        sleep 1
    done
}
wait_health healthy 180
say "accord healthy on 127.0.0.1:$ACCORD_PORT (PostgreSQL on 127.0.0.1:$ACCORD_DB_PORT, S3 on 127.0.0.1:$ACCORD_RGW_PORT)"
rid=$("${COMPOSE[@]}" ps -q rgw)
[ "$($DOCKER inspect -f '{{.State.Health.Status}}' "$rid")" = healthy ] || die "rgw is not healthy"
[ "$("${COMPOSE[@]}" exec -T rgw id -u)" != 0 ] || die "rgw runs as root in the container"
B=http://127.0.0.1:$ACCORD_PORT
[ "$(curl -s -o /dev/null -w '%{http_code}' $B/readyz)" = 200 ] || die "/readyz from the host"
uid=$("${COMPOSE[@]}" exec -T accord id -u)
[ "$uid" != 0 ] || die "accord runs as root in the container"

# the README's first steps: an admin from the container's shell, then the API
"${COMPOSE[@]}" exec -T accord accord user add --email it@example.org --name IT --roles admin,earner >/dev/null
TOKEN=$("${COMPOSE[@]}" exec -T accord accord token create --email it@example.org | tail -1 | tr -d '\r')
code=$(curl -s -o "$RUN/me.json" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" $B/v1/me)
[ "$code" = 200 ] || die "GET /v1/me with a token made in the container: $code"
head -c 100000 /dev/urandom >"$RUN/clip.mp4"
org=$(curl -sf -H "Authorization: Bearer $TOKEN" -d '{"name":"Docker School"}' $B/v1/organisations |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
art=$(curl -sf -H "Authorization: Bearer $TOKEN" -H 'Content-Type: video/mp4' -H 'X-Artifact-Kind: video' \
      --data-binary @"$RUN/clip.mp4" $B/v1/artifacts | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])') ||
      die "uploading an artifact (written by the non-root user to the volume)"
: "$org"
# the bytes come from the object store: a redirect to a presigned URL of radosgw
fetch() { curl -sfL -H "Authorization: Bearer $TOKEN" -o "$RUN/back.mp4" $B/v1/artifacts/$art/content; }
fetch && cmp -s "$RUN/clip.mp4" "$RUN/back.mp4" || die "the artifact read back differs"
where=$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' -H "Authorization: Bearer $TOKEN" \
    $B/v1/artifacts/$art/content)
case "$where" in
"302 http://127.0.0.1:$ACCORD_RGW_PORT/accord-evidence/"*) ;;
*) die "the artifact is not served from the object store: $where" ;;
esac
# and the object is in the bucket (listed with curl's own signature, not accord's)
sha=$(sha256sum "$RUN/clip.mp4" | cut -d' ' -f1)
curl -sf --aws-sigv4 aws:amz:us-east-1:s3 --user "$ACCORD_S3_ACCESS_KEY:$ACCORD_S3_SECRET_KEY" \
    -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' \
    "http://127.0.0.1:$ACCORD_RGW_PORT/accord-evidence?list-type=2" | grep -q "$sha" ||
    die "the bucket does not list the artifact's object ($sha)"
say "admin made with the CLI in the container; token, upload and download through the API;" \
    "the bytes are in radosgw's bucket"

# the volume outlives the container
timeout 120 "${COMPOSE[@]}" up -d --force-recreate --no-deps accord >/dev/null 2>&1 || die "recreate accord"
cid=$("${COMPOSE[@]}" ps -q accord)
wait_health healthy 120
fetch && cmp -s "$RUN/clip.mp4" "$RUN/back.mp4" || die "the artifact after a new container"
say "a new accord container serves the same artifact (volume) and token (database)"

# the object store's volume outlives its container too
timeout 120 "${COMPOSE[@]}" up -d --force-recreate --no-deps rgw >/dev/null 2>&1 || die "recreate rgw"
rid=$("${COMPOSE[@]}" ps -q rgw)
t0=$SECONDS
until [ "$($DOCKER inspect -f '{{.State.Health.Status}}' "$rid")" = healthy ]; do
    [ $((SECONDS - t0)) -lt 180 ] || die "rgw not healthy 180 s after a new container"
    sleep 1
done
fetch && cmp -s "$RUN/clip.mp4" "$RUN/back.mp4" || die "the artifact after a new rgw container"
say "a new rgw container serves the same object (volume)"

# the health check follows /readyz: database stopped -> unhealthy -> back
timeout 120 "${COMPOSE[@]}" stop db >/dev/null 2>&1
[ "$(curl -s -o /dev/null -w '%{http_code}' $B/readyz)" = 503 ] || die "/readyz with the database stopped"
wait_health unhealthy 120
timeout 120 "${COMPOSE[@]}" start db >/dev/null 2>&1
wait_health healthy 180
fetch || die "reading after the database came back"
say "database stopped: /readyz 503, container unhealthy; started again: healthy"

say "PASS (docker-compose $(docker-compose version --short), $(($(date +%s) - START)) s)"
