package tlink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Message is one delivered data frame.
type Message struct {
	Kind    Kind
	Seq     uint8  // the sequence number it arrived with
	Payload []byte // owned by the receiver
}

// Stats counts link events since New. All counters only grow.
type Stats struct {
	FramesSent     uint64 // data frames written, retransmissions included
	FramesReceived uint64 // data frames delivered (duplicates excluded)
	Retransmits    uint64 // retransmissions after NAK or ack timeout
	Duplicates     uint64 // retransmitted frames ACKed again and not delivered
	Dropped        uint64 // frames dropped: bad check, length, escape, aborted, too long
	Overflows      uint64 // frames left unacknowledged because the receive queue was full
}

// Endpoint is one end of a terminal link over a byte stream: a serial port,
// a pty, a TCP connection. It frames, acknowledges and retransmits; it
// suppresses duplicates; it matches responses to requests. Run must be
// running for Send, Receive and Request to make progress. An Endpoint is
// safe for concurrent use; data frames are sent one at a time
// (stop-and-wait), so concurrent Sends queue.
type Endpoint struct {
	rw     io.ReadWriteCloser
	cfg    Config
	cfgErr error
	log    *slog.Logger

	slot     chan struct{} // stop-and-wait: holds a token while a data frame is in flight
	ctrlQ    chan []byte   // ACK and NAK frames for the writer
	dataQ    chan *writeReq
	inbox    chan Message
	closeReq chan struct{} // closed by Close
	done     chan struct{} // closed when the endpoint has stopped
	runDone  chan struct{} // closed when Run returns

	closeOnce sync.Once
	doneOnce  sync.Once
	queryID   atomic.Uint32

	nSent, nRecv, nRetx, nDup, nDrop, nOver atomic.Uint64

	mu         sync.Mutex
	started    bool
	closed     bool
	stopErr    error
	seq        uint8
	inflight   *inflight
	waiters    []*waiter
	unresolved bool
	unresRef   string

	// Owned by Run's loop goroutine.
	lastSeq   uint8
	lastCheck uint16
	lastAt    time.Time
	haveLast  bool
}

type inflight struct {
	seq uint8
	ev  chan FrameType // ACK or NAK for seq; buffered 1
}

type waiter struct {
	kind Kind
	ref  string
	ch   chan Message // buffered 1; sent to at most once
}

type writeReq struct {
	b    []byte
	done chan error // buffered 1
}

// New returns an endpoint over rw with cfg (zero fields take defaults). The
// endpoint owns rw from now on and closes it when it stops. New starts
// nothing; an invalid cfg makes Run fail with the Validate error.
func New(rw io.ReadWriteCloser, cfg Config) *Endpoint {
	e := &Endpoint{
		rw:       rw,
		cfgErr:   cfg.Validate(),
		cfg:      cfg.withDefaults(),
		slot:     make(chan struct{}, 1),
		ctrlQ:    make(chan []byte, 64),
		dataQ:    make(chan *writeReq),
		closeReq: make(chan struct{}),
		done:     make(chan struct{}),
		runDone:  make(chan struct{}),
	}
	e.log = e.cfg.Logger
	if e.cfg.ReceiveQueue > 0 && e.cfg.ReceiveQueue <= 4096 {
		e.inbox = make(chan Message, e.cfg.ReceiveQueue)
	} else {
		e.inbox = make(chan Message, DefaultReceiveQueue)
	}
	return e
}

// Stats returns a snapshot of the endpoint's counters.
func (e *Endpoint) Stats() Stats {
	return Stats{
		FramesSent: e.nSent.Load(), FramesReceived: e.nRecv.Load(), Retransmits: e.nRetx.Load(),
		Duplicates: e.nDup.Load(), Dropped: e.nDrop.Load(), Overflows: e.nOver.Load(),
	}
}

// Run reads and writes the link until ctx ends, Close is called or the
// transport fails, then closes the transport, waits for its reader and
// writer goroutines and returns. It always returns a non-nil error: the
// configuration error, ErrClosed after Close, ctx's cause, or the wrapped
// transport error (io.EOF, EIO … when the cable is pulled). Every blocked or
// later call on the endpoint then fails with an error wrapping ErrClosed
// and that cause. Run may be called once.
func (e *Endpoint) Run(ctx context.Context) error {
	e.mu.Lock()
	switch {
	case e.closed:
		e.mu.Unlock()
		return ErrClosed
	case e.started:
		e.mu.Unlock()
		return ErrRunning
	}
	e.started = true
	e.mu.Unlock()
	defer close(e.runDone)

	if e.cfgErr != nil {
		e.stop(e.cfgErr)
		_ = e.rw.Close()
		return e.cfgErr
	}

	rx := make(chan []byte)
	rxErr := make(chan error, 1)
	wErr := make(chan error, 1)
	stopIO := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { e.readLoop(rx, rxErr, stopIO) })
	wg.Go(func() { e.writeLoop(wErr, stopIO) })

	cause := e.loop(ctx, rx, rxErr, wErr)
	e.stop(cause)
	close(stopIO)
	_ = e.rw.Close()
	wg.Wait()
	return cause
}

// stop records why the endpoint stopped and wakes every waiting call.
func (e *Endpoint) stop(cause error) {
	e.doneOnce.Do(func() {
		e.mu.Lock()
		if errors.Is(cause, ErrClosed) {
			e.stopErr = cause
		} else {
			e.stopErr = fmt.Errorf("%w: %w", ErrClosed, cause)
		}
		e.mu.Unlock()
		close(e.done)
	})
}

// closedErr returns the error calls fail with after the endpoint stopped.
func (e *Endpoint) closedErr() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopErr == nil {
		return ErrClosed
	}
	return e.stopErr
}

// Close stops the endpoint, closes the transport and, if Run is running,
// waits for it to return. It is safe to call more than once and returns nil.
func (e *Endpoint) Close() error {
	e.mu.Lock()
	started := e.started
	e.closed = true
	e.mu.Unlock()
	e.closeOnce.Do(func() { close(e.closeReq) })
	if started {
		<-e.runDone
		return nil
	}
	e.doneOnce.Do(func() {
		e.mu.Lock()
		e.stopErr = ErrClosed
		e.mu.Unlock()
		close(e.done)
		_ = e.rw.Close()
	})
	return nil
}

// readLoop copies transport reads to rx until a read fails or stop closes.
func (e *Endpoint) readLoop(rx chan<- []byte, rxErr chan<- error, stop <-chan struct{}) {
	buf := make([]byte, 4096)
	for {
		n, err := e.rw.Read(buf)
		if n > 0 {
			select {
			case rx <- slices.Clone(buf[:n]):
			case <-stop:
				return
			}
		}
		if err != nil {
			rxErr <- err
			return
		}
	}
}

// writeLoop writes queued frames, control frames first, until a write fails
// or stop closes.
func (e *Endpoint) writeLoop(wErr chan<- error, stop <-chan struct{}) {
	for {
		var b []byte
		var req *writeReq
		select {
		case b = <-e.ctrlQ:
		default:
			select {
			case b = <-e.ctrlQ:
			case req = <-e.dataQ:
				b = req.b
			case <-stop:
				return
			}
		}
		_, err := e.rw.Write(b)
		if req != nil {
			req.done <- err
		}
		if err != nil {
			wErr <- err
			return
		}
	}
}

// loop is the receive state machine; it returns why the endpoint stops.
func (e *Endpoint) loop(ctx context.Context, rx <-chan []byte, rxErr, wErr <-chan error) error {
	dec := Decoder{Limit: e.cfg.MaxPayload}
	ibt := time.NewTimer(time.Hour)
	ibt.Stop()
	defer ibt.Stop()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("terminal link stopped: %w", context.Cause(ctx))
		case <-e.closeReq:
			return ErrClosed
		case err := <-rxErr:
			return fmt.Errorf("read terminal link: %w", err)
		case err := <-wErr:
			return fmt.Errorf("write terminal link: %w", err)
		case <-ibt.C:
			if err := dec.Reset(); err != nil {
				e.frameError(fmt.Errorf("inter-byte timeout: %w", err))
			}
		case p := <-rx:
			for len(p) > 0 {
				n, f, err := dec.Next(p)
				p = p[n:]
				switch {
				case err != nil:
					e.frameError(err)
				case f.Type != 0:
					e.frame(f)
				}
			}
			if dec.InFrame() {
				ibt.Reset(e.cfg.InterByteTimeout)
			} else {
				ibt.Stop()
			}
		}
	}
}

// frameError counts and logs a dropped frame and NAKs it when its sequence
// number is known.
func (e *Endpoint) frameError(err error) {
	e.nDrop.Add(1)
	e.log.Warn("terminal link: dropped frame", "err", err)
	var fe *FrameError
	if errors.As(err, &fe) && fe.HaveSeq {
		e.control(Frame{Type: FrameNak, Seq: fe.Seq})
	}
}

// control queues an ACK or NAK; when the writer is backed up it is dropped
// and the peer's retransmission gets another.
func (e *Endpoint) control(f Frame) {
	b, _ := AppendFrame(make([]byte, 0, 3), f)
	select {
	case e.ctrlQ <- b:
	default:
		e.log.Warn("terminal link: control queue full, dropped", "type", f.Type, "seq", f.Seq)
	}
}

// frame handles one decoded frame.
func (e *Endpoint) frame(f Frame) {
	if f.Type != FrameData {
		e.mu.Lock()
		if in := e.inflight; in != nil && in.seq == f.Seq {
			select {
			case in.ev <- f.Type:
			default:
			}
		}
		e.mu.Unlock()
		return
	}
	check := frameCheck(f)
	now := time.Now()
	if e.haveLast && f.Seq == e.lastSeq && check == e.lastCheck && now.Sub(e.lastAt) < e.cfg.DuplicateWindow {
		e.nDup.Add(1)
		e.lastAt = now
		e.log.Debug("terminal link: duplicate frame acknowledged again", "seq", f.Seq, "kind", f.Kind)
		e.control(Frame{Type: FrameAck, Seq: f.Seq})
		return
	}
	m := Message{Kind: f.Kind, Seq: f.Seq, Payload: slices.Clone(f.Payload)}
	if m.Payload == nil {
		m.Payload = []byte{}
	}
	if !e.deliver(m) {
		e.nOver.Add(1)
		e.log.Warn("terminal link: receive queue full, frame left unacknowledged", "seq", f.Seq, "kind", f.Kind)
		return
	}
	e.nRecv.Add(1)
	e.haveLast, e.lastSeq, e.lastCheck, e.lastAt = true, f.Seq, check, now
	e.control(Frame{Type: FrameAck, Seq: f.Seq})
}

// deliver hands m to the Request waiting for it, or else to the receive
// queue; it reports false when the queue is full.
func (e *Endpoint) deliver(m Message) bool {
	e.mu.Lock()
	ref, haveRef := "", false
	for i, w := range e.waiters {
		if w.kind != m.Kind {
			continue
		}
		if w.ref != "" {
			if !haveRef {
				ref, haveRef = refOf(m.Kind, m.Payload), true
			}
			if ref != w.ref {
				continue
			}
		}
		e.waiters = slices.Delete(e.waiters, i, i+1)
		// Under the lock, so that a Request withdrawing its waiter either
		// still finds it here or finds m in its channel (buffered 1, sent
		// to once: this never blocks).
		w.ch <- m
		e.mu.Unlock()
		return true
	}
	e.mu.Unlock()
	select {
	case e.inbox <- m:
		return true
	default:
		return false
	}
}

// ackTimeout returns the ack timeout for a frame of n wire bytes.
func (e *Endpoint) ackTimeout(n int) time.Duration {
	d := e.cfg.AckTimeout
	if e.cfg.BitRate > 0 {
		d += time.Duration(n) * 10 * time.Second / time.Duration(e.cfg.BitRate)
	}
	return d
}

// Send sends one message and returns when the peer has acknowledged it. It
// retransmits on NAK or ack timeout up to MaxRetries times and then fails
// with ErrNoAck; it also fails with ctx's error, ErrClosed, ErrTooLong for
// a payload over MaxPayload, and ErrUnresolved for a transaction command
// while an earlier one's outcome is unknown. Send does not validate the
// payload against its kind. When a transaction command fails after its
// frame may have reached the peer, the endpoint becomes unresolved (see
// LastTransaction).
func (e *Endpoint) Send(ctx context.Context, k Kind, payload []byte) error {
	if len(payload) > e.cfg.MaxPayload {
		return fmt.Errorf("send %v: %d-byte payload, limit %d: %w", k, len(payload), e.cfg.MaxPayload, ErrTooLong)
	}
	select {
	case e.slot <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("send %v: %w", k, context.Cause(ctx))
	case <-e.done:
		return fmt.Errorf("send %v: %w", k, e.closedErr())
	}
	defer func() { <-e.slot }()

	e.mu.Lock()
	if IsTxnCommand(k) && e.unresolved {
		ref := e.unresRef
		e.mu.Unlock()
		return fmt.Errorf("send %v: outcome of %q unknown: %w", k, ref, ErrUnresolved)
	}
	seq := e.seq
	e.seq++
	in := &inflight{seq: seq, ev: make(chan FrameType, 1)}
	e.inflight = in
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		e.inflight = nil
		e.mu.Unlock()
	}()

	b, err := AppendFrame(nil, Frame{Type: FrameData, Seq: seq, Kind: k, Payload: payload})
	if err != nil {
		return fmt.Errorf("send %v: %w", k, err)
	}
	sent, err := e.transmit(ctx, in, b)
	if err != nil {
		if sent && IsTxnCommand(k) {
			e.markUnresolved(k, payload)
		}
		return fmt.Errorf("send %v seq %d: %w", k, seq, err)
	}
	return nil
}

// transmit writes b and waits for its ACK, retransmitting as configured.
// sent reports whether b was handed to the writer at least once.
func (e *Endpoint) transmit(ctx context.Context, in *inflight, b []byte) (sent bool, err error) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for attempt := 0; attempt <= e.cfg.MaxRetries; attempt++ {
		if attempt > 0 {
			e.nRetx.Add(1)
			e.log.Info("terminal link: retransmitting", "seq", in.seq, "attempt", attempt)
		}
		req := &writeReq{b: b, done: make(chan error, 1)}
		select {
		case e.dataQ <- req:
		case <-ctx.Done():
			return sent, context.Cause(ctx)
		case <-e.done:
			return sent, e.closedErr()
		}
		sent = true
		e.nSent.Add(1)
		select {
		case err := <-req.done:
			if err != nil {
				return sent, fmt.Errorf("write frame: %w", err)
			}
		case <-ctx.Done():
			return sent, context.Cause(ctx)
		case <-e.done:
			return sent, e.closedErr()
		}
		timer.Reset(e.ackTimeout(len(b)))
		select {
		case t := <-in.ev:
			timer.Stop()
			if t == FrameAck {
				return sent, nil
			}
		case <-timer.C:
		case <-ctx.Done():
			return sent, context.Cause(ctx)
		case <-e.done:
			return sent, e.closedErr()
		}
	}
	return sent, fmt.Errorf("after %d retransmissions: %w", e.cfg.MaxRetries, ErrNoAck)
}

// markUnresolved records that a transaction command's outcome is unknown.
func (e *Endpoint) markUnresolved(k Kind, payload []byte) {
	ref := refOf(k, payload)
	if ref == "" {
		ref = "(no ref)"
	}
	e.mu.Lock()
	e.unresolved, e.unresRef = true, ref
	e.mu.Unlock()
}

// Unresolved reports whether a transaction command's outcome is unknown
// (its acknowledgement or result was lost), and that command's Ref. While
// it is, Send and Request refuse transaction commands with ErrUnresolved;
// LastTransaction resolves it.
func (e *Endpoint) Unresolved() (ref string, ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.unresRef, e.unresolved
}

// Receive returns the next message that no Request claimed, in arrival
// order. Messages already received are still returned after the endpoint
// stopped; then it fails with ErrClosed. It fails with ctx's error when ctx
// ends first.
func (e *Endpoint) Receive(ctx context.Context) (Message, error) {
	select {
	case m := <-e.inbox:
		return m, nil
	default:
	}
	select {
	case m := <-e.inbox:
		return m, nil
	case <-ctx.Done():
		return Message{}, fmt.Errorf("receive: %w", context.Cause(ctx))
	case <-e.done:
		select {
		case m := <-e.inbox:
			return m, nil
		default:
			return Message{}, fmt.Errorf("receive: %w", e.closedErr())
		}
	}
}

// Request sends a message of kind k and waits for the response kind
// (ResponseKind) within ResponseTimeout after the acknowledgement. When the
// request payload carries a Ref (tag 0x01), only a response echoing it
// matches; a response that matches no Request goes to Receive. It fails
// with ErrNotRequest for a kind without a response, with Send's errors, and
// with ErrNoResponse, ctx's error or ErrClosed while waiting; for a
// transaction command those failures make the endpoint unresolved.
func (e *Endpoint) Request(ctx context.Context, k Kind, payload []byte) (Message, error) {
	rk, ok := ResponseKind(k)
	if !ok {
		return Message{}, fmt.Errorf("request %v: %w", k, ErrNotRequest)
	}
	w := &waiter{kind: rk, ref: refOf(k, payload), ch: make(chan Message, 1)}
	e.mu.Lock()
	e.waiters = append(e.waiters, w)
	e.mu.Unlock()

	err := e.Send(ctx, k, payload)
	acked := err == nil
	if acked {
		timer := time.NewTimer(e.cfg.ResponseTimeout)
		select {
		case m := <-w.ch:
			timer.Stop()
			return m, nil
		case <-timer.C:
			err = fmt.Errorf("request %v: after %v: %w", k, e.cfg.ResponseTimeout, ErrNoResponse)
		case <-ctx.Done():
			err = fmt.Errorf("request %v: %w", k, context.Cause(ctx))
		case <-e.done:
			err = fmt.Errorf("request %v: %w", k, e.closedErr())
		}
		timer.Stop()
	}
	// Withdraw the waiter; a response delivered meanwhile still counts.
	e.mu.Lock()
	if i := slices.Index(e.waiters, w); i >= 0 {
		e.waiters = slices.Delete(e.waiters, i, i+1)
	}
	e.mu.Unlock()
	select {
	case m := <-w.ch:
		return m, nil
	default:
	}
	if acked && IsTxnCommand(k) {
		// The terminal has the command; its outcome is unknown. (A failed
		// Send has already marked the endpoint when the frame went out.)
		e.markUnresolved(k, payload)
	}
	return Message{}, err
}

// LastTransaction asks the peer (a terminal) for its last transaction and
// returns its answer. This is the step that must come after any lost
// acknowledgement or result of a transaction command, before anything is
// retried: a sale is never blindly resent. When the answer shows no
// transaction in progress (none at all, or one with a final outcome), the
// endpoint is no longer unresolved; while the last transaction is still
// OutcomePending it stays unresolved.
func (e *Endpoint) LastTransaction(ctx context.Context) (LastTxn, error) {
	q := RefOnly{Ref: fmt.Sprintf("ltq-%08x", e.queryID.Add(1))}
	p, err := q.MarshalBinary()
	if err != nil {
		return LastTxn{}, fmt.Errorf("last transaction: %w", err)
	}
	m, err := e.Request(ctx, KindLastTxnQuery, p)
	if err != nil {
		return LastTxn{}, fmt.Errorf("last transaction: %w", err)
	}
	var lt LastTxn
	if err := lt.UnmarshalBinary(m.Payload); err != nil {
		return LastTxn{}, fmt.Errorf("last transaction: %w", err)
	}
	if lt.Txn == nil || lt.Txn.Outcome != OutcomePending {
		e.mu.Lock()
		e.unresolved, e.unresRef = false, ""
		e.mu.Unlock()
	}
	return lt, nil
}
