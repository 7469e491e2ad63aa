package tlink_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/posgate/posgate/terminal/tlink"
)

// faultyRW wraps a stream and passes every Write (the endpoint writes one
// whole frame per Write) through fault, which returns the bytes that really
// go out: the same, altered, or none. i counts Writes from 0. Faults are
// deterministic: they depend only on i and the frame.
type faultyRW struct {
	io.ReadWriteCloser
	fault func(i int, b []byte) []byte

	mu     sync.Mutex
	n      int
	writes [][]byte // what went out, for assertions
}

func (f *faultyRW) Write(b []byte) (int, error) {
	f.mu.Lock()
	i := f.n
	f.n++
	f.mu.Unlock()
	out := bytes.Clone(b)
	if f.fault != nil {
		out = f.fault(i, out)
	}
	f.mu.Lock()
	f.writes = append(f.writes, bytes.Clone(out))
	f.mu.Unlock()
	if len(out) > 0 {
		if _, err := f.ReadWriteCloser.Write(out); err != nil {
			return 0, err
		}
	}
	return len(b), nil
}

// wrote returns the frames that went out.
func (f *faultyRW) wrote() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]byte(nil), f.writes...)
}

// onFirst applies change to the first write that match selects.
func onFirst(match func([]byte) bool, change func([]byte) []byte) func(int, []byte) []byte {
	var mu sync.Mutex
	done := false
	return func(_ int, b []byte) []byte {
		mu.Lock()
		defer mu.Unlock()
		if !done && match(b) {
			done = true
			return change(b)
		}
		return b
	}
}

func isData(b []byte) bool { return len(b) > 0 && b[0] == tlink.STX }
func isAck(b []byte) bool  { return len(b) > 0 && b[0] == tlink.ACK }

// fastConfig has timers short enough for tests that wait for them.
func fastConfig() tlink.Config {
	return tlink.Config{
		AckTimeout:       100 * time.Millisecond,
		InterByteTimeout: 30 * time.Millisecond,
		ResponseTimeout:  2 * time.Second,
	}
}

// running starts Run for e and stops it at cleanup, failing the test if
// Run does not return (so no goroutine outlives the test). The returned
// function waits for Run and returns its error.
func running(t *testing.T, e *tlink.Endpoint) func() error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	wait := sync.OnceValue(func() error { return <-done })
	t.Cleanup(func() {
		cancel()
		_ = e.Close()
		returned := make(chan struct{})
		go func() { _ = wait(); close(returned) }()
		select {
		case <-returned:
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return")
		}
	})
	return wait
}

// pipePair returns two running endpoints joined by net.Pipe, each end
// wrapped in a faultyRW with the given faults (nil: none).
func pipePair(t *testing.T, cfgA, cfgB tlink.Config, faultA, faultB func(int, []byte) []byte) (a, b *tlink.Endpoint, fa, fb *faultyRW) {
	t.Helper()
	ca, cb := net.Pipe()
	fa = &faultyRW{ReadWriteCloser: ca, fault: faultA}
	fb = &faultyRW{ReadWriteCloser: cb, fault: faultB}
	a, b = tlink.New(fa, cfgA), tlink.New(fb, cfgB)
	running(t, a)
	running(t, b)
	return a, b, fa, fb
}

// waitLimit bounds every wait on a condition in these tests.
const waitLimit = 10 * time.Second

// testCtx returns a context that ends with the test or after 20s.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// rawPeer reads frames arriving at the raw end of a pipe and lets the test
// write raw bytes; its reader goroutine ends when the pipe closes and is
// waited for at cleanup.
type rawPeer struct {
	conn   net.Conn
	frames chan tlink.Frame
}

func newRawPeer(t *testing.T, conn net.Conn) *rawPeer {
	p := &rawPeer{conn: conn, frames: make(chan tlink.Frame, 64)}
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(p.frames)
		var d tlink.Decoder
		buf := make([]byte, 1024)
		for {
			n, err := conn.Read(buf)
			in := buf[:n]
			for len(in) > 0 {
				m, f, ferr := d.Next(in)
				in = in[m:]
				if ferr == nil && f.Type != 0 {
					f.Payload = bytes.Clone(f.Payload)
					p.frames <- f
				}
			}
			if err != nil {
				return
			}
		}
	})
	t.Cleanup(func() {
		_ = conn.Close()
		wg.Wait()
	})
	return p
}

// next returns the next frame of type typ the raw peer received, skipping
// others.
func (p *rawPeer) next(t *testing.T, typ tlink.FrameType) tlink.Frame {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case f, ok := <-p.frames:
			if !ok {
				t.Fatalf("raw peer: stream closed waiting for %v", typ)
			}
			if f.Type == typ {
				return f
			}
		case <-timeout:
			t.Fatalf("raw peer: no %v frame", typ)
		}
	}
}

func (p *rawPeer) write(t *testing.T, b []byte) {
	t.Helper()
	if _, err := p.conn.Write(b); err != nil {
		t.Fatalf("raw peer write: %v", err)
	}
}

// mustMarshal encodes a payload or fails the test.
func mustMarshal(t testing.TB, m interface{ MarshalBinary() ([]byte, error) }) []byte {
	t.Helper()
	b, err := m.MarshalBinary()
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return b
}

// isClosed reports whether err says the endpoint stopped.
func isClosed(err error) bool { return errors.Is(err, tlink.ErrClosed) }
