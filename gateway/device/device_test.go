package device_test

import (
	"context"
	"errors"
	"github.com/posgate/posgate/internal/poll"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/posgate/posgate/gateway/device"
	"github.com/posgate/posgate/gateway/device/devicetest"
	"github.com/posgate/posgate/gateway/forward"
	"github.com/posgate/posgate/terminal/ptytest"
	"github.com/posgate/posgate/terminal/tlink"
	"github.com/posgate/posgate/terminal/transport"
)

// waitLimit bounds a test's wait on a condition (poll.Until).
const waitLimit = 10 * time.Second

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func forwarder() *forward.Forwarder {
	return &forward.Forwarder{Uplink: devicetest.UplinkFunc(devicetest.Approve), Logger: quiet()}
}

// start runs m until the test ends.
func start(t *testing.T, m *device.Manager) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
	})
}

func connected(m *device.Manager, id string) func() bool {
	return func() bool {
		s, ok := m.Device(id)
		return ok && s.Connected && s.Health == device.HealthUp
	}
}

func TestSaleOverPTY(t *testing.T) {
	master, slave := ptytest.Open(t)
	term := &devicetest.Terminal{Serial: "PTY0001"}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- term.Serve(ctx, master, tlink.Config{}) }()
	t.Cleanup(func() { cancel(); <-served })

	reg := prometheus.NewRegistry()
	var mu sync.Mutex
	var pushed []device.TxnResult
	m, err := device.New(device.Config{
		Devices: []device.DeviceConfig{{ID: "T1", DeviceConfig: transport.DeviceConfig{
			Medium: transport.USBACM, Path: slave, Baud: 115200,
		}}},
		Handler:    forwarder(),
		Registerer: reg,
		Logger:     quiet(),
		OnResult: func(r device.TxnResult) {
			mu.Lock()
			pushed = append(pushed, r)
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	start(t, m)
	poll.Until(t, waitLimit, "T1 up", connected(m, "T1"))

	snap, _ := m.Device("T1")
	if snap.Serial != "PTY0001" || snap.State != "idle" || snap.Model != "FAKE-1" || snap.Medium != transport.USBACM {
		t.Fatalf("snapshot %+v", snap)
	}
	if got := healthGauge(t, reg, "T1"); got != 2 {
		t.Fatalf("health gauge %v, want 2", got)
	}

	tests := []struct {
		name   string
		amount uint64
		ref    string
	}{
		{"first_sale", 1000, "S1"},
		{"second_sale_same_link", 250, "S2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := m.Sale(t.Context(), "T1", tt.amount, "392", tt.ref)
			if err != nil {
				t.Fatal(err)
			}
			want := device.TxnResult{
				DeviceID: "T1", Ref: tt.ref, Command: tlink.KindSale, Outcome: device.OutcomeApproved,
				Amount: tt.amount, Currency: "392", ActionCode: "000", ApprovalCode: "A1B2C3",
				STAN: r.STAN, Time: "20260101120000", MaskedPAN: "411111******1111", ResolvedBy: device.ResolvedByResult,
			}
			if r != want {
				t.Fatalf("result\n got %+v\nwant %+v", r, want)
			}
		})
	}
	mu.Lock()
	defer mu.Unlock()
	if len(pushed) != 2 || pushed[0].Ref != "S1" || pushed[1].Ref != "S2" {
		t.Fatalf("OnResult got %d results", len(pushed))
	}
}

func healthGauge(t *testing.T, reg *prometheus.Registry, id string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "posgate_device_health" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			for _, l := range mt.GetLabel() {
				if l.GetName() == "device" && l.GetValue() == id {
					return mt.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("no posgate_device_health for %s", id)
	return 0
}

func TestCablePulledMidSaleResolvedAfterReopen(t *testing.T) {
	pulled := make(chan struct{})
	var once sync.Once
	term := &devicetest.Terminal{Serial: "TCP0001", BeforeResult: func(ref string) bool {
		if ref != "LOST1" {
			return true
		}
		once.Do(func() { close(pulled) })
		return false // the result never leaves: the cable is pulled now
	}}
	fake := devicetest.NewPlug(t, term)
	m, err := device.New(device.Config{
		Devices: []device.DeviceConfig{{ID: "T2", DeviceConfig: transport.DeviceConfig{
			Medium: transport.TCP, Address: fake.Addr,
		}}},
		Handler:        forwarder(),
		Logger:         quiet(),
		ReconnectMin:   5 * time.Millisecond,
		ReconnectMax:   50 * time.Millisecond,
		ResolveTimeout: 30 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	start(t, m)
	poll.Until(t, waitLimit, "T2 up", connected(m, "T2"))

	type outcome struct {
		r   device.TxnResult
		err error
	}
	got := make(chan outcome, 1)
	go func() {
		r, err := m.Sale(context.Background(), "T2", 1200, "392", "LOST1")
		got <- outcome{r, err}
	}()
	<-pulled
	fake.Pull()
	poll.Until(t, waitLimit, "T2 down", func() bool { s, _ := m.Device("T2"); return !s.Connected })
	if s, _ := m.Device("T2"); s.Unresolved != "LOST1" {
		t.Fatalf("unresolved %q while the link is down, want LOST1", s.Unresolved)
	}
	if _, err := m.Sale(t.Context(), "T2", 1, "392", "OTHER"); !errors.Is(err, device.ErrUnresolved) && !errors.Is(err, device.ErrNotConnected) {
		t.Fatalf("second sale while unresolved: %v", err)
	}
	fake.PlugIn() // the terminal is plugged back in

	o := <-got
	if o.err != nil {
		t.Fatalf("sale: %v", o.err)
	}
	if o.r.Outcome != device.OutcomeApproved || o.r.ResolvedBy != device.ResolvedByQuery || o.r.ApprovalCode != "A1B2C3" || o.r.MaskedPAN != "411111******1111" {
		t.Fatalf("resolved result %+v", o.r)
	}
	if cmds := term.Commands(); len(cmds) != 1 {
		t.Fatalf("terminal saw %d commands %v, want exactly one: a sale is never resent", len(cmds), cmds)
	}
	poll.Until(t, waitLimit, "T2 up again", connected(m, "T2"))
	if s, _ := m.Device("T2"); s.Reconnects < 1 || s.Unresolved != "" {
		t.Fatalf("snapshot after reopen %+v", s)
	}
	r, err := m.Sale(t.Context(), "T2", 500, "392", "AFTER1")
	if err != nil || r.Outcome != device.OutcomeApproved {
		t.Fatalf("sale after reopen: %+v, %v", r, err)
	}
}

func TestLostResultResolvedOnSameLink(t *testing.T) {
	term := &devicetest.Terminal{BeforeResult: func(string) bool { return false }}
	fake := devicetest.NewPlug(t, term)
	m, err := device.New(device.Config{
		Devices:         []device.DeviceConfig{{ID: "T3", DeviceConfig: transport.DeviceConfig{Medium: transport.TCP, Address: fake.Addr}}},
		Handler:         forwarder(),
		Logger:          quiet(),
		ResponseTimeout: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	start(t, m)
	poll.Until(t, waitLimit, "T3 up", connected(m, "T3"))
	r, err := m.Sale(t.Context(), "T3", 700, "392", "NORES1")
	if err != nil {
		t.Fatal(err)
	}
	if r.Outcome != device.OutcomeApproved || r.ResolvedBy != device.ResolvedByQuery {
		t.Fatalf("result %+v", r)
	}
	if s, _ := m.Device("T3"); !s.Connected || s.Reconnects != 0 {
		t.Fatalf("the link should have stayed up: %+v", s)
	}
}

func TestHotAttach(t *testing.T) {
	m, err := device.New(device.Config{
		AttachListen: "127.0.0.1:0",
		Handler:      forwarder(),
		Logger:       quiet(),
	})
	if err != nil {
		t.Fatal(err)
	}
	start(t, m)
	poll.Until(t, waitLimit, "attach listener", func() bool { return m.AttachAddr() != nil })
	if _, ok := m.Device("HOT1"); ok {
		t.Fatal("device exists before it attached")
	}
	term := &devicetest.Terminal{Serial: "HOT1"}
	c, err := net.Dial("tcp", m.AttachAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- term.Serve(ctx, c, tlink.Config{}) }()
	t.Cleanup(func() { cancel(); <-served })

	poll.Until(t, waitLimit, "HOT1 up", connected(m, "HOT1"))
	s, _ := m.Device("HOT1")
	if !s.Attached || s.Kind != transport.PaymentTerminal || !strings.HasPrefix(s.Where, "127.0.0.1:") {
		t.Fatalf("snapshot %+v", s)
	}
	r, err := m.Sale(t.Context(), "HOT1", 100, "392", "H1")
	if err != nil || r.Outcome != device.OutcomeApproved {
		t.Fatalf("sale: %+v, %v", r, err)
	}
}

func TestTransactRefusals(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	term := &devicetest.Terminal{BeforeResult: func(ref string) bool {
		if ref == "HOLD" {
			entered <- struct{}{}
			<-release
		}
		return true
	}}
	fake := devicetest.NewPlug(t, term)
	m, err := device.New(device.Config{
		Devices: []device.DeviceConfig{
			{ID: "T4", DeviceConfig: transport.DeviceConfig{Medium: transport.TCP, Address: fake.Addr}},
			{ID: "PAD", DeviceConfig: transport.DeviceConfig{Kind: transport.SignPad, Medium: transport.TCP, Address: "127.0.0.1:1"}},
			{ID: "GONE", DeviceConfig: transport.DeviceConfig{Medium: transport.Serial, Path: "/dev/nonexistent-tty"}},
		},
		Handler: forwarder(),
		Logger:  quiet(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Sale(t.Context(), "T4", 1, "392", "EARLY"); !errors.Is(err, device.ErrStopped) {
		t.Fatalf("sale before Run: %v", err)
	}
	start(t, m)
	poll.Until(t, waitLimit, "T4 up", connected(m, "T4"))
	poll.Until(t, waitLimit, "GONE reported down", func() bool { s, _ := m.Device("GONE"); return s.LastError != "" })

	held := make(chan error, 1)
	go func() { _, err := m.Sale(context.Background(), "T4", 1, "392", "HOLD"); held <- err }()
	<-entered
	tests := []struct {
		name string
		dev  string
		kind tlink.Kind
		cmd  tlink.TxnCommand
		want error
	}{
		{"unknown_device", "NOPE", tlink.KindSale, tlink.TxnCommand{Ref: "A", Amount: 1, Currency: "392"}, device.ErrUnknownDevice},
		{"sign_pad_is_not_a_terminal", "PAD", tlink.KindSale, tlink.TxnCommand{Ref: "A", Amount: 1, Currency: "392"}, device.ErrNotTerminal},
		{"port_absent", "GONE", tlink.KindSale, tlink.TxnCommand{Ref: "A", Amount: 1, Currency: "392"}, device.ErrNotConnected},
		{"busy", "T4", tlink.KindSale, tlink.TxnCommand{Ref: "A", Amount: 1, Currency: "392"}, device.ErrBusy},
		{"sale_without_amount", "T4", tlink.KindSale, tlink.TxnCommand{Ref: "A"}, device.ErrInvalid},
		{"void_without_original", "T4", tlink.KindVoid, tlink.TxnCommand{Ref: "A"}, device.ErrInvalid},
		{"not_a_command", "T4", tlink.KindDisplay, tlink.TxnCommand{Ref: "A"}, device.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := m.Transact(t.Context(), tt.dev, tt.kind, tt.cmd)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
	close(release)
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	if cmds := term.Commands(); len(cmds) != 1 {
		t.Fatalf("terminal saw %v, want only HOLD", cmds)
	}
}

func TestConfigValidate(t *testing.T) {
	tcp := transport.DeviceConfig{Medium: transport.TCP, Address: "127.0.0.1:9100"}
	tests := []struct {
		name string
		cfg  device.Config
		want []string // substrings, each naming key, value and rule
	}{
		{"defaults_ok", device.Config{}, nil},
		{"device_ok", device.Config{Devices: []device.DeviceConfig{{ID: "T1", DeviceConfig: tcp}}}, nil},
		{"bad_id", device.Config{Devices: []device.DeviceConfig{{ID: "-x", DeviceConfig: tcp}}}, []string{`devices[0].id = "-x": 1–32 characters`}},
		{"duplicate_id", device.Config{Devices: []device.DeviceConfig{{ID: "A", DeviceConfig: tcp}, {ID: "A", DeviceConfig: tcp}}}, []string{`devices[1].id = "A": already used by devices[0]`}},
		{"bad_transport", device.Config{Devices: []device.DeviceConfig{{ID: "A", DeviceConfig: transport.DeviceConfig{Medium: transport.Serial, Path: "/dev/ttyS0", Baud: 12345}}}}, []string{"devices[0] (A):", "baud = 12345"}},
		{"response_timeout_too_short", device.Config{ResponseTimeout: time.Millisecond}, []string{`terminals.response_timeout = "1ms": must be from 1s to 10m0s`}},
		{"status_timeout_over_interval", device.Config{StatusInterval: time.Second, StatusTimeout: 2 * time.Second}, []string{`terminals.status_timeout = "2s"`}},
		{"reconnect_min_over_max", device.Config{ReconnectMin: time.Minute, ReconnectMax: time.Second}, []string{`terminals.reconnect_min = "1m0s"`}},
		{"attach_not_host_port", device.Config{AttachListen: "nowhere"}, []string{`terminals.attach_listen = "nowhere": must be host:port`}},
		{"bad_link", device.Config{Link: tlink.Config{MaxRetries: 99}}, []string{"terminals.link:", "max_retries"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if !errors.Is(err, device.ErrConfig) {
				t.Fatalf("error %v does not wrap ErrConfig", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	if _, err := device.New(device.Config{}); !errors.Is(err, device.ErrConfig) {
		t.Fatalf("New without a handler: %v", err)
	}
}

var _ io.ReadWriteCloser = (net.Conn)(nil)

// TestResolveAsksTheTerminal checks Resolve, the query the POS API uses
// for a transaction a gateway restart left unknown: the terminal's last
// transaction settles its own ref, another ref means never started, and
// nothing but the query reaches the terminal.
func TestResolveAsksTheTerminal(t *testing.T) {
	term := &devicetest.Terminal{}
	fake := devicetest.NewPlug(t, term)
	m, err := device.New(device.Config{
		Devices: []device.DeviceConfig{{ID: "T5", DeviceConfig: transport.DeviceConfig{Medium: transport.TCP, Address: fake.Addr}},
			{ID: "PAD", DeviceConfig: transport.DeviceConfig{Medium: transport.TCP, Address: "127.0.0.1:1", Kind: transport.SignPad}}},
		Handler: forwarder(),
		Logger:  quiet(),
	})
	if err != nil {
		t.Fatal(err)
	}
	start(t, m)
	poll.Until(t, waitLimit, "T5 up", connected(m, "T5"))
	sold, err := m.Sale(t.Context(), "T5", 900, "392", "RES1")
	if err != nil || sold.Outcome != device.OutcomeApproved {
		t.Fatalf("sale: %+v %v", sold, err)
	}
	r, err := m.Resolve(t.Context(), "T5", tlink.KindSale, tlink.TxnCommand{Ref: "RES1", Amount: 900, Currency: "392"})
	if err != nil || r.Outcome != device.OutcomeApproved || r.ResolvedBy != device.ResolvedByQuery ||
		r.ApprovalCode != sold.ApprovalCode || r.STAN != sold.STAN || r.Ref != "RES1" {
		t.Fatalf("resolve RES1: %+v %v; sale was %+v", r, err, sold)
	}
	r, err = m.Resolve(t.Context(), "T5", tlink.KindSale, tlink.TxnCommand{Ref: "RES2", Amount: 900, Currency: "392"})
	if err != nil || r.Outcome != device.OutcomeNotStarted || r.Ref != "RES2" {
		t.Fatalf("resolve RES2: %+v %v, want not started", r, err)
	}
	if got := term.Commands(); len(got) != 1 || got[0] != "RES1" {
		t.Fatalf("terminal got commands %v, want only RES1", got)
	}
	if _, err := m.Resolve(t.Context(), "NOPE", tlink.KindSale, tlink.TxnCommand{Ref: "X"}); !errors.Is(err, device.ErrUnknownDevice) {
		t.Fatalf("unknown device: %v", err)
	}
	if _, err := m.Resolve(t.Context(), "PAD", tlink.KindSale, tlink.TxnCommand{Ref: "X"}); !errors.Is(err, device.ErrNotTerminal) {
		t.Fatalf("signature pad: %v", err)
	}
}
