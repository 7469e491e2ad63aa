#!/usr/bin/env bash
# make demo: the whole path on embedded defaults under ./data.
#   1. key ceremony (first run): the center's token gets its BDK, vault and
#      fingerprint keys; hsmctl derives a terminal's initial key for injection
#   2. the gateway makes its link identity key in its own token; the center's
#      link CA signs its certificate
#   3. cardcenter and posgate start; termsim runs one sale per deck card:
#      approved sales and declines (unknown card, short balance, expired, lost)
# Everything persists in ./data; run it again and the terminal's DUKPT counter
# carries on. `make clean` removes ./data.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=./bin
DATA=./data
mkdir -p "$DATA"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "center: token, keys, store and demo data (cardcenter seed-demo)"
$BIN/cardcenter seed-demo --terminals 1 2> >(sed 's/^/  [cardcenter] /' >&2)

if [ ! -f "$DATA/termsim/T0000001.json" ]; then
  say "key injection: terminal T0000001's DUKPT initial key (hsmctl inject)"
  $BIN/hsmctl inject --softhsm-dir "$DATA/cardcenter/hsm" --token cardcenter --bdk bdk \
    --terminal-id T0000001 --ikid 0000000100000001 \
    --fingerprint-components "$DATA/cardcenter/ceremony/fingerprint-components.json" \
    --out "$DATA/termsim/T0000001.json"
fi

if [ ! -f "$DATA/posgate/link/gateway.crt" ]; then
  say "gateway enrolment: CSR from the gateway's token, signed by the center's link CA"
  csr=$($BIN/posgate csr 2>/dev/null)
  $BIN/cardcenter enrol --gateway-id GW000001 --csr "$csr" \
    --out "$DATA/posgate/link/gateway.crt" --ca-out "$DATA/posgate/link/ca.crt"
fi

say "starting cardcenter (link 127.0.0.1:7443/udp) and posgate (terminals 127.0.0.1:7001)"
$BIN/cardcenter 2> >(sed 's/^/  [cardcenter] /' >&2) &
pids+=($!)
$BIN/posgate 2> >(sed 's/^/  [posgate] /' >&2) &
pids+=($!)

# Wait until the gateway reports its link up (bounded; bash's /dev/tcp, so
# no curl is needed on a fresh machine).
metrics() {
  exec 3<>/dev/tcp/127.0.0.1/8081 || return 1
  printf 'GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
  cat <&3
  exec 3<&-
}
up=no
for _ in $(seq 1 150); do
  if metrics 2>/dev/null | grep -q '^posgate_link_up 1'; then up=yes; break; fi
  sleep 0.1
done
[ "$up" = yes ] || echo "warning: the gateway's link is not up yet; sales may be answered 907" >&2

say "termsim: one sale of JPY 1200 per deck card"
$BIN/termsim --script demo --amount 1200

say "center ledger check"
$BIN/cardcenter ledger check 2>/dev/null || true
