package authz

import (
	"context"
	"strconv"

	"github.com/posgate/posgate/protocol/iso93"
)

// The checks of the request itself: its fields, its terminal, its card
// block and the device counter of the block's KSN.

// validateCheck refuses a request whose fields are malformed or out of
// range (validate): 904, 110 or 902, audited request_invalid. It reads
// nothing and runs first: the cheapest refusal.
var validateCheck = check{name: "validate", phase: beforeTx,
	codes: []iso93.ActionCode{iso93.ActionFormatError, iso93.ActionInvalidAmount, iso93.ActionInvalidTransaction},
	run: func(_ context.Context, st *auth) (decision, error) {
		if code, reason := validate(st.r); code != "" {
			return declineOf(code, "request_invalid", reason), nil
		}
		return pass, nil
	}}

// terminalCheck refuses a request from a terminal that is unknown or not
// behind the requesting gateway (or, center-to-center, not of the head
// office): 120, audited terminal_refused. Its read rides in the first look
// (firstLook).
var terminalCheck = check{name: "terminal", phase: beforeTx, reads: readTerminal,
	codes: []iso93.ActionCode{iso93.ActionNotPermittedToTerminal},
	run: func(ctx context.Context, st *auth) (decision, error) {
		term, ok, err := st.s.terminal(ctx, st.r)
		if err != nil {
			return pass, err
		}
		if !ok {
			return declineOf(iso93.ActionNotPermittedToTerminal, "terminal_refused",
				"terminal unknown or not registered behind this gateway"), nil
		}
		st.term = term
		return pass, nil
	}}

// cardBlockCheck decrypts the card-data block in the token (or
// fingerprints the clear PAN of a center-to-center request) and compares
// fingerprints (open). A block that is missing, malformed or exclusive
// with a clear PAN is refused here, 904 (request_invalid or
// card_block_invalid); a block that decrypted but whose fingerprint
// differs is refused by fingerprintCheck inside the transaction, after
// the device counter moved.
var cardBlockCheck = check{name: "card block", phase: beforeTx,
	codes: []iso93.ActionCode{iso93.ActionFormatError},
	run: func(ctx context.Context, st *auth) (decision, error) {
		o, err := st.s.open(ctx, st.r)
		if err != nil {
			return pass, err
		}
		if o.code != "" && o.device == "" {
			// Not decrypted at all: nothing to record against a device.
			return declineOf(o.code, o.kind, o.reason), nil
		}
		st.o = o
		st.routed = st.s.Router != nil && o.code == ""
		return pass, nil
	}}

// replayCheck applies the KSN replay rule: a block's counter must be
// above the highest accepted from its device, else 913 (ksn_replay). It
// advances the counter (a write) and is first in the transaction after
// the route, so that every later decision of the request counts as the
// counter's use. Nothing for the clear-PAN path.
var replayCheck = check{name: "replay", phase: inTx, reads: readDeviceCounter,
	codes: []iso93.ActionCode{iso93.ActionDuplicateTransmission},
	run: func(ctx context.Context, st *auth) (decision, error) {
		o := st.o
		if o.device == "" {
			return pass, nil
		}
		fresh, err := st.tx.AdvanceDeviceCounter(ctx, o.device, o.counter)
		if err != nil || fresh {
			return pass, err
		}
		return declineOf(iso93.ActionDuplicateTransmission, "ksn_replay",
			"KSN counter "+strconv.FormatUint(o.counter, 10)+" not above the highest accepted from device "+o.device), nil
	}}

// deviceCounterCheck keeps an advice's device counter current; it never
// declines: advices may arrive after later online requests of the device,
// and their idempotency key deduplicates them.
var deviceCounterCheck = check{name: "device counter", phase: inTx, reads: readDeviceCounter,
	run: func(ctx context.Context, st *auth) (decision, error) {
		if st.o.device == "" {
			return pass, nil
		}
		_, err := st.tx.AdvanceDeviceCounter(ctx, st.o.device, st.o.counter)
		return pass, err
	}}

// fingerprintCheck refuses a decrypted block whose DE 122 fingerprint is
// not its PAN's (904, fingerprint_mismatch), inside the transaction so that
// the block's counter is used.
var fingerprintCheck = check{name: "fingerprint", phase: inTx,
	codes: []iso93.ActionCode{iso93.ActionFormatError},
	run: func(_ context.Context, st *auth) (decision, error) {
		if st.o.code != "" {
			return declineOf(st.o.code, st.o.kind, st.o.reason), nil
		}
		return pass, nil
	}}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
