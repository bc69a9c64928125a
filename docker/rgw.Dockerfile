# SPDX-License-Identifier: Apache-2.0
# Object storage for the compose file: Debian 12's Ceph (16.2) as a
# single-node cluster with its S3 gateway, radosgw (docker/rgw-entrypoint.sh).
# Built from the repository root, as docker-compose.yml does:
#
#   docker build -f docker/rgw.Dockerfile -t accord-rgw .
#
# Runs as Debian's `ceph` user; everything it keeps is in the volume at
# /var/lib/accord-rgw.
ARG BASE=debian:bookworm-slim
FROM ${BASE}
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends ceph-mon ceph-osd radosgw ceph-common curl \
        ca-certificates \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/* \
 && install -d -o ceph -g ceph -m 0750 /var/lib/accord-rgw
COPY docker/rgw-entrypoint.sh /usr/local/bin/rgw-entrypoint
USER ceph
ENV RGW_DIR=/var/lib/accord-rgw
VOLUME ["/var/lib/accord-rgw"]
# a first start makes the cluster: up to a few minutes on a busy machine
HEALTHCHECK --interval=5s --timeout=5s --start-period=300s --retries=3 \
    CMD ["/usr/local/bin/rgw-entrypoint", "health"]
ENTRYPOINT ["/usr/local/bin/rgw-entrypoint"]
