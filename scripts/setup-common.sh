# Sourced by scripts/setup-podman.sh and scripts/setup-docker.sh: what both engines' set-up does.

# install_missing WHO "APT_FLAGS" PACKAGE...: apt-get install those not installed yet, with one
# apt-get update, and no service started by their scripts (the tests start their own registry
# and Docker daemon). Sets INSTALLED=1 when it installed something; fails when apt-get does.
INSTALLED=0
install_missing() {
  local who=$1 flags=$2 pkg policy=/usr/sbin/policy-rc.d own_policy=0 ok=0
  shift 2
  local missing=()
  for pkg in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$pkg")
    fi
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  echo "$who: installing ${missing[*]}" >&2
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    own_policy=1
  fi
  # shellcheck disable=SC2086 # APT_FLAGS is a list of flags
  apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $flags "${missing[@]}" >/dev/null ||
    ok=1
  [ "$own_policy" -eq 0 ] || rm -f "$policy"
  if [ "$ok" -ne 0 ]; then
    echo "$who: apt-get could not install ${missing[*]}" >&2
    return 1
  fi
  # The registry package enables a system service on port 5000; tests start their own.
  if [[ " ${missing[*]} " == *" docker-registry "* ]] && command -v systemctl >/dev/null 2>&1; then
    systemctl disable --now docker-registry >/dev/null 2>&1 || true
  fi
  INSTALLED=1
}

# base_rootfs_tar WHO: the base image's file system as a tar stream on stdout (about a minute).
# Docker Hub is not reachable on this project's machines, so the base image of every build is
# made here: Debian minbase with python3, python3-venv and ca-certificates, no apt lists or caches.
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
