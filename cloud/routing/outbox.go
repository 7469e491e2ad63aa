package routing

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/protocol/brandspec"
	"github.com/posgate/posgate/protocol/iso93"
)

func (r *Router) wake() chan struct{} {
	r.wakeOnce.Do(func() { r.wakeCh = make(chan struct{}, 1) })
	return r.wakeCh
}

// Kick wakes Run to look for due outbox messages now. It never blocks.
func (r *Router) Kick() {
	select {
	case r.wake() <- struct{}{}:
	default:
	}
}

// Run delivers due host outbox messages until ctx is done, waking every
// PollInterval and on Kick. Run always returns a non-nil error: ctx's
// error when stopped. A delivery fault is logged and retried on the next
// pass.
func (r *Router) Run(ctx context.Context) error {
	poll := r.PollInterval
	if poll <= 0 {
		poll = DefaultPollInterval
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		if _, err := r.DeliverDue(ctx); err != nil && ctx.Err() == nil {
			r.log().Error("host outbox pass failed", "reason", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		case <-r.wake():
		}
	}
}

// DeliverDue makes one pass over the due outbox messages, oldest first,
// sending each once, and returns how many got an answer. Several center
// nodes may run it on one database: each attempt is claimed by one node.
func (r *Router) DeliverDue(ctx context.Context) (int, error) {
	var due []store.OutboxMessage
	now := r.now()
	err := r.Store.View(ctx, func(tx *store.Tx) error {
		var err error
		due, err = tx.DueOutbox(ctx, now, 100)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("read host outbox: %w", err)
	}
	answered := 0
	for _, m := range due {
		if ctx.Err() != nil {
			return answered, ctx.Err()
		}
		ok, err := r.deliver(ctx, m)
		if err != nil {
			return answered, err
		}
		if ok {
			answered++
		}
	}
	return answered, nil
}

func (r *Router) retry() time.Duration {
	if r.RetryInterval > 0 {
		return r.RetryInterval
	}
	return DefaultRetryInterval
}

func (r *Router) maxAttempts() int {
	if r.MaxAttempts > 0 {
		return r.MaxAttempts
	}
	return DefaultMaxAttempts
}

var repeatMTI = map[string]string{iso93.MTIReversal: iso93.MTIReversalRepeat, iso93.MTIAdvice: iso93.MTIAdviceRepeat}

// deliver claims and sends one message; ok reports an answer from the
// host. err is a store fault.
func (r *Router) deliver(ctx context.Context, m store.OutboxMessage) (ok bool, err error) {
	now := r.now()
	var won bool
	if err := r.Store.Update(ctx, func(tx *store.Tx) error {
		var err error
		won, err = tx.ClaimOutbox(ctx, m.ID, now, now.Add(r.retry()))
		return err
	}); err != nil {
		return false, fmt.Errorf("claim outbox message %d: %w", m.ID, err)
	}
	if !won {
		return false, nil
	}
	attempt := m.Attempts + 1
	result, sendErr := r.send(ctx, m, attempt)
	state := store.OutboxPending
	switch {
	case sendErr == nil:
		state = store.OutboxDone
	case errors.Is(sendErr, ErrUnknownHost) || attempt >= r.maxAttempts():
		state = store.OutboxFailed
	}
	log := r.log().With("outbox", m.ID, "host", m.Host, "kind", m.Kind, "attempt", attempt)
	if sendErr != nil {
		result = errorClass(sendErr)
		log.Warn("host outbox delivery failed", "reason", sendErr, "state", state)
	} else {
		log.Info("host outbox message answered", "action", result)
	}
	err = r.Store.Update(ctx, func(tx *store.Tx) error {
		if err := tx.SetOutboxState(ctx, m.ID, state, result); err != nil {
			return err
		}
		if state != store.OutboxFailed {
			return nil
		}
		_, err := tx.InsertAudit(ctx, store.AuditRecord{Kind: "host_outbox_failed", Actor: "router",
			Detail: fmt.Sprintf("%s of authorization %d to host %q not answered after %d attempts: %s",
				m.Kind, m.AuthorizationID, m.Host, attempt, result)})
		return err
	})
	if err != nil {
		return false, fmt.Errorf("record outbox message %d: %w", m.ID, err)
	}
	return sendErr == nil, nil
}

// send sends one attempt (a repeat MTI after the first) and returns the
// host's action code.
func (r *Router) send(ctx context.Context, m store.OutboxMessage, attempt int) (string, error) {
	c, err := r.Client(m.Host)
	if err != nil {
		return "", err
	}
	msg := brandspec.NewMessage("")
	if err := msg.Unpack(m.Message); err != nil {
		return "", fmt.Errorf("unpack stored %s: %w", m.Kind, err)
	}
	mti, _ := msg.GetMTI()
	if rep, ok := repeatMTI[mti]; ok && attempt > 1 {
		msg.MTI(rep)
	}
	if len(m.PANSealed) > 0 {
		if r.Sealer == nil {
			return "", errors.New("no sealer to open the stored PAN")
		}
		pan, err := r.Sealer.Open(m.PANSealed)
		if err != nil {
			return "", fmt.Errorf("open stored PAN: %w", err)
		}
		if err := msg.Field(iso93.FieldPAN, pan.Digits()); err != nil {
			return "", fmt.Errorf("set DE 2: %w", err)
		}
	}
	resp, err := c.Send(ctx, msg)
	if err != nil {
		return "", err
	}
	action, _ := resp.GetString(iso93.FieldActionCode)
	return action, nil
}

// errorClass names an error for the outbox's last_result without its text
// (which never carries card data, but may be long).
func errorClass(err error) string {
	switch {
	case errors.Is(err, ErrHostTimeout):
		return "timeout"
	case errors.Is(err, ErrHostUnavailable):
		return "unavailable"
	case errors.Is(err, ErrUnknownHost):
		return "unknown_host"
	}
	return "error"
}
