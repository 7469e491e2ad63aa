package forward

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"

	"github.com/posgate/posgate/protocol/frame"
)

// TerminalServer accepts terminal TCP connections carrying length-framed
// ISO 8583:1993 messages and answers each through the Forwarder. Requests on
// one connection are handled concurrently; answers are written whole.
type TerminalServer struct {
	Forwarder *Forwarder
	Logger    *slog.Logger
	// MaxFrame bounds an incoming message. Zero means 8 KiB.
	MaxFrame int
}

// Serve accepts connections on l until ctx is done. Serve always returns a
// non-nil error and closes l; it waits for every connection it started.
func (s *TerminalServer) Serve(ctx context.Context, l net.Listener) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	defer l.Close()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("accept terminal connection: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveConn(ctx, c)
		}()
	}
}

func (s *TerminalServer) serveConn(ctx context.Context, c net.Conn) {
	log := s.Logger.With("remote", c.RemoteAddr().String())
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	defer c.Close()
	defer func() {
		if r := recover(); r != nil {
			log.Error("terminal connection dropped after an internal error", "panic", fmt.Sprint(r))
		}
	}()
	max := s.MaxFrame
	if max <= 0 {
		max = 8 << 10
	}
	var (
		wmu sync.Mutex
		wg  sync.WaitGroup
	)
	defer wg.Wait()
	for {
		raw, err := frame.Read(c, max)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.EOF) {
				log.Warn("terminal connection closed", "reason", err)
			}
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if r := recover(); r != nil {
					log.Error("terminal request dropped after an internal error", "panic", fmt.Sprint(r))
					cancel()
				}
			}()
			resp, err := s.Forwarder.Handle(ctx, raw)
			if err != nil {
				log.Warn("closing terminal connection", "reason", err)
				cancel()
				return
			}
			wmu.Lock()
			err = frame.Write(c, resp)
			wmu.Unlock()
			if err != nil {
				log.Warn("write to terminal failed", "reason", err)
				cancel()
			}
		}()
	}
}
