package center

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/moov-io/iso8583"

	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/protocol/iso93"
	"github.com/posgate/posgate/protocol/link"
	"github.com/posgate/posgate/protocol/sigcap"
)

// Audit kinds of signature capture.
const (
	AuditSignatureStored  = "signature_stored"
	AuditSignatureRefused = "signature_refused"
)

// SignatureServer answers gateways' 1304 SIGCAP file actions
// (docs/signatures.md): each carries one chunk of a cardholder's signature
// for a sale the center authorized, named by the sale's idempotency key,
// terminal, STAN and local time. Chunks are kept in signature_chunks until
// the signature is whole, then stored in signatures, linked to the
// authorization. The center keeps no state in memory, so any node may take
// any chunk.
//
// Answers: 000 chunk stored (or already held); 904 malformed record, wrong
// function code, chunks that disagree on size or format, or a signature
// that is not a sign pad encoding; 914 no authorization with that key from
// this gateway, terminal, STAN and local time; 909 store failure. Every
// refusal is audited (kind signature_refused), every stored signature too
// (signature_stored). SignatureServer is safe for concurrent use.
type SignatureServer struct {
	Store  *store.Store
	Logger *slog.Logger
}

// signature routes a validated 1304 SIGCAP for h; without a
// SignatureServer it answers 902.
func (h *LinkHandler) signature(ctx context.Context, p link.Peer, msg *iso8583.Message) ([]byte, iso93.ActionCode, error) {
	if h.Signatures == nil {
		return replySig(msg, iso93.ActionInvalidTransaction)
	}
	return h.Signatures.Answer(ctx, p, msg)
}

// isSigCap reports whether a 1304 names the SIGCAP file.
func isSigCap(msg *iso8583.Message) bool {
	name, err := msg.GetString(iso93.FieldFileName)
	return err == nil && name == sigcap.FileName
}

// Answer answers one 1304 SIGCAP from gateway p.
func (s *SignatureServer) Answer(ctx context.Context, p link.Peer, msg *iso8583.Message) ([]byte, iso93.ActionCode, error) {
	var fa iso93.FileAction
	if err := msg.Unmarshal(&fa); err != nil {
		return s.refuse(ctx, msg, p, iso93.ActionFormatError, "", "unreadable file action")
	}
	if fa.FunctionCode != iso93.FunctionAddRecord {
		return s.refuse(ctx, msg, p, iso93.ActionFormatError, "", "function code "+fa.FunctionCode+" is not 301")
	}
	c, err := sigcap.Parse(fa.DataRecord)
	if err != nil {
		return s.refuse(ctx, msg, p, iso93.ActionFormatError, "", err.Error())
	}
	var (
		action = iso93.ActionApproved
		why    string
		stored *store.Signature
	)
	err = s.Store.Update(ctx, func(tx *store.Tx) error {
		action, why, stored = iso93.ActionApproved, "", nil
		if _, err := tx.SignatureByKey(ctx, c.IdempotencyKey); err == nil {
			return nil // already whole: a repeat
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		a, err := tx.AuthorizationByKey(ctx, c.IdempotencyKey)
		if errors.Is(err, store.ErrNotFound) {
			action, why = iso93.ActionOriginalNotFound, "no authorization with the sale's idempotency key"
			return nil
		}
		if err != nil {
			return err
		}
		if a.GatewayID != p.GatewayID || a.TerminalID != c.TerminalID || a.STAN != c.STAN || a.LocalTime != c.LocalTime {
			action, why = iso93.ActionOriginalNotFound, "authorization's gateway, terminal, STAN or local time differ"
			return nil
		}
		if err := tx.PutSignatureChunk(ctx, store.SignatureChunk{IdempotencyKey: c.IdempotencyKey, Offset: int(c.Offset),
			Total: int(c.Total), Format: int(c.Format), Data: c.Data}); err != nil {
			return err
		}
		chunks, err := tx.SignatureChunks(ctx, c.IdempotencyKey)
		if err != nil {
			return err
		}
		data, complete, bad := assemble(chunks)
		if bad != "" {
			action, why = iso93.ActionFormatError, bad
			return tx.DeleteSignatureChunks(ctx, c.IdempotencyKey)
		}
		if !complete {
			return nil
		}
		if !sigcap.IsSignpadV1(data) {
			action, why = iso93.ActionFormatError, "signature is not a sign pad version 1 encoding"
			return tx.DeleteSignatureChunks(ctx, c.IdempotencyKey)
		}
		sig := store.Signature{AuthorizationID: a.ID, IdempotencyKey: c.IdempotencyKey, GatewayID: p.GatewayID,
			TerminalID: c.TerminalID, STAN: c.STAN, LocalTime: c.LocalTime, Format: int(c.Format), Data: data}
		if sig.ID, err = tx.InsertSignature(ctx, sig); err != nil {
			return err
		}
		if err := tx.DeleteSignatureChunks(ctx, c.IdempotencyKey); err != nil {
			return err
		}
		if _, err := tx.InsertAudit(ctx, store.AuditRecord{Kind: AuditSignatureStored, Actor: "gateway:" + p.GatewayID,
			Detail: fmt.Sprintf("authorization %d terminal %s stan %s: %d bytes", a.ID, c.TerminalID, c.STAN, len(data))}); err != nil {
			return err
		}
		stored = &sig
		return nil
	})
	if err != nil {
		s.Logger.Error("signature chunk not stored", "gateway", p.GatewayID, "terminal", c.TerminalID, "stan", c.STAN, "reason", err)
		if ctx.Err() != nil {
			return nil, "", err
		}
		return replySig(msg, iso93.ActionSystemMalfunction)
	}
	if action != iso93.ActionApproved {
		return s.refuse(ctx, msg, p, action, c.TerminalID+" "+c.STAN, why)
	}
	if stored != nil {
		s.Logger.Info("signature stored", "gateway", p.GatewayID, "authorization", stored.AuthorizationID, "terminal", c.TerminalID, "stan", c.STAN, "bytes", len(stored.Data))
	}
	return replySig(msg, iso93.ActionApproved)
}

// assemble joins chunks (ordered by offset) when they cover the whole
// signature without gaps. bad is set when they disagree on total or format
// or overlap differently than a repeat would.
func assemble(chunks []store.SignatureChunk) (data []byte, complete bool, bad string) {
	if len(chunks) == 0 {
		return nil, false, ""
	}
	total, format := chunks[0].Total, chunks[0].Format
	for _, c := range chunks {
		if c.Total != total || c.Format != format {
			return nil, false, "chunks disagree on the signature's size or format"
		}
		if c.Offset != len(data) {
			if c.Offset < len(data) {
				return nil, false, "chunks overlap"
			}
			return nil, false, "" // a gap: more to come
		}
		data = append(data, c.Data...)
	}
	return data, len(data) == total, ""
}

// refuse audits and answers a refused chunk; what names the transaction
// (terminal and STAN, never card data) when known.
func (s *SignatureServer) refuse(ctx context.Context, msg *iso8583.Message, p link.Peer, action iso93.ActionCode, what, why string) ([]byte, iso93.ActionCode, error) {
	s.Logger.Warn("signature chunk refused", "gateway", p.GatewayID, "transaction", what, "action", string(action), "reason", why)
	if err := s.Store.Update(ctx, func(tx *store.Tx) error {
		_, err := tx.InsertAudit(ctx, store.AuditRecord{Kind: AuditSignatureRefused, Actor: "gateway:" + p.GatewayID,
			Detail: fmt.Sprintf("action %s %s: %s", action, what, why)})
		return err
	}); err != nil {
		s.Logger.Error("audit of a refused signature failed", "gateway", p.GatewayID, "reason", err)
	}
	return replySig(msg, action)
}

// replySig packs the 1314 answering a SIGCAP 1304.
func replySig(msg *iso8583.Message, action iso93.ActionCode) ([]byte, iso93.ActionCode, error) {
	raw, err := sigcap.PackAnswer(msg, action)
	if err != nil {
		return nil, "", err
	}
	return raw, action, nil
}
