// Package farm runs many simulated JET-S terminals (package jets) at once
// as a device farm for a gateway: each on its own pseudo-terminal (the
// gateway opens the slave path like a USB tty), on its own TCP port (the
// gateway dials it), or dialling the gateway over TCP. It collects every
// transaction's outcome and latency for a summary.
package farm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/posgate/posgate/firmware-sim/jets"
	"github.com/posgate/posgate/terminal/tlink"
)

// Media a farm attaches its terminals by.
const (
	PTY       = "pty"        // a pty pair per terminal; the gateway opens the slave path
	TCPListen = "tcp-listen" // terminal i listens on Address's port + i
	TCPDial   = "tcp-dial"   // every terminal dials the gateway at Address
)

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("farm: invalid config")

// Config configures a Farm.
type Config struct {
	// Terminals configures each terminal's firmware; OnResult is set by
	// the farm (a hook given here is still called).
	Terminals []jets.Config
	// Medium is PTY, TCPListen or TCPDial. Default PTY.
	Medium string
	// Address is the first listening address (TCPListen; port 0 picks free
	// ports) or the gateway's address (TCPDial).
	Address string
	// Redial is the pause before a TCPDial terminal dials again after its
	// connection ended. Default 1s.
	Redial time.Duration
	// Logger receives attach and link events. Nil discards them.
	Logger *slog.Logger
}

// Attachment says where one terminal can be reached.
type Attachment struct {
	Serial string `json:"serial"`
	Medium string `json:"medium"`
	Path   string `json:"path,omitempty"`    // pty slave for the gateway's config
	Addr   string `json:"address,omitempty"` // listening or dialled address
}

type member struct {
	fw     *jets.Firmware
	att    Attachment
	master *os.File
	slave  *os.File
	ln     net.Listener
}

// Farm is a set of running simulated terminals. Its methods are safe for
// concurrent use.
type Farm struct {
	cfg     Config
	log     *slog.Logger
	members []*member
	start   time.Time

	mu      sync.Mutex
	reports []jets.Report
}

// New builds the terminals' firmware and opens their ptys or listeners; Run
// serves them. The caller must call Run or Close.
func New(cfg Config) (*Farm, error) {
	if cfg.Medium == "" {
		cfg.Medium = PTY
	}
	if cfg.Redial == 0 {
		cfg.Redial = time.Second
	}
	switch {
	case len(cfg.Terminals) == 0:
		return nil, fmt.Errorf("no terminals: %w", ErrConfig)
	case cfg.Medium != PTY && cfg.Medium != TCPListen && cfg.Medium != TCPDial:
		return nil, fmt.Errorf("medium %q: want pty, tcp-listen or tcp-dial: %w", cfg.Medium, ErrConfig)
	case cfg.Medium != PTY && cfg.Address == "":
		return nil, fmt.Errorf("medium %s needs an address: %w", cfg.Medium, ErrConfig)
	case cfg.Redial < 0:
		return nil, fmt.Errorf("redial %v: must not be negative: %w", cfg.Redial, ErrConfig)
	}
	f := &Farm{cfg: cfg, log: cfg.Logger, start: time.Now()}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	var host string
	var port int
	if cfg.Medium == TCPListen {
		h, p, err := net.SplitHostPort(cfg.Address)
		if err != nil {
			return nil, fmt.Errorf("address %q: %w: %w", cfg.Address, err, ErrConfig)
		}
		if port, err = strconv.Atoi(p); err != nil || port < 0 || port > 65535 {
			return nil, fmt.Errorf("address %q: bad port: %w", cfg.Address, ErrConfig)
		}
		host = h
	}
	for i, tc := range cfg.Terminals {
		hook := tc.OnResult
		tc.OnResult = func(r jets.Report) {
			f.mu.Lock()
			f.reports = append(f.reports, r)
			f.mu.Unlock()
			if hook != nil {
				hook(r)
			}
		}
		fw, err := jets.New(tc)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("terminal %d: %w", i+1, err)
		}
		m := &member{fw: fw, att: Attachment{Serial: tc.Serial, Medium: cfg.Medium}}
		if m.att.Serial == "" && tc.Terminal != nil {
			m.att.Serial = tc.Terminal.ID()
		}
		f.members = append(f.members, m)
		switch cfg.Medium {
		case PTY:
			if m.master, m.slave, m.att.Path, err = openPTY(); err != nil {
				f.Close()
				return nil, fmt.Errorf("terminal %s: %w", m.att.Serial, err)
			}
		case TCPListen:
			p := 0
			if port != 0 {
				p = port + i
			}
			if m.ln, err = net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(p))); err != nil {
				f.Close()
				return nil, fmt.Errorf("terminal %s: listen: %w", m.att.Serial, err)
			}
			m.att.Addr = m.ln.Addr().String()
		case TCPDial:
			m.att.Addr = cfg.Address
		}
	}
	return f, nil
}

// Attachments lists where each terminal is, in configuration order.
func (f *Farm) Attachments() []Attachment {
	out := make([]Attachment, len(f.members))
	for i, m := range f.members {
		out[i] = m.att
	}
	return out
}

// Firmware returns terminal i's firmware.
func (f *Farm) Firmware(i int) *jets.Firmware { return f.members[i].fw }

// Close releases the ptys and listeners. Run calls it when it returns.
func (f *Farm) Close() error {
	var errs []error
	keep := func(err error) {
		if err != nil && !errors.Is(err, os.ErrClosed) && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	for _, m := range f.members {
		if m.master != nil {
			keep(m.master.Close())
		}
		if m.slave != nil {
			keep(m.slave.Close())
		}
		if m.ln != nil {
			keep(m.ln.Close())
		}
	}
	return errors.Join(errs...)
}

// Run serves every terminal until ctx ends, then closes everything and
// returns ctx's cause. A pty terminal serves its line for the whole run; a
// tcp-listen terminal serves one gateway connection at a time; a tcp-dial
// terminal dials again Redial after its connection ends.
func (f *Farm) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, m := range f.members {
		wg.Go(func() { f.serve(ctx, m) })
	}
	<-ctx.Done()
	f.Close() // ends Accepts
	wg.Wait()
	return context.Cause(ctx)
}

func (f *Farm) serve(ctx context.Context, m *member) {
	log := f.log.With("terminal", m.att.Serial)
	switch f.cfg.Medium {
	case PTY:
		// The master is closed when Serve returns; the held slave keeps
		// the line up while the gateway reopens.
		err := m.fw.Serve(ctx, m.master)
		if ctx.Err() == nil {
			log.Warn("pty link ended", "err", err)
		}
	case TCPListen:
		for ctx.Err() == nil {
			c, err := m.ln.Accept()
			if err != nil {
				if ctx.Err() == nil {
					log.Warn("accept", "err", err)
				}
				return
			}
			log.Info("gateway connected", "from", c.RemoteAddr().String())
			err = m.fw.Serve(ctx, c)
			log.Info("gateway link ended", "err", err)
		}
	case TCPDial:
		var d net.Dialer
		for ctx.Err() == nil {
			c, err := d.DialContext(ctx, "tcp", f.cfg.Address)
			if err == nil {
				log.Info("connected to gateway", "address", f.cfg.Address)
				err = m.fw.Serve(ctx, c)
			}
			if ctx.Err() != nil {
				return
			}
			log.Warn("gateway link ended; dialling again", "err", err)
			t := time.NewTimer(f.cfg.Redial)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
		}
	}
}

// Summary is the farm's account of the transactions its terminals ran.
type Summary struct {
	Terminals    int            `json:"terminals"`
	Transactions int            `json:"transactions"`
	ByOutcome    map[string]int `json:"by_outcome"`
	ByAction     map[string]int `json:"by_action"`
	Seconds      float64        `json:"seconds"`
	// Percentiles of sale latency as the terminal saw it: from the
	// command's arrival to its result.
	P50ms float64 `json:"p50_ms"`
	P95ms float64 `json:"p95_ms"`
	P99ms float64 `json:"p99_ms"`
}

// Summary returns the counts so far.
func (f *Farm) Summary() Summary {
	f.mu.Lock()
	reps := slices.Clone(f.reports)
	f.mu.Unlock()
	s := Summary{Terminals: len(f.members), Transactions: len(reps), ByOutcome: map[string]int{}, ByAction: map[string]int{}, Seconds: time.Since(f.start).Seconds()}
	var lat []time.Duration
	for _, r := range reps {
		s.ByOutcome[r.Result.Outcome.String()]++
		if r.Result.ActionCode != "" {
			s.ByAction[r.Result.ActionCode]++
		}
		if r.Kind == tlink.KindSale {
			lat = append(lat, r.Latency)
		}
	}
	slices.Sort(lat)
	s.P50ms, s.P95ms, s.P99ms = Percentile(lat, 50), Percentile(lat, 95), Percentile(lat, 99)
	return s
}

// Percentile returns the p-th percentile (nearest rank) of sorted in
// milliseconds, 0 for none.
func Percentile(sorted []time.Duration, p int) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	if i > 0 {
		i--
	}
	return float64(sorted[i].Microseconds()) / 1000
}
