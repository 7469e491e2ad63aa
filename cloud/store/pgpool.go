package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgPool is a bounded pool of PostgreSQL connections. (pgx's own pool needs
// a module this project does not require; this one is all the store needs.)
// It is safe for concurrent use; no lock is held while dialling or closing.
type pgPool struct {
	cfg *pgx.ConnConfig
	sem chan struct{} // one token per connection in use or being dialled

	mu     sync.Mutex
	idle   []*pgx.Conn
	closed bool
}

func newPGPool(dsn string, max int) (*pgPool, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgx errors may echo the DSN (and its password): keep only a fixed text.
		return nil, fmt.Errorf("%w: DSN: cannot be parsed", ErrBadConfig)
	}
	return &pgPool{cfg: cfg, sem: make(chan struct{}, max)}, nil
}

// acquire returns a connection, dialling one if none is idle and the pool
// has room, else waiting for one to be released or for ctx to end.
func (p *pgPool) acquire(ctx context.Context) (*pgx.Conn, error) {
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			<-p.sem
			return nil, ErrClosed
		}
		n := len(p.idle)
		if n == 0 {
			p.mu.Unlock()
			break
		}
		c := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		if !c.IsClosed() {
			return c, nil
		}
	}
	c, err := pgx.ConnectConfig(ctx, p.cfg)
	if err != nil {
		<-p.sem
		return nil, fmt.Errorf("connect to postgres: %w", err)
	}
	return c, nil
}

// release gives c back, or closes it when broken or the pool is closed.
func (p *pgPool) release(c *pgx.Conn, broken bool) {
	p.mu.Lock()
	keep := !p.closed && !broken && !c.IsClosed()
	if keep {
		p.idle = append(p.idle, c)
	}
	p.mu.Unlock()
	if !keep {
		closeConn(c)
	}
	<-p.sem
}

// close closes idle connections; connections in use close on release.
func (p *pgPool) close() error {
	p.mu.Lock()
	p.closed = true
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	var err error
	for _, c := range idle {
		err = errors.Join(err, closeConn(c))
	}
	return err
}

func closeConn(c *pgx.Conn) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.Close(ctx)
}
