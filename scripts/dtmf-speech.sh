#!/usr/bin/env bash
# Regenerates the speech recordings the in-band DTMF detector's talk-off
# test reads (gateway/ivr/dtmf/testdata/speech-*.wav): English and Japanese
# speech from espeak-ng, resampled by sox to 8 kHz mono G.711 μ-law WAV,
# the audio of a phone call. Needs Debian's espeak-ng and sox.
set -euo pipefail
cd "$(dirname "$0")/.."
out=gateway/ivr/dtmf/testdata
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

say() { # voice pitch speed file text
  espeak-ng -v "$1" -p "$2" -s "$3" -w "$tmp/raw.wav" "$5"
  sox -q -R "$tmp/raw.wav" -r 8000 -c 1 -e u-law -b 8 "$tmp/$4.wav"
}

say en-us 50 175 en1 "Please enter your card number, then the hash key. Your total is one thousand two hundred and eighty yen."
say en-us 80 190 en2 "Enter the expiry date. Nine, eight, seven, six, five, four, three, two, one, zero."
say ja 50 165 ja1 "かーど ばんごうを にゅうりょくして、 さいごに しゃーぷを おして ください。"
say ja 75 180 ja2 "ゆうこう きげんを にゅうりょくして ください。 いち、 に、 さん、 よん、 ご、 ろく、 なな、 はち、 きゅう、 ぜろ。"

sox -q -R "$tmp/en1.wav" "$tmp/en2.wav" "$out/speech-en.wav"
sox -q -R "$tmp/ja1.wav" "$tmp/ja2.wav" "$out/speech-ja.wav"
ls -l "$out"/speech-*.wav
