package c2c_test

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moov-io/iso8583"
	connection "github.com/moov-io/iso8583-connection"

	"github.com/posgate/posgate/cloud/authz"
	"github.com/posgate/posgate/cloud/c2c"
	"github.com/posgate/posgate/cloud/cloudtest"
	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/cloud/store/storetest"
	"github.com/posgate/posgate/p2pe/card"
	"github.com/posgate/posgate/protocol/frame"
	"github.com/posgate/posgate/protocol/iso93"
	"github.com/posgate/posgate/protocol/pki"
)

// The head office of these tests is cloudtest.OtherMerchant: its own
// terminal is cloudtest.OtherTerminal; cloudtest.Terminal is foreign.
const office = cloudtest.OtherMerchant

// start serves a c2c port for sw until the test ends.
func start(t testing.TB, cfg c2c.Config) *c2c.Server {
	t.Helper()
	if cfg.AllowList == nil && cfg.TLS == nil {
		cfg.AllowList = map[string]string{"127.0.0.1": office}
	}
	cfg.Addr = "127.0.0.1:0"
	srv, err := c2c.Listen(cfg)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Serve returned %v, want context.Canceled", err)
		}
	})
	return srv
}

type idGen struct{}

func (idGen) GenerateRequestID(m *iso8583.Message) (string, error) {
	mti, _ := m.GetMTI()
	stan, _ := m.GetString(iso93.FieldSTAN)
	term, _ := m.GetString(iso93.FieldTerminalID)
	return mti[:2] + term + stan, nil
}

func readLen(r io.Reader) (int, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, err
	}
	return int(binary.BigEndian.Uint16(h[:])), nil
}

func writeLen(w io.Writer, n int) (int, error) {
	return w.Write(binary.BigEndian.AppendUint16(nil, uint16(n)))
}

// dial connects a head-office client built on moov-io/iso8583-connection.
func dial(t testing.TB, addr string, opts ...connection.Option) *connection.Connection {
	t.Helper()
	opts = append([]connection.Option{connection.SetRequestIDGenerator(idGen{}), connection.SendTimeout(30 * time.Second)}, opts...)
	c, err := connection.New(addr, iso93.Spec, readLen, writeLen, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Connect(); err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

var stan atomic.Int64

// sale builds a 1200 with the clear PAN of c from the terminal.
func sale(t testing.TB, terminal string, c cloudtest.Card, amount int64) *iso8583.Message {
	t.Helper()
	n := stan.Add(1)
	m := iso93.FinancialRequest{
		Trace: iso93.Trace{TransmissionTime: "1124101500", STAN: fmt.Sprintf("%06d", n%1_000_000), LocalTime: cloudtest.LocalTime,
			FunctionCode: iso93.FunctionOriginalFinancial, AcquirerID: "12345", TerminalID: terminal, MerchantID: "M0000002       ",
			IdempotencyKey: fmt.Sprintf("ho-%d-%d", n, time.Now().UnixNano())},
		Payment: iso93.Payment{ProcessingCode: iso93.ProcessingPurchase, Amount: amount, POSDataCode: "100000000000", Currency: cloudtest.Currency},
		Card:    iso93.Card{PAN: iso93.PAN(c.PAN.Digits())},
	}
	raw, err := iso93.Pack(&m, iso93.MTIFinancialRequest)
	if err != nil {
		t.Fatalf("pack 1200: %v", err)
	}
	_, msg, err := iso93.Unpack(raw)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

func send(t testing.TB, c *connection.Connection, m *iso8583.Message) (action, approval string) {
	t.Helper()
	resp, err := c.Send(m)
	if err != nil {
		t.Errorf("send: %v", err)
		return "", ""
	}
	action, _ = resp.GetString(iso93.FieldActionCode)
	approval, _ = resp.GetString(iso93.FieldApprovalCode)
	return action, approval
}

func audits(t testing.TB, st *store.Store, kind string) []store.AuditRecord {
	t.Helper()
	var out []store.AuditRecord
	err := st.View(context.Background(), func(tx *store.Tx) error {
		var err error
		out, err = tx.Audit(context.Background(), kind, 100)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestHeadOfficeSession(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		w := cloudtest.NewWorld(t, st)
		srv := start(t, c2c.Config{Switch: w.Switch, Store: st})
		c := dial(t, srv.Addr().String())
		card := w.NewCard(t, store.KindPrepaid, 0, 100_000)

		for _, tc := range []struct {
			name string
			raw  func() ([]byte, error)
		}{
			{"sign_on", func() ([]byte, error) { return iso93.NetworkCodec{}.SignOn(office, 1) }},
			{"echo", func() ([]byte, error) { return iso93.NetworkCodec{}.Echo(office, 2) }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				raw, err := tc.raw()
				if err != nil {
					t.Fatal(err)
				}
				_, m, _ := iso93.Unpack(raw)
				if action, _ := send(t, c, m); action != string(iso93.ActionNetworkAccepted) {
					t.Fatalf("1814 action %s, want 800", action)
				}
			})
		}
		t.Run("sale_approved", func(t *testing.T) {
			action, approval := send(t, c, sale(t, cloudtest.OtherTerminal, card, 2500))
			if action != "000" || len(approval) != 6 {
				t.Fatalf("sale answered %s approval %q, want 000 with a code", action, approval)
			}
			if got := w.Available(t, card.AccountID); got != 97_500 {
				t.Fatalf("available %d, want 97500", got)
			}
		})
		t.Run("foreign_terminal_refused", func(t *testing.T) {
			before := len(audits(t, st, "terminal_refused"))
			if action, _ := send(t, c, sale(t, cloudtest.Terminal, card, 100)); action != string(iso93.ActionNotPermittedToTerminal) {
				t.Fatalf("foreign terminal answered %s, want 120", action)
			}
			if got := len(audits(t, st, "terminal_refused")); got != before+1 {
				t.Fatalf("terminal_refused audits %d, want %d", got, before+1)
			}
		})
		t.Run("validation_failure_904", func(t *testing.T) {
			m := sale(t, cloudtest.OtherTerminal, card, 100)
			m.UnsetField(iso93.FieldPOSDataCode)
			if action, _ := send(t, c, m); action != string(iso93.ActionFormatError) {
				t.Fatalf("1200 without DE 22 answered %s, want 904", action)
			}
		})
		cloudtest.CheckLedger(t, st)
	})
}

func TestManyRequestsOnOneConnection(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		w := cloudtest.NewWorld(t, st)
		srv := start(t, c2c.Config{Switch: w.Switch, Store: st, MaxInFlight: 16})
		c := dial(t, srv.Addr().String())
		card := w.NewCard(t, store.KindPrepaid, 0, 1_000_000)
		const n = 64
		var wg sync.WaitGroup
		var approved atomic.Int64
		for range n {
			wg.Go(func() {
				if action, _ := send(t, c, sale(t, cloudtest.OtherTerminal, card, 100)); action == "000" {
					approved.Add(1)
				}
			})
		}
		wg.Wait()
		if approved.Load() != n {
			t.Fatalf("%d of %d approved", approved.Load(), n)
		}
		if got := w.Available(t, card.AccountID); got != 1_000_000-n*100 {
			t.Fatalf("available %d, want %d", got, 1_000_000-n*100)
		}
		cloudtest.CheckLedger(t, st)
	})
}

// blocking is an Authorizer that holds every request until released.
type blocking struct {
	entered chan struct{}
	release chan struct{}
}

func (b *blocking) Authorize(ctx context.Context, r authz.Request) (authz.Response, error) {
	b.entered <- struct{}{}
	<-b.release
	return authz.Response{ActionCode: "000", ApprovalCode: "123456", RRN: "000000000001"}, nil
}

func rawConn(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return c
}

func readAction(t *testing.T, c net.Conn) (stan, action string) {
	t.Helper()
	raw, err := frame.Read(c, 0)
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	h, err := iso93.Peek(raw)
	if err != nil {
		t.Fatalf("answer malformed: %v", err)
	}
	return h.STAN, h.ActionCode
}

func TestDuplicateInFlightGets913(t *testing.T) {
	b := &blocking{entered: make(chan struct{}, 1), release: make(chan struct{})}
	srv := start(t, c2c.Config{Switch: b})
	c := rawConn(t, srv.Addr().String())
	raw, err := iso93.PackMessage(sale(t, cloudtest.OtherTerminal, cloudtest.Card{PAN: testPAN(t)}, 100))
	if err != nil {
		t.Fatal(err)
	}
	frame.Write(c, raw)
	<-b.entered
	frame.Write(c, raw)
	if _, action := readAction(t, c); action != string(iso93.ActionDuplicateTransmission) {
		t.Fatalf("duplicate answered %s, want 913", action)
	}
	close(b.release)
	if _, action := readAction(t, c); action != "000" {
		t.Fatalf("first answered %s, want 000", action)
	}
}

func testPAN(t testing.TB) cardPAN {
	t.Helper()
	return mustPAN(t, "4111111111111111")
}

func TestBadInput(t *testing.T) {
	st := storetest.OpenSQLite(t)
	w := cloudtest.NewWorld(t, st)
	srv := start(t, c2c.Config{Switch: w.Switch, Store: st})
	echo, _ := iso93.NetworkCodec{}.Echo(office, 9)

	t.Run("malformed_message_904_then_keeps_serving", func(t *testing.T) {
		c := rawConn(t, srv.Addr().String())
		frame.Write(c, []byte("1200\xff\xffgarbage"))
		if _, action := readAction(t, c); action != string(iso93.ActionFormatError) {
			t.Fatalf("garbage answered %s, want 904", action)
		}
		frame.Write(c, echo)
		if stan, action := readAction(t, c); action != "800" || stan != "000009" {
			t.Fatalf("echo after garbage answered %s/%s, want 800", stan, action)
		}
	})
	t.Run("empty_frame_closes_connection", func(t *testing.T) {
		c := rawConn(t, srv.Addr().String())
		c.Write([]byte{0, 0})
		if _, err := frame.Read(c, 0); !errors.Is(err, io.EOF) {
			t.Fatalf("read after empty frame: %v, want EOF (closed)", err)
		}
	})
	t.Run("listener_still_serves", func(t *testing.T) {
		c := rawConn(t, srv.Addr().String())
		frame.Write(c, echo)
		if _, action := readAction(t, c); action != "800" {
			t.Fatalf("echo answered %s, want 800", action)
		}
	})
}

func TestUnknownPeerRefusedAndAudited(t *testing.T) {
	st := storetest.OpenSQLite(t)
	w := cloudtest.NewWorld(t, st)
	srv := start(t, c2c.Config{Switch: w.Switch, Store: st, AllowList: map[string]string{"10.9.9.9": office}})
	c := rawConn(t, srv.Addr().String())
	echo, _ := iso93.NetworkCodec{}.Echo(office, 1)
	frame.Write(c, echo)
	if _, err := frame.Read(c, 0); err == nil {
		t.Fatal("a peer on no allow-list got an answer")
	}
	// The audit is written before the connection closes.
	if got := audits(t, st, "c2c_refused"); len(got) != 1 {
		t.Fatalf("c2c_refused audits %d, want 1", len(got))
	}
}

func TestTLSClientCertificateNamesHeadOffice(t *testing.T) {
	st := storetest.OpenSQLite(t)
	w := cloudtest.NewWorld(t, st)
	ca, err := pki.NewCA("test c2c CA", 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	sc, sk, err := ca.IssueServer([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	stls, err := pki.ServerTLS(ca.CertPEM(), sc, sk)
	if err != nil {
		t.Fatal(err)
	}
	stls.NextProtos = nil
	srv := start(t, c2c.Config{Switch: w.Switch, Store: st, TLS: stls})
	cc, ck, err := ca.IssueGateway(office, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(cc, ck)
	if err != nil {
		t.Fatal(err)
	}
	ctls, err := pki.ClientTLS(ca.CertPEM(), cert)
	if err != nil {
		t.Fatal(err)
	}
	ctls.NextProtos = nil
	ctls.ServerName = "127.0.0.1"
	c := dial(t, srv.Addr().String(), connection.SetTLSConfig(func(c *tls.Config) {
		c.RootCAs, c.Certificates, c.ServerName, c.MinVersion = ctls.RootCAs, ctls.Certificates, ctls.ServerName, ctls.MinVersion
	}))
	card := w.NewCard(t, store.KindPrepaid, 0, 10_000)
	if action, _ := send(t, c, sale(t, cloudtest.OtherTerminal, card, 100)); action != "000" {
		t.Fatalf("own terminal over TLS answered %s, want 000", action)
	}
	if action, _ := send(t, c, sale(t, cloudtest.Terminal, card, 100)); action != "120" {
		t.Fatalf("foreign terminal over TLS answered %s, want 120", action)
	}
	cloudtest.CheckLedger(t, st)
}

type cardPAN = card.PAN

func mustPAN(t testing.TB, s string) card.PAN {
	t.Helper()
	p, err := card.ParsePAN(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
