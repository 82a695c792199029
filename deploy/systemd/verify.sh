#!/usr/bin/env bash
# `systemd-analyze verify` on the units, failing on ANY output (it exits 0
# on some errors). The binaries and credential files the units name are
# stood in for in a scratch root, so that only the units themselves are judged.
#   deploy/systemd/verify.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
command -v systemd-analyze >/dev/null || { echo "verify: systemd-analyze missing (apt-get install systemd)"; exit 1; }
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/usr/bin" "$root/usr/lib" "$root/etc/systemd/system"
cp -r /usr/lib/systemd "$root/usr/lib/systemd"  # the targets the units are ordered after
for b in qsweep-server qsweep-worker; do printf '#!/bin/sh\n' > "$root/usr/bin/$b"; chmod +x "$root/usr/bin/$b"; done
cp "$here/qsweep-server.service" "$root/etc/systemd/system/"
cp "$here/qsweep-worker@.service" "$root/etc/systemd/system/qsweep-worker@.service"
ln -s qsweep-worker@.service "$root/etc/systemd/system/qsweep-worker@0.service"
out="$(cd "$root" && systemd-analyze verify --root="$root" --man=no \
  "$root/etc/systemd/system/qsweep-server.service" \
  "$root/etc/systemd/system/qsweep-worker@0.service" 2>&1)" || { echo "$out"; exit 1; }
if [ -n "$out" ]; then echo "$out"; echo "verify: FAILED (output above)"; exit 1; fi
echo "verify: qsweep-server.service and qsweep-worker@.service pass systemd-analyze verify"
