package jets

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"

	"github.com/posgate/posgate/firmware-sim/signpad"
	"github.com/posgate/posgate/terminal/tlink"
)

// Signature capture: after an approved sale verified by signature (no PIN
// entered: magstripe, contactless at or under the CVM limit) the simulated
// cardholder signs on the terminal's pad and the terminal sends the encoded
// signature to the gateway in KindSignature chunks (docs/terminal-link.md,
// docs/signatures.md), after the txn-result.
const (
	// SignatureChunk is how many bytes of the encoded signature go in one
	// KindSignature frame. Kept well under tlink.MaxChunk so that a typical
	// signature (about 1 KiB) takes more than one chunk.
	SignatureChunk = 512
	// sigPadWidth and sigPadHeight are the simulated pad's resolution.
	sigPadWidth, sigPadHeight = 640, 240
	// sigAttempts bounds the sends of one chunk without an answer, and the
	// resends the gateway may ask for over the whole signature.
	sigAttempts = 4
)

// errSignatureRefused means the gateway answered status refused.
var errSignatureRefused = errors.New("jets: gateway refused the signature")

// needsSignature reports whether an approved transaction of kind k takes a
// signature: a sale without a PIN.
func needsSignature(k tlink.Kind, outcome tlink.Outcome, pinEntered bool) bool {
	return k == tlink.KindSale && outcome == tlink.OutcomeApproved && !pinEntered
}

// captureSignature synthesizes the cardholder's signature for the
// transaction with this ref and STAN (the same ones give the same strokes)
// and sends it. Failures are logged, never retried beyond sigAttempts: the
// sale stands without its signature image.
func (f *Firmware) captureSignature(ctx context.Context, ep *tlink.Endpoint, ref, stan string) {
	h := fnv.New64a()
	h.Write([]byte(ref + "/" + stan))
	sig := signpad.Synthesize(h.Sum64(), sigPadWidth, sigPadHeight, 3, 100)
	enc, err := sig.MarshalBinary()
	if err != nil {
		f.log.Error("encode signature", "ref", ref, "stan", stan, "err", err)
		return
	}
	if err := f.sendSignature(ctx, ep, ref, stan, enc); err != nil {
		f.log.Warn("signature not delivered", "ref", ref, "stan", stan, "err", err)
		return
	}
	f.log.Info("signature delivered", "ref", ref, "stan", stan, "bytes", len(enc))
}

// sendSignature sends enc in SignatureChunk pieces, each after the ack of
// the one before, following the gateway's next_offset.
func (f *Firmware) sendSignature(ctx context.Context, ep *tlink.Endpoint, ref, stan string, enc []byte) error {
	if len(enc) == 0 || len(enc) > tlink.MaxSignature {
		return fmt.Errorf("signature of %d bytes: must be 1..%d", len(enc), tlink.MaxSignature)
	}
	var off uint32
	lost, resends := 0, 0
	for {
		end := min(int(off)+SignatureChunk, len(enc))
		c := tlink.Signature{Ref: ref, STAN: stan, Format: tlink.SignatureSignpadV1, Offset: off, Total: uint32(len(enc)), Data: enc[off:end]}
		p, err := c.MarshalBinary()
		if err != nil {
			return fmt.Errorf("signature chunk at %d: %w", off, err)
		}
		m, err := ep.Request(ctx, tlink.KindSignature, p)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("signature chunk at %d: %w", off, err)
			}
			if lost++; lost >= sigAttempts {
				return fmt.Errorf("signature chunk at %d: no answer after %d attempts: %w", off, lost, err)
			}
			continue
		}
		lost = 0
		var a tlink.SignatureAck
		if err := a.UnmarshalBinary(m.Payload); err != nil {
			return fmt.Errorf("signature ack for chunk at %d: %w", off, err)
		}
		switch a.Status {
		case tlink.SignatureComplete:
			return nil
		case tlink.SignatureRefused:
			return fmt.Errorf("chunk at %d: %w", off, errSignatureRefused)
		case tlink.SignatureResend:
			if resends++; resends > sigAttempts {
				return fmt.Errorf("signature: gateway asked for a resend %d times", resends)
			}
		}
		if a.NextOffset >= uint32(len(enc)) {
			return fmt.Errorf("signature: gateway asks for offset %d of %d bytes", a.NextOffset, len(enc))
		}
		off = a.NextOffset
	}
}
