package link_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
)

// memNet is an in-memory datagram network for tests that run the link
// inside a testing/synctest bubble, where real sockets cannot be used: a
// goroutine blocked on a socket is not durably blocked, so the bubble's
// clock would never move. Datagrams are delivered through channels, whole
// and in order; like UDP, a datagram to nobody or to a full queue is lost.
type memNet struct {
	mu    sync.Mutex
	conns map[string]*memConn
	next  int
}

func newMemNet() *memNet { return &memNet{conns: map[string]*memConn{}} }

// listen opens a conn on addr ("" picks a fresh one).
func (n *memNet) listen(addr string) (*memConn, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if addr == "" || addr == "127.0.0.1:0" {
		n.next++
		addr = fmt.Sprintf("127.0.0.1:%d", 40000+n.next)
	}
	if _, ok := n.conns[addr]; ok {
		return nil, fmt.Errorf("memnet: %s in use", addr)
	}
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	c := &memConn{net: n, addr: ua, in: make(chan memPacket, 256), closed: make(chan struct{})}
	n.conns[addr] = c
	return c, nil
}

// ListenPacket is a link.ServerConfig.ListenPacket on n.
func (n *memNet) ListenPacket(_, addr string) (net.PacketConn, error) { return n.listen(addr) }

// Dial is a link.ClientConfig.Dial on n: a fresh local conn per dial,
// closed with the connection.
func (n *memNet) Dial(ctx context.Context, addr string, tlsConf *tls.Config, conf *quic.Config) (*quic.Conn, error) {
	pc, err := n.listen("")
	if err != nil {
		return nil, err
	}
	ra, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		pc.Close()
		return nil, err
	}
	tr := &quic.Transport{Conn: pc}
	conn, err := tr.Dial(ctx, ra, tlsConf, conf)
	if err != nil {
		tr.Close()
		pc.Close()
		return nil, err
	}
	// Owned by the connection: it ends when the connection does (the
	// client closes every connection it dials).
	go func() {
		<-conn.Context().Done()
		tr.Close()
		pc.Close()
	}()
	return conn, nil
}

type memPacket struct {
	b    []byte
	from net.Addr
}

type memConn struct {
	net       *memNet
	addr      *net.UDPAddr
	in        chan memPacket
	closeOnce sync.Once
	closed    chan struct{}

	mu       sync.Mutex
	deadline time.Time
	dlChange chan struct{}
}

func (c *memConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		c.mu.Lock()
		dl := c.deadline
		if c.dlChange == nil {
			c.dlChange = make(chan struct{})
		}
		changed := c.dlChange
		c.mu.Unlock()
		var timeout <-chan time.Time
		var tm *time.Timer
		if !dl.IsZero() {
			d := time.Until(dl)
			if d <= 0 {
				return 0, nil, os.ErrDeadlineExceeded
			}
			tm = time.NewTimer(d)
			timeout = tm.C
		}
		select {
		case pk := <-c.in:
			stop(tm)
			return copy(p, pk.b), pk.from, nil
		case <-c.closed:
			stop(tm)
			return 0, nil, net.ErrClosed
		case <-timeout:
			return 0, nil, os.ErrDeadlineExceeded
		case <-changed: // a new deadline: wait again under it
			stop(tm)
		}
	}
}

func stop(tm *time.Timer) {
	if tm != nil {
		tm.Stop()
	}
}

func (c *memConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	select {
	case <-c.closed:
		return 0, net.ErrClosed
	default:
	}
	c.net.mu.Lock()
	dst := c.net.conns[addr.String()]
	c.net.mu.Unlock()
	if dst == nil {
		return len(p), nil // nobody there: the datagram is lost, as on UDP
	}
	select {
	case dst.in <- memPacket{b: append([]byte(nil), p...), from: c.addr}:
	case <-dst.closed:
	default: // queue full: dropped, as on UDP
	}
	return len(p), nil
}

func (c *memConn) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		c.net.mu.Lock()
		if c.net.conns[c.addr.String()] == c {
			delete(c.net.conns, c.addr.String())
		}
		c.net.mu.Unlock()
	})
	return nil
}

func (c *memConn) LocalAddr() net.Addr { return c.addr }

func (c *memConn) SetDeadline(t time.Time) error { return c.SetReadDeadline(t) }

func (c *memConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	if c.dlChange != nil {
		close(c.dlChange)
		c.dlChange = nil
	}
	c.mu.Unlock()
	return nil
}

func (c *memConn) SetWriteDeadline(time.Time) error { return nil }

// SetReadBuffer and SetWriteBuffer accept any size: quic-go asks for
// bigger socket buffers, which a channel does not need.
func (c *memConn) SetReadBuffer(int) error  { return nil }
func (c *memConn) SetWriteBuffer(int) error { return nil }
