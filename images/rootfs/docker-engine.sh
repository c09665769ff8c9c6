#!/usr/bin/env bash
# Makes sure a Docker Engine answers, as on the go-docker machines: Debian's
# docker.io 20.10 (containerd, runc) with the fuse-overlayfs storage driver
# and an MTU of 1400, and Debian's docker-compose 1.29. Where none answers,
# it installs those packages and starts dockerd in the background. It never
# fails: where the engine cannot run, it says why and the container tests
# skip, naming the missing engine.
#
#   docker-engine.sh LOGFILE
set -u
log=${1:-/tmp/vp-dockerd.log}
if docker info >/dev/null 2>&1; then
  exit 0
fi
SUDO=$( [ "$(id -u)" = 0 ] || echo sudo )
missing=""
for p in docker.io fuse-overlayfs docker-compose; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "installing Debian packages:$missing"
  if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null; }; then
    echo "docker-engine: could not install$missing; the container tests will skip (no Docker Engine)"
    exit 0
  fi
fi
if [ ! -f /etc/docker/daemon.json ]; then
  $SUDO mkdir -p /etc/docker
  echo '{"data-root": "/var/lib/docker", "storage-driver": "fuse-overlayfs", "mtu": 1400, "log-driver": "json-file"}' | $SUDO tee /etc/docker/daemon.json >/dev/null
fi
if ! pgrep -x dockerd >/dev/null; then
  echo "starting dockerd (log: $log)"
  $SUDO sh -c "nohup dockerd >'$log' 2>&1 &"
fi
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    echo "Docker Engine $(docker version --format '{{.Server.Version}}' 2>/dev/null) answers"
    exit 0
  fi
  sleep 0.5
done
echo "docker-engine: dockerd did not answer within 30 s; the container tests will skip (no Docker Engine). Its log:"
tail -5 "$log" 2>/dev/null
exit 0
