#!/usr/bin/env bash
# Checks that SoftHSM2 (the PKCS#11 token used by tests, the demo and the
# embedded defaults) is installed. When it is missing: as root, installs it
# with apt; otherwise prints the exact command and exits 1.
set -euo pipefail
module=/usr/lib/softhsm/libsofthsm2.so
if [[ -f $module ]] && command -v softhsm2-util >/dev/null 2>&1; then
  exit 0
fi
cmd="apt-get update && apt-get install -y softhsm2 opensc"
if [[ $(id -u) -eq 0 ]]; then
  echo "softhsm.sh: SoftHSM2 missing; installing: $cmd" >&2
  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y softhsm2 opensc
  if [[ -f $module ]] && command -v softhsm2-util >/dev/null 2>&1; then
    exit 0
  fi
  echo "softhsm.sh: install finished but $module or softhsm2-util is still missing" >&2
  exit 1
fi
echo "softhsm.sh: SoftHSM2 is not installed ($module, softhsm2-util). Install it with:" >&2
echo "  sudo sh -c '$cmd'" >&2
exit 1
