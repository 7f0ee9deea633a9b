#!/usr/bin/env bash
# Install the system packages the integration tests use: Debian's docker.io (dockerd 20.10),
# docker-registry (CNCF distribution 2.8), buildah (1.28) and debootstrap (the real-builder
# tests build their base image from a minbase root), and chromium (the HTML report's browser
# tests). Idempotent. Never starts a service, and never fails the caller: when it cannot
# install (not root, no apt, apt error) it says why and exits 0, and the test suite then skips
# what needs the missing binaries.
set -u

PACKAGES=(docker.io docker-registry buildah debootstrap chromium redis-server)
log() { echo "system-deps: $*" >&2; }

missing=()
for pkg in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    log "already installed: ${PACKAGES[*]}"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    log "not root: cannot install ${missing[*]}; tests needing them will be skipped"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    log "no apt-get: cannot install ${missing[*]}; tests needing them will be skipped"
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
# Deny every service start during the install (docker.io's postinst calls invoke-rc.d /
# deb-systemd-invoke); restore whatever policy-rc.d was there before.
policy=/usr/sbin/policy-rc.d
backup=""
if [ -e "$policy" ]; then
    backup="$(mktemp)"
    cp -p "$policy" "$backup"
fi
restore_policy() {
    if [ -n "$backup" ]; then
        mv -f "$backup" "$policy"
    else
        rm -f "$policy"
    fi
}
trap restore_policy EXIT
printf '#!/bin/sh\nexit 101\n' >"$policy"
chmod 755 "$policy"

# apt-get update only when the package lists do not know the packages yet.
need_update=0
for pkg in "${missing[@]}"; do
    if ! apt-cache show "$pkg" >/dev/null 2>&1; then
        need_update=1
    fi
done
if [ "$need_update" -eq 1 ]; then
    log "apt-get update"
    if ! apt-get update -qq >&2; then
        log "apt-get update failed; tests needing ${missing[*]} will be skipped"
        exit 0
    fi
fi

install() {
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}
log "installing ${missing[*]}"
if ! install; then
    # Stale package lists (a 404 on a superseded version) are the usual cause: refresh once.
    if [ "$need_update" -eq 0 ] && apt-get update -qq >&2 && install; then
        :
    else
        log "apt-get install ${missing[*]} failed; tests needing them will be skipped"
        exit 0
    fi
fi

# In case a start slipped through (e.g. systemd socket activation), stop what the install
# started; our tests run their own private dockerd.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl stop docker.service docker.socket containerd.service redis-server.service >/dev/null 2>&1 || true
fi
log "installed ${missing[*]}"
exit 0
