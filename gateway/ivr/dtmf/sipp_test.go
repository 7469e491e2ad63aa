package dtmf_test

import (
	"encoding/binary"
	"errors"
	"math"
	"os"
	"testing"

	"github.com/pion/rtp"

	"github.com/posgate/posgate/gateway/ivr/dtmf"
	"github.com/posgate/posgate/protocol/g711"
)

// sippAudio is the recorded PCMA call audio Debian's sip-tester ships for
// sipp's play_pcap_audio action.
const sippAudio = "/usr/share/sip-tester/g711a.pcap"

// Real recorded call audio (not synthetic): no digit.
func TestSippRecordedAudio(t *testing.T) {
	b, err := os.ReadFile(sippAudio)
	if errors.Is(err, os.ErrNotExist) {
		// make test installs it (scripts/deps.sh), as it does SoftHSM2.
		t.Fatal("sip-tester not installed: run make deps (or apt-get install sip-tester)")
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 24 || binary.LittleEndian.Uint32(b) != 0xa1b2c3d4 || binary.LittleEndian.Uint32(b[20:]) != 1 {
		t.Fatal("not a little-endian Ethernet pcap")
	}
	d, _ := dtmf.New(dtmf.Config{})
	var got []dtmf.Tone
	packets, samples := 0, 0
	var energy float64
	var lin []int16
	for p := 24; p+16 <= len(b); {
		n := int(binary.LittleEndian.Uint32(b[p+8:]))
		frame := b[p+16 : min(len(b), p+16+n)]
		p += 16 + n
		if len(frame) < 42 || binary.BigEndian.Uint16(frame[12:]) != 0x0800 || frame[14+9] != 17 {
			continue
		}
		ihl := int(frame[14]&0x0f) * 4
		var pkt rtp.Packet
		if err := pkt.Unmarshal(frame[14+ihl+8:]); err != nil || pkt.PayloadType != uint8(g711.Alaw) {
			continue
		}
		if got, err = d.WriteG711(got, g711.Alaw, pkt.Payload); err != nil {
			t.Fatal(err)
		}
		packets++
		samples += len(pkt.Payload)
		lin, _ = g711.Alaw.Decode(lin[:0], pkt.Payload)
		for _, v := range lin {
			energy += float64(v) * float64(v)
		}
	}
	if packets == 0 {
		t.Fatal("no PCMA packets")
	}
	t.Logf("%d PCMA packets, %.1f s at %.1f dBm0 RMS", packets, float64(samples)/dtmf.SampleRate,
		10*math.Log10(energy/float64(samples)/(g711.RMS0dBm0*g711.RMS0dBm0)))
	if len(got) != 0 {
		t.Fatalf("%d false digits in recorded audio", len(got))
	}
}
