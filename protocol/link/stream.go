package link

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"time"

	"github.com/posgate/posgate/protocol/frame"
	"github.com/quic-go/quic-go"
)

// streamIO is the part of *quic.Stream that serveStream uses; tests drive
// serveStream with an in-memory stream.
type streamIO interface {
	io.Reader
	io.Writer
	Close() error
	CancelRead(quic.StreamErrorCode)
	CancelWrite(quic.StreamErrorCode)
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
	Context() context.Context
}

type streamLimits struct {
	maxMessage     int
	streamTimeout  time.Duration
	handlerTimeout time.Duration
}

// reset aborts both directions of a stream with code.
func reset(s streamIO, code quic.StreamErrorCode) {
	s.CancelRead(code)
	s.CancelWrite(code)
}

// serveStream reads one request frame, which must be followed by the end of
// the stream, calls h and writes its response as one frame. Any failure
// resets this stream only, with a logged reason and no message bytes.
func serveStream(ctx context.Context, s streamIO, h Handler, p Peer, lim streamLimits, log *slog.Logger) {
	_ = s.SetReadDeadline(time.Now().Add(lim.streamTimeout))
	req, err := readRequest(s, lim.maxMessage)
	if err != nil {
		code := StreamBadFrame
		if isTimeout(err) {
			code = StreamTimeout
		}
		if ctx.Err() == nil {
			log.Warn("link request refused", "err", err)
		}
		reset(s, code)
		return
	}

	hctx, cancel := context.WithTimeout(ctx, lim.handlerTimeout)
	defer cancel()
	// The stream's context ends when the gateway stops reading (it gave up).
	stop := context.AfterFunc(s.Context(), cancel)
	defer stop()
	resp, err := callHandler(hctx, h, p, req)
	if err == nil && len(resp) == 0 {
		err = errors.New("handler returned an empty response")
	}
	if err == nil && len(resp) > frame.MaxLen {
		err = fmt.Errorf("handler returned a response of %d bytes: %w", len(resp), frame.ErrTooLong)
	}
	if err != nil {
		log.Warn("link request failed", "err", err)
		reset(s, StreamHandlerError)
		return
	}
	_ = s.SetWriteDeadline(time.Now().Add(lim.streamTimeout))
	if err := frame.Write(s, resp); err != nil {
		if ctx.Err() == nil {
			log.Warn("link response not sent", "err", err)
		}
		reset(s, StreamTimeout)
		return
	}
	_ = s.Close()
}

// readRequest reads exactly one frame followed by the end of the stream.
func readRequest(r io.Reader, max int) ([]byte, error) {
	req, err := frame.Read(r, max)
	if err != nil {
		if err == io.EOF {
			return nil, fmt.Errorf("read request: stream ended before a frame: %w", frame.ErrTruncated)
		}
		return nil, fmt.Errorf("read request: %w", err)
	}
	var one [1]byte
	n, err := io.ReadFull(r, one[:])
	switch {
	case n > 0:
		return nil, errors.New("read request: trailing bytes after the request frame")
	case err == io.EOF:
		return req, nil
	default:
		return nil, fmt.Errorf("read request: waiting for end of stream: %w", err)
	}
}

// callHandler runs h, turning a panic into an error that names the panic's
// type (or the runtime error) but never its value, which could hold message
// bytes.
func callHandler(ctx context.Context, h Handler, p Peer, req []byte) (resp []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			resp, err = nil, fmt.Errorf("handler panic: %s", panicReason(r))
		}
	}()
	return h.ServeLink(ctx, p, req)
}

func panicReason(r any) string {
	if re, ok := r.(runtime.Error); ok {
		return re.Error()
	}
	return fmt.Sprintf("value of type %T", r)
}

func isTimeout(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne) && ne.Timeout()
}
