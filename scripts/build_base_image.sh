#!/usr/bin/env bash
# Build the project's base image without a registry: debootstrap a minimal Debian bookworm root with python3
# and `docker import` it. Idempotent: an existing image is kept (FORCE=1 rebuilds).
# Interface (stable, used by the compose/Dockerfile scripts):
#   RESRL_BASE_IMAGE   image name to create        (default resrl/base:bookworm)
#   RESRL_BASE_PACKAGES extra Debian packages, comma-separated
#   DEBIAN_MIRROR      mirror URL                   (default http://deb.debian.org/debian)
# The last line printed on stdout is the image name, so callers can do: IMG=$(bash build_base_image.sh | tail -1)
set -euo pipefail

image=${RESRL_BASE_IMAGE:-resrl/base:bookworm}
packages=${RESRL_BASE_PACKAGES:-python3,python3-pip,python3-venv,ca-certificates,procps}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if [[ "${FORCE:-0}" != 1 ]] && docker image inspect "$image" >/dev/null 2>&1; then
    echo "build_base_image: $image already exists" >&2
    echo "$image"
    exit 0
fi

if ! command -v debootstrap >/dev/null 2>&1; then
    echo "build_base_image: installing debootstrap" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null \
        || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
fi

root=$(mktemp -d /tmp/resrl-rootfs.XXXXXX)
trap 'rm -rf "$root"' EXIT
echo "build_base_image: debootstrap bookworm into $root (packages: $packages)" >&2
debootstrap --variant=minbase --include="$packages" bookworm "$root" "$mirror" >&2
# Keep the image small: package lists and caches are not needed at run time.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb

echo "build_base_image: importing as $image" >&2
tar -C "$root" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    - "$image" >&2
echo "$image"
