#!/usr/bin/env bash
# Make Podman work on this project's machines (Debian bookworm, root, no Docker engine, no Docker
# Hub) and make the base image that builds use there. Idempotent: a second run changes nothing and
# takes a second or two. CI runs it; the engine tests run it through a session fixture.
#
# What it does, each step only when needed:
#   1. apt-get install podman buildah runc debootstrap, and docker-registry and apache2-utils
#      (htpasswd) for the registry tests, with one apt-get update.
#   2. Engine configuration for this machine (never for the product: generated Dockerfiles stay
#      engine-neutral), in /etc/containers/containers.conf.d/50-sagemaker-composer.conf:
#        runtime runc (crun fails on this kernel's hybrid cgroups), cgroup_manager cgroupfs
#        (no systemd), default_ulimits nofile/nproc 4096 (raising rlimits is not permitted),
#        netns host (no bridge networking here), and a read-only mount of the host's CA bundle
#        (HTTPS goes through a TLS-inspecting proxy, so pip inside a build must trust its CA).
#      Podman 4.3 applies all of these to `podman build` RUN steps as well as to `podman run`,
#      so builds need no extra flags.
#      Storage, /etc/containers/storage.conf: driver overlay when a probe (a real container run on
#      a throw-away overlay store) passes, else vfs; COMPOSER_STORAGE_DRIVER=overlay|vfs forces
#      one. overlay builds about 4x faster and rebuilds after a code change in a second instead
#      of most of a minute, because vfs copies the whole file system at every step. The choice
#      is kept on later runs; switching drivers needs an empty store (podman system reset).
#   3. The base image localhost/composer-base:bookworm (override with COMPOSER_BASE_IMAGE):
#      debootstrap --variant=minbase with python3, python3-venv and ca-certificates
#      (scripts/setup-common.sh, shared with scripts/setup-docker.sh), imported with `podman import`.
#      Build with it: `sm-compose build --base-image localhost/composer-base:bookworm`.
#
# Docker's counterpart is scripts/setup-docker.sh (a daemon of the tests' own; Docker has no
# build-time mounts, so the CA bundle goes into its copy of the base image); see docs/images.md.
set -euo pipefail

BASE_IMAGE="${COMPOSER_BASE_IMAGE:-localhost/composer-base:bookworm}"
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
PACKAGES=(podman buildah runc debootstrap docker-registry apache2-utils)
CONF_DIR=/etc/containers
ENGINE_CONF="$CONF_DIR/containers.conf.d/50-sagemaker-composer.conf"
STORAGE_CONF="$CONF_DIR/storage.conf"
STORE=/var/lib/containers/storage
MARK="# Written by sagemaker-composer scripts/setup-podman.sh; rerunning the script rewrites it."

if [ $# -gt 0 ]; then
  echo "setup-podman: got arguments '$*'; allowed: none" >&2
  exit 2
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "setup-podman: got uid $(id -u); run it as root (it installs packages and writes /etc)" >&2
  exit 2
fi

say() { echo "setup-podman: $*" >&2; }
changed=0
started=$(date +%s)

# 1. Packages -----------------------------------------------------------------------------------
# shellcheck source=scripts/setup-common.sh
. "$(dirname "$0")/setup-common.sh"
install_missing setup-podman "" "${PACKAGES[@]}"
[ "$INSTALLED" -eq 0 ] || changed=1

# 2. Engine configuration ----------------------------------------------------------------------
write_if_changed() { # path content
  local path=$1 content=$2
  if [ -f "$path" ] && [ "$(cat "$path")" = "$content" ]; then
    return 1
  fi
  mkdir -p "$(dirname "$path")"
  if [ -f "$path" ] && ! grep -qF "$MARK" "$path"; then
    cp -p "$path" "$path.before-composer"
    say "kept the previous $path as $path.before-composer"
  fi
  printf '%s\n' "$content" >"$path"
  say "wrote $path"
  return 0
}

volumes=""
if [ -f "$CA_BUNDLE" ]; then
  volumes="volumes = [\"$CA_BUNDLE:$CA_BUNDLE:ro\"]"
fi
engine_conf="$MARK
[containers]
default_ulimits = [\"nofile=4096:4096\", \"nproc=4096:4096\"]
netns = \"host\"
$volumes

[engine]
runtime = \"runc\"
cgroup_manager = \"cgroupfs\"
events_logger = \"file\""

# Overlay works where the kernel allows overlay mounts and the store is not itself on overlayfs.
# Rather than guess, run a container from a one-file image on a temporary overlay store.
probe_overlay() {
  local dir ok=1
  dir=$(mktemp -d /var/tmp/composer-overlay-probe.XXXXXX)
  local p=(podman --root "$dir/root" --runroot "$dir/run" --storage-driver overlay)
  mkdir -p "$dir/rootfs/sbin"
  cp /sbin/ldconfig "$dir/rootfs/sbin/ldconfig" # statically linked on Debian
  if tar -C "$dir/rootfs" -c . | "${p[@]}" import --quiet - localhost/composer-probe:1 >/dev/null 2>&1 &&
    "${p[@]}" run --rm localhost/composer-probe:1 /sbin/ldconfig --version >/dev/null 2>&1; then
    ok=0
  fi
  "${p[@]}" rmi --all --force >/dev/null 2>&1 || true
  rm -rf "$dir" 2>/dev/null || true
  return $ok
}

wanted="${COMPOSER_STORAGE_DRIVER:-}"
case "$wanted" in
  "" | overlay | vfs) ;;
  *)
    say "COMPOSER_STORAGE_DRIVER: got '$wanted'; allowed: overlay, vfs (or unset to probe)"
    exit 2
    ;;
esac
if [ -z "$wanted" ] && [ -f "$STORAGE_CONF" ] && grep -qF "$MARK" "$STORAGE_CONF"; then
  wanted=$(sed -n 's/^driver = "\(.*\)"$/\1/p' "$STORAGE_CONF")
fi
# The engine configuration goes first: the probe runs a container with it.
write_if_changed "$ENGINE_CONF" "$engine_conf" && changed=1
if [ -z "$wanted" ]; then
  if probe_overlay; then wanted=overlay; else wanted=vfs; fi
  say "storage driver: $wanted (overlay probe $([ "$wanted" = overlay ] && echo passed || echo failed))"
fi

storage_conf="$MARK
[storage]
driver = \"$wanted\"
runroot = \"/run/containers/storage\"
graphroot = \"$STORE\""

if ! [ -f "$STORAGE_CONF" ] || [ "$(cat "$STORAGE_CONF")" != "$storage_conf" ]; then
  # Podman refuses to open a store made by another driver. An empty store is reset; a store that
  # holds images or containers is left alone and reported.
  driver=$(podman info --format '{{.Store.GraphDriverName}}' 2>/dev/null || true)
  if [ -n "$driver" ] && [ "$driver" != "$wanted" ]; then
    if [ -n "$(podman ps -aq 2>/dev/null)$(podman images -q 2>/dev/null)" ]; then
      say "the store in $STORE uses driver '$driver' and holds images or containers;" \
        "wanted is '$wanted'. Empty it (podman system reset) or set" \
        "COMPOSER_STORAGE_DRIVER=$driver, and rerun."
      exit 1
    fi
    podman system reset --force >/dev/null 2>&1 || true
    say "reset the empty '$driver' store"
  fi
fi
write_if_changed "$STORAGE_CONF" "$storage_conf" && changed=1

if ! info_err=$(podman info 2>&1 >/dev/null); then
  say "podman does not start with this configuration: $info_err"
  exit 1
fi

# 3. Base image ---------------------------------------------------------------------------------
if ! podman image exists "$BASE_IMAGE"; then
  base_rootfs_tar setup-podman |
    podman import --quiet --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
  say "imported $BASE_IMAGE"
  changed=1
fi

elapsed=$(($(date +%s) - started))
if [ "$changed" -eq 0 ]; then
  say "nothing to do: podman $(podman version --format '{{.Client.Version}}'), base image" \
    "$BASE_IMAGE present (${elapsed}s)"
else
  say "done in ${elapsed}s"
fi
