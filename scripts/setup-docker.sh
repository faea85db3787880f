#!/usr/bin/env bash
# A Docker daemon of this project's own, for the engine tests and `--engine docker` on this
# project's machines (Debian bookworm, root, no systemd, no bridge networking, no Docker Hub).
# It never touches the machine's default socket or a daemon someone else runs.
#
#   scripts/setup-docker.sh          install what is missing, start the daemon, load the base image;
#                                    prints what a client needs, e.g. `export $(scripts/setup-docker.sh)`:
#                                      DOCKER_HOST=unix:///var/lib/sagemaker-composer/docker/docker.sock
#                                      COMPOSER_ENGINE_BUILD_ARGS=--network=host
#   scripts/setup-docker.sh --status exit 0 (and print the same) when that daemon answers, else 1
#   scripts/setup-docker.sh --stop   stop that daemon (by its pid file), if it runs
#
# Idempotent: with everything in place a run takes about a second and changes nothing.
# The engine tests run it through their session fixture and stop the daemon they started.
#
# What it does, each step only when needed:
#   1. apt-get install docker.io (dockerd, containerd, runc), and docker-registry and
#      apache2-utils for the registry tests, without letting the packages start any service.
#   2. Starts `dockerd` as a plain background process, everything under COMPOSER_DOCKER_DIR
#      (default /var/lib/sagemaker-composer/docker): its own socket, pid file, log, data root and
#      exec root, and an empty daemon.json (the machine's /etc/docker/daemon.json is not read).
#      Machine settings, never the product's (generated Dockerfiles stay engine-neutral):
#        --iptables=false --bridge=none (no bridge networking here: containers and builds use
#        the host's network, hence COMPOSER_ENGINE_BUILD_ARGS=--network=host for builds),
#        --default-ulimit nofile/nproc 4096 (raising rlimits is not permitted).
#      Storage driver overlay2 when a probe (a real container run) passes, else vfs;
#      COMPOSER_STORAGE_DRIVER=overlay|vfs forces one. The choice is kept on later runs.
#   3. The base image localhost/composer-base:bookworm (COMPOSER_BASE_IMAGE overrides the name):
#      `podman save | docker load` when Podman has it (scripts/setup-podman.sh makes it), else
#      debootstrap (scripts/setup-common.sh) and `docker import`. Then the host's CA bundle is
#      copied into it: HTTPS goes through a TLS-inspecting proxy here, and `docker build` has no
#      build-time mounts (Podman mounts the bundle from its configuration instead). A label holds
#      the bundle's sha256, so a changed bundle gives a new base image.
set -euo pipefail

DIR="${COMPOSER_DOCKER_DIR:-/var/lib/sagemaker-composer/docker}"
SOCK="$DIR/docker.sock"
HOST="unix://$SOCK"
PIDFILE="$DIR/dockerd.pid"
LOG="$DIR/dockerd.log"
DRIVER_FILE="$DIR/storage-driver"
BASE_IMAGE="${COMPOSER_BASE_IMAGE:-localhost/composer-base:bookworm}"
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
CA_LABEL=org.sagemaker-composer.ca-bundle-sha256
PACKAGES=(docker.io docker-registry apache2-utils)
BUILD_ARGS="--network=host"

say() { echo "setup-docker: $*" >&2; }
d() { docker --host "$HOST" "$@"; }

mode=start
case "${1:-}" in
  "") ;;
  --status | --stop) mode=${1#--} ;;
  *)
    say "got arguments '$*'; allowed: none, --status, --stop"
    exit 2
    ;;
esac
if [ $# -gt 1 ]; then
  say "got arguments '$*'; allowed: one of none, --status, --stop"
  exit 2
fi

if [ "$(id -u)" -ne 0 ]; then
  say "got uid $(id -u); run it as root (it installs packages and starts dockerd)"
  exit 2
fi

report() { printf 'DOCKER_HOST=%s\nCOMPOSER_ENGINE_BUILD_ARGS=%s\n' "$HOST" "$BUILD_ARGS"; }

# The pid of our dockerd when its pid file names a live dockerd, else nothing.
our_pid() {
  local pid
  [ -f "$PIDFILE" ] || return 1
  pid=$(cat "$PIDFILE" 2>/dev/null || true)
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" = dockerd ] || return 1
  echo "$pid"
}

answers() { command -v docker >/dev/null 2>&1 && d version --format '{{.Server.Version}}' >/dev/null 2>&1; }

stop_daemon() {
  local pid i
  pid=$(our_pid) || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 300); do # dockerd stops its containers (10 s each, at once) and containerd
    [ -d "/proc/$pid" ] || break
    sleep 0.1
  done
  if [ -d "/proc/$pid" ]; then
    say "dockerd $pid did not stop in 30 s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$PIDFILE"
  # dockerd leaves its bind mount of the host's network namespace (made for --network host
  # containers) behind; nothing of it may outlive the daemon.
  local target
  while read -r target; do
    umount "$target" 2>/dev/null || umount -l "$target" 2>/dev/null || true
  done < <(awk -v root="$DIR/" 'index($5, root) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
  say "stopped dockerd $pid"
}

case $mode in
  status)
    if our_pid >/dev/null && answers; then
      report
      exit 0
    fi
    exit 1
    ;;
  stop)
    stop_daemon
    exit 0
    ;;
esac

changed=0
started=$(date +%s)

# 1. Packages -----------------------------------------------------------------------------------
# shellcheck source=scripts/setup-common.sh
. "$(dirname "$0")/setup-common.sh"
install_missing setup-docker --no-install-recommends "${PACKAGES[@]}"
[ "$INSTALLED" -eq 0 ] || changed=1
if ! command -v docker >/dev/null 2>&1 || ! command -v dockerd >/dev/null 2>&1; then
  say "no docker or dockerd on PATH after installing docker.io"
  exit 1
fi

# 2. The daemon ---------------------------------------------------------------------------------
start_daemon() { # driver
  mkdir -p "$DIR/data" "$DIR/exec"
  [ -f "$DIR/daemon.json" ] || echo '{}' >"$DIR/daemon.json"
  [ ! -f "$LOG" ] || mv -f "$LOG" "$LOG.1"
  setsid dockerd \
    --config-file "$DIR/daemon.json" \
    --data-root "$DIR/data" \
    --exec-root "$DIR/exec" \
    --pidfile "$PIDFILE" \
    --host "$HOST" \
    --storage-driver "$1" \
    --iptables=false \
    --bridge=none \
    --default-ulimit nofile=4096:4096 \
    --default-ulimit nproc=4096:4096 \
    </dev/null >"$LOG" 2>&1 &
  local pid=$! i
  for i in $(seq 1 600); do
    if answers; then
      say "started dockerd $pid ($1 storage) on $HOST"
      return 0
    fi
    if ! [ -d "/proc/$pid" ]; then break; fi
    sleep 0.1
  done
  say "dockerd did not answer on $HOST; the end of $LOG:"
  tail -n 20 "$LOG" >&2
  kill -TERM "$pid" 2>/dev/null || true
  return 1
}

# Overlay works where the kernel allows overlay mounts and the data root is not itself on
# overlayfs. Rather than guess, run a container from a one-file image.
probe_runs() {
  local dir ok=1
  dir=$(mktemp -d /var/tmp/composer-docker-probe.XXXXXX)
  mkdir -p "$dir/sbin"
  cp /sbin/ldconfig "$dir/sbin/ldconfig" # statically linked on Debian
  if tar -C "$dir" -c . | d import - localhost/composer-probe:1 >/dev/null 2>&1 &&
    d run --rm --network none localhost/composer-probe:1 /sbin/ldconfig --version >/dev/null 2>&1; then
    ok=0
  fi
  d rmi --force localhost/composer-probe:1 >/dev/null 2>&1 || true
  rm -rf "$dir"
  return $ok
}

wanted="${COMPOSER_STORAGE_DRIVER:-}"
case "$wanted" in
  "") [ ! -f "$DRIVER_FILE" ] || wanted=$(cat "$DRIVER_FILE") ;;
  overlay) wanted=overlay2 ;;
  vfs) ;;
  *)
    say "COMPOSER_STORAGE_DRIVER: got '$wanted'; allowed: overlay, vfs (or unset to probe)"
    exit 2
    ;;
esac

if our_pid >/dev/null && answers; then
  running=$(d info --format '{{.Driver}}')
  if [ -n "$wanted" ] && [ "$running" != "$wanted" ]; then
    say "dockerd runs with $running storage; wanted is $wanted: restarting it"
    stop_daemon
    start_daemon "$wanted"
    changed=1
  fi
else
  if our_pid >/dev/null; then # alive but not answering: a stuck daemon of ours
    stop_daemon
  fi
  if [ -n "$wanted" ]; then
    start_daemon "$wanted"
  elif start_daemon overlay2 && probe_runs; then
    wanted=overlay2
  else
    say "overlay2 probe failed: using vfs"
    stop_daemon
    wanted=vfs
    start_daemon vfs
  fi
  changed=1
fi
[ -f "$DRIVER_FILE" ] && [ "$(cat "$DRIVER_FILE")" = "$(d info --format '{{.Driver}}')" ] ||
  d info --format '{{.Driver}}' >"$DRIVER_FILE"

# 3. Base image ---------------------------------------------------------------------------------
ca_sha=none
[ ! -f "$CA_BUNDLE" ] || ca_sha=$(sha256sum "$CA_BUNDLE" | cut -c1-64)
have=$(d image inspect --format "{{index .Config.Labels \"$CA_LABEL\"}}" "$BASE_IMAGE" 2>/dev/null || true)
if [ "$have" != "$ca_sha" ]; then
  if command -v podman >/dev/null 2>&1 && podman image exists "$BASE_IMAGE"; then
    say "loading $BASE_IMAGE from podman"
    podman save "$BASE_IMAGE" 2>/dev/null | d load --quiet >/dev/null
  else
    base_rootfs_tar setup-docker | d import --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
  fi
  context=$(mktemp -d /var/tmp/composer-docker-base.XXXXXX)
  trap 'rm -rf "$context" "$context.log"' EXIT
  copy=""
  if [ -f "$CA_BUNDLE" ]; then
    cp "$CA_BUNDLE" "$context/ca-certificates.crt"
    copy="COPY ca-certificates.crt $CA_BUNDLE"
  fi
  printf 'FROM %s\n%s\nLABEL %s=%s\n' "$BASE_IMAGE" "$copy" "$CA_LABEL" "$ca_sha" >"$context/Dockerfile"
  if ! d build --quiet --network host --tag "$BASE_IMAGE" "$context" >"$context.log" 2>&1; then
    say "adding the CA bundle to $BASE_IMAGE failed:"
    tail -n 20 "$context.log" >&2
    exit 1
  fi
  rm -rf "$context" "$context.log"
  trap - EXIT
  say "made $BASE_IMAGE in the tests' daemon (with this machine's CA bundle)"
  changed=1
fi

elapsed=$(($(date +%s) - started))
if [ "$changed" -eq 0 ]; then
  say "nothing to do: dockerd $(d version --format '{{.Server.Version}}') on $HOST," \
    "base image $BASE_IMAGE present (${elapsed}s)"
else
  say "done in ${elapsed}s"
fi
report
