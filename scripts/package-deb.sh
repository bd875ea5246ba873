#!/usr/bin/env bash
# scripts/package-deb.sh - the Debian package of qshield, built with dpkg-deb.
#
#   scripts/package-deb.sh                    build the release binary, write target/debian/qshield_VERSION_ARCH.deb
#   scripts/package-deb.sh --binary PATH      package that binary instead of building one
#   scripts/package-deb.sh --out DIR          write the package into DIR
#
# The package holds: /usr/bin/qshield; the systemd units qshield@.service (the site daemon)
# and qshield-kme@.service (the KME) under /lib/systemd/system, pointing at /usr/bin; the
# manual pages (`qshield man --out-dir`); bash, zsh and fish completions (`qshield
# completions`); the README, docs/ and the example configs under /usr/share/doc/qshield.
# It enables and starts nothing: `systemctl enable --now qshield@NAME` reads
# /etc/qshield/NAME.toml (docs/deploy.md). Prints the package's path.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BINARY=""
OUT=$ROOT/target/debian
while (($#)); do
    case "$1" in
        --binary) BINARY=${2:?--binary takes a path}; shift ;;
        --out) OUT=${2:?--out takes a directory}; shift ;;
        -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "package-deb: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
command -v dpkg-deb >/dev/null || { echo "package-deb: dpkg-deb is missing (Debian's dpkg)" >&2; exit 1; }
if [[ -z $BINARY ]]; then
    bash scripts/install-deps.sh
    cargo build --release --quiet
    BINARY=$ROOT/target/release/qshield
fi
[[ -x $BINARY ]] || { echo "package-deb: $BINARY is not an executable" >&2; exit 1; }
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
ARCH=$(dpkg --print-architecture)
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
PKG=$STAGE/qshield_${VERSION}_${ARCH}
install -d -m 0755 "$PKG/DEBIAN" "$PKG/usr/bin" "$PKG/lib/systemd/system" "$PKG/usr/share/man/man1" \
    "$PKG/usr/share/bash-completion/completions" "$PKG/usr/share/zsh/vendor-completions" \
    "$PKG/usr/share/fish/vendor_completions.d" "$PKG/usr/share/doc/qshield/examples"
install -m 0755 "$BINARY" "$PKG/usr/bin/qshield"
for unit in qshield@.service qshield-kme@.service; do
    sed 's#/usr/local/bin/qshield#/usr/bin/qshield#g; s#^\(\# For a manual install.*\)#\# Installed by the Debian package.#' \
        "deploy/$unit" >"$PKG/lib/systemd/system/$unit"
    chmod 0644 "$PKG/lib/systemd/system/$unit"
done
"$BINARY" man --out-dir "$STAGE/man" 2>/dev/null
for page in "$STAGE"/man/*.1; do
    gzip -9n <"$page" >"$PKG/usr/share/man/man1/$(basename "$page").gz"
done
"$BINARY" completions bash >"$PKG/usr/share/bash-completion/completions/qshield"
"$BINARY" completions zsh >"$PKG/usr/share/zsh/vendor-completions/_qshield"
"$BINARY" completions fish >"$PKG/usr/share/fish/vendor_completions.d/qshield.fish"
cp README.md "$PKG/usr/share/doc/qshield/"
cp docs/*.md "$PKG/usr/share/doc/qshield/"
cp -r configs/. "$PKG/usr/share/doc/qshield/examples/"
find "$PKG/usr/share" -type f -exec chmod 0644 {} +
find "$PKG/usr/share" -type d -exec chmod 0755 {} +
cat >"$PKG/usr/share/doc/qshield/copyright" <<COPY
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: qshield
Files: *
License: see the project's repository
COPY
SIZE=$(du -sk --exclude=DEBIAN "$PKG" | cut -f1)
cat >"$PKG/DEBIAN/control" <<CONTROL
Package: qshield
Version: $VERSION
Architecture: $ARCH
Maintainer: qshield developers <qshield@localhost>
Installed-Size: $SIZE
Depends: libc6, libgcc-s1
Recommends: iproute2
Section: net
Priority: optional
Homepage: https://localhost/qshield
Description: quantum-safe site-to-site VPN with QKD keys (ETSI GS QKD 014)
 qshield is a Linux userspace site-to-site VPN whose session keys mix a QKD key
 delivered by a key management entity (ETSI GS QKD 014 over mutual TLS) with a
 hybrid X25519 + ML-KEM-768 handshake, rotated on byte and time budgets. The
 package also holds the KME (qshield kme) and its systemd unit.
CONTROL
mkdir -p "$OUT"
dpkg-deb --root-owner-group --build "$PKG" "$OUT/" >/dev/null
echo "$OUT/qshield_${VERSION}_${ARCH}.deb"
