package rtpevent_test

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/pion/rtp"

	"github.com/posgate/posgate/protocol/rtpevent"
)

// sippDir holds the RFC 4733 digit captures Debian's sip-tester (sipp)
// ships for its play_pcap_audio action: one key press per file.
const sippDir = "/usr/share/sip-tester"

// readPcapRTP returns the UDP payloads of a classic little-endian pcap
// file of Ethernet/IPv4/UDP frames, parsed as RTP.
func readPcapRTP(t *testing.T, path string) []*rtp.Packet {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 24 || binary.LittleEndian.Uint32(b) != 0xa1b2c3d4 || binary.LittleEndian.Uint32(b[20:]) != 1 {
		t.Fatalf("%s: not a little-endian Ethernet pcap", path)
	}
	var out []*rtp.Packet
	for p := 24; p+16 <= len(b); {
		n := int(binary.LittleEndian.Uint32(b[p+8:]))
		frame := b[p+16 : min(len(b), p+16+n)]
		p += 16 + n
		if len(frame) < 14+20+8 || binary.BigEndian.Uint16(frame[12:]) != 0x0800 {
			continue
		}
		ip := frame[14:]
		ihl := int(ip[0]&0x0f) * 4
		if ip[9] != 17 || len(ip) < ihl+8 {
			continue
		}
		var pkt rtp.Packet
		if err := pkt.Unmarshal(ip[ihl+8:]); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, &pkt)
	}
	return out
}

// The captures sipp plays as a caller's key presses: each gives its one
// digit, once, and replaying it adds nothing.
func TestSippCaptures(t *testing.T) {
	if _, err := os.Stat(sippDir); errors.Is(err, os.ErrNotExist) {
		// make test installs it (scripts/deps.sh), as it does SoftHSM2.
		t.Fatal("sip-tester not installed: run make deps (or apt-get install sip-tester)")
	}
	names := map[string]byte{"star": '*', "pound": '#'}
	for c := '0'; c <= '9'; c++ {
		names[string(c)] = byte(c)
	}
	for name, want := range names {
		t.Run(name, func(t *testing.T) {
			pkts := readPcapRTP(t, filepath.Join(sippDir, "dtmf_2833_"+name+".pcap"))
			if len(pkts) < 4 {
				t.Fatalf("%d packets", len(pkts))
			}
			// The capture's SDP would say which payload type; take it from
			// the first packet as the negotiation would have.
			c, err := rtpevent.NewCollector(pkts[0].PayloadType)
			if err != nil {
				t.Fatal(err)
			}
			var got []byte
			ends := 0
			for range 2 {
				for _, p := range pkts {
					if got, err = c.Push(got, p); err != nil {
						t.Fatal(err)
					}
					if e, _ := rtpevent.Parse(p.Payload); e.End {
						ends++
					}
				}
			}
			if len(got) != 1 || got[0] != want {
				t.Fatalf("%d packets (%d end packets, played twice): got %d digits", len(pkts), ends, len(got))
			}
			t.Logf("%d packets, %d of them end packets, payload type %d: one digit", len(pkts), ends/2, pkts[0].PayloadType)

			// Negotiated as 96 instead: a collector for 96 reads the
			// rewritten packets and one for 97 ignores them.
			c96, _ := rtpevent.NewCollector(96)
			c97, _ := rtpevent.NewCollector(97)
			var got96, got97 []byte
			for _, p := range pkts {
				q := *p
				q.PayloadType = 96
				got96, _ = c96.Push(got96, &q)
				got97, _ = c97.Push(got97, &q)
			}
			if string(got96) != string(want) || len(got97) != 0 {
				t.Fatalf("rewritten to 96: %d and %d digits", len(got96), len(got97))
			}
		})
	}
}
