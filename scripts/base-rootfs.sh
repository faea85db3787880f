# Sourced by scripts/setup-podman.sh and scripts/setup-docker.sh: the base image's file system.
# Docker Hub is not reachable on this project's machines, so the base image of every build is made
# here: Debian minbase with python3, python3-venv and ca-certificates, no apt lists or caches.
#
# base_rootfs_tar SAY_PREFIX: write that file system as a tar stream on stdout (about a minute).
base_rootfs_tar() {
  local who=$1 rootfs
  local suite="${COMPOSER_BASE_SUITE:-bookworm}"
  local mirror="${COMPOSER_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
  if ! command -v debootstrap >/dev/null 2>&1; then
    echo "$who: installing debootstrap" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  fi
  rootfs=$(mktemp -d /var/tmp/composer-rootfs.XXXXXX)
  echo "$who: making the base file system with debootstrap ($suite, about a minute)" >&2
  if ! debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    "$suite" "$rootfs" "$mirror" >"$rootfs.log" 2>&1; then
    echo "$who: debootstrap failed; its log:" >&2
    tail -n 30 "$rootfs.log" >&2
    rm -rf "$rootfs" "$rootfs.log"
    return 1
  fi
  rm -f "$rootfs.log"
  # Leave no apt lists or caches in the image; builds run apt-get update themselves.
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb
  tar --numeric-owner -C "$rootfs" -c .
  rm -rf "$rootfs"
}
