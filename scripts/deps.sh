#!/usr/bin/env bash
# Checks that the Debian packages the tests, the demo and the embedded
# defaults use are installed: SoftHSM2 (the PKCS#11 token) with opensc's
# pkcs11-tool, and sip-tester (sipp and the RFC 4733 digit captures and call
# audio it ships, which the DTMF tests read). When one is missing: as root,
# installs it with apt; otherwise prints the exact command and exits 1.
set -euo pipefail
missing=()
[[ -f /usr/lib/softhsm/libsofthsm2.so ]] && command -v softhsm2-util >/dev/null 2>&1 || missing+=(softhsm2)
command -v pkcs11-tool >/dev/null 2>&1 || missing+=(opensc)
[[ -d /usr/share/sip-tester ]] && command -v sipp >/dev/null 2>&1 || missing+=(sip-tester)
if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi
cmd="apt-get update && apt-get install -y ${missing[*]}"
if [[ $(id -u) -eq 0 ]]; then
  echo "deps.sh: ${missing[*]} missing; installing: $cmd" >&2
  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
  exec "$0" --check
fi
if [[ ${1:-} == --check ]]; then
  echo "deps.sh: install finished but ${missing[*]} still missing" >&2
  exit 1
fi
echo "deps.sh: ${missing[*]} not installed. Install with:" >&2
echo "  sudo sh -c '$cmd'" >&2
exit 1
