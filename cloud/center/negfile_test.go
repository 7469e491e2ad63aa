package center

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/posgate/posgate/offline/offlinetest"

	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/offline"
	"github.com/posgate/posgate/protocol/iso93"
	"github.com/posgate/posgate/protocol/link"
	"github.com/posgate/posgate/protocol/negfile"
)

func fp(i int) string { return fmt.Sprintf("%032x", i+1) }

// syncOnce runs the gateway's side of one sync pass against n with a real
// offline store (the gateway package has the production loop; this one
// proves the center's answers).
func syncOnce(t *testing.T, n *NegFileServer, gw *offline.Store, maxChunks int) (offline.NegativeState, iso93.ActionCode) {
	t.Helper()
	peer := link.Peer{GatewayID: "GW000001"}
	for i := 0; i < maxChunks; i++ {
		st, err := gw.Negative()
		if err != nil {
			t.Fatal(err)
		}
		q := negfile.Inquiry{Loaded: st.Loaded, Have: st.Version}
		if s := st.Session; s != nil {
			q.Session = &negfile.Session{Snapshot: s.Snapshot, Base: s.Base, Version: s.Version, Total: s.Total, Next: s.Next}
		}
		fa := iso93.FileAction{Trace: iso93.Trace{TransmissionTime: "1124120000", STAN: "000001", FunctionCode: negfile.FunctionReplace,
			IdempotencyKey: "NFQ-1"}, DataRecord: q.Encode(), FileName: negfile.FileName}
		raw, err := iso93.Pack(&fa, iso93.MTIFileAction)
		if err != nil {
			t.Fatal(err)
		}
		_, msg, err := iso93.Unpack(raw)
		if err != nil {
			t.Fatal(err)
		}
		resp, code, err := n.Answer(t.Context(), peer, msg)
		if err != nil {
			t.Fatal(err)
		}
		_, rm, err := iso93.Unpack(resp)
		if err != nil {
			t.Fatalf("1314 unreadable: %v", err)
		}
		if code != iso93.ActionApproved {
			return st, code
		}
		if rm.GetField(iso93.FieldDataRecord) == nil {
			return st, code
		}
		de24, _ := rm.GetString(iso93.FieldFunctionCode)
		de72, _ := rm.GetString(iso93.FieldDataRecord)
		if _, err := gw.ApplyFileAction(de24, []byte(de72)); err != nil {
			t.Fatalf("chunk refused: %v", err)
		}
	}
	st, _ := gw.Negative()
	return st, "cut"
}

func TestNegFileServerSync(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{Driver: "sqlite", Path: filepath.Join(t.TempDir(), "center.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	add := func(action store.NegativeAction, fps ...string) {
		t.Helper()
		err := st.Update(ctx, func(tx *store.Tx) error {
			for _, f := range fps {
				if _, err := tx.AddNegativeEntry(ctx, store.NegativeEntry{Fingerprint: f, Action: action, Reason: "lost",
					ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	gw, err := offline.Open(offline.Config{Path: filepath.Join(t.TempDir(), "gw.db"), Sealer: offlinetest.KeySealer()})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	n, err := NewNegFileServer(st, NewMetrics().Registry, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	blocked := func(i int) bool {
		t.Helper()
		ok, err := gw.Blocked(fp(i))
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}

	// Empty center file: a snapshot of version 0 loads an empty file.
	if s, code := syncOnce(t, n, gw, 10); code != "000" || !s.Loaded || s.Version != 0 {
		t.Fatalf("empty sync: %+v %s", s, code)
	}
	// 60 adds, 3 netted away again: snapshot is skipped (loaded), delta 0 -> 63
	// in 3 chunks; cut after the first: version 0 stays in force.
	var fps []string
	for i := range 60 {
		fps = append(fps, fp(i))
	}
	add(store.NegativeAdd, fps...)
	add(store.NegativeRemove, fp(0), fp(1), fp(2))
	if s, _ := syncOnce(t, n, gw, 1); s.Version != 0 || s.Session == nil || blocked(10) {
		t.Fatalf("after a cut mid-delta: %+v, blocked(10)=%v; want version 0 in force with a session staged", s, blocked(10))
	}
	// The next pass resumes and completes.
	if s, code := syncOnce(t, n, gw, 10); code != "000" || s.Version != 63 || s.Session != nil {
		t.Fatalf("resumed sync: %+v %s", s, code)
	}
	if blocked(0) || blocked(2) || !blocked(3) || !blocked(59) || blocked(60) {
		t.Fatal("delta not netted: removed cards blocked or added ones missing")
	}
	// A fresh gateway gets a snapshot of the same content.
	gw2, err := offline.Open(offline.Config{Path: filepath.Join(t.TempDir(), "gw2.db"), Sealer: offlinetest.KeySealer()})
	if err != nil {
		t.Fatal(err)
	}
	defer gw2.Close()
	if s, code := syncOnce(t, n, gw2, 10); code != "000" || s.Version != 63 {
		t.Fatalf("snapshot sync: %+v %s", s, code)
	}
	for i, want := range map[int]bool{1: false, 3: true, 59: true} {
		if ok, _ := gw2.Blocked(fp(i)); ok != want {
			t.Fatalf("snapshot: card %d blocked=%v, want %v", i, ok, want)
		}
	}

	t.Run("gateway_ahead_of_center_914", func(t *testing.T) {
		peer := link.Peer{GatewayID: "GW000002"}
		fa := iso93.FileAction{Trace: iso93.Trace{TransmissionTime: "1124120000", STAN: "000001", FunctionCode: negfile.FunctionReplace,
			IdempotencyKey: "NFQ-2"}, DataRecord: "NF1? 999", FileName: negfile.FileName}
		raw, _ := iso93.Pack(&fa, iso93.MTIFileAction)
		_, msg, _ := iso93.Unpack(raw)
		if _, code, err := n.Answer(t.Context(), peer, msg); err != nil || code != iso93.ActionOriginalNotFound {
			t.Fatalf("answer %s, %v; want 914", code, err)
		}
	})
	t.Run("malformed_inquiry_904", func(t *testing.T) {
		fa := iso93.FileAction{Trace: iso93.Trace{TransmissionTime: "1124120000", STAN: "000001", FunctionCode: negfile.FunctionReplace,
			IdempotencyKey: "NFQ-3"}, DataRecord: "give me everything", FileName: negfile.FileName}
		raw, _ := iso93.Pack(&fa, iso93.MTIFileAction)
		h := &LinkHandler{Switch: &recorder{}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), NegFile: n}
		resp, err := h.ServeLink(t.Context(), link.Peer{GatewayID: "GW000001"}, raw)
		if err != nil {
			t.Fatal(err)
		}
		var r iso93.FileActionResponse
		if err := iso93.UnpackInto(resp, &r); err != nil || r.ActionCode != iso93.ActionFormatError {
			t.Fatalf("answer %+v, %v; want 904", r, err)
		}
	})
}

// TestNegFileServerExpiry proves that an expired entry leaves the file the
// gateways hold: the sweep before an inquiry appends a removal at the next
// version, the gateway's delta drops the card, entries not yet expired and
// cards already removed stay as they are, and a second sweep adds nothing.
func TestNegFileServerExpiry(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{Driver: "sqlite", Path: filepath.Join(t.TempDir(), "center.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	entries := []store.NegativeEntry{
		{Fingerprint: fp(0), Action: store.NegativeAdd, Reason: "lost", ExpiresAt: now.Add(time.Hour)},       // expires later
		{Fingerprint: fp(1), Action: store.NegativeAdd, Reason: "stolen", ExpiresAt: now.Add(2 * time.Hour)}, // expires later
		{Fingerprint: fp(2), Action: store.NegativeAdd, Reason: "manual"},                                    // never expires
		{Fingerprint: fp(3), Action: store.NegativeAdd, Reason: "lost", ExpiresAt: now.Add(time.Hour)},
		{Fingerprint: fp(3), Action: store.NegativeRemove, Reason: "resumed", ExpiresAt: now.Add(time.Hour)}, // removed already
	}
	if err := st.Update(ctx, func(tx *store.Tx) error {
		for _, e := range entries {
			if _, err := tx.AddNegativeEntry(ctx, e); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	gw, err := offline.Open(offline.Config{Path: filepath.Join(t.TempDir(), "gw.db"), Sealer: offlinetest.KeySealer()})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	clock := now
	n, err := NewNegFileServer(st, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	n.Now = func() time.Time { return clock }
	n.ExpireEvery = time.Hour

	steps := []struct {
		name        string
		at          time.Time
		wantVersion uint64
		blocked     map[int]bool
	}{
		{"nothing_expired_yet", now, 5, map[int]bool{0: true, 1: true, 2: true, 3: false}},
		{"first_expired_removed_next_version", now.Add(61 * time.Minute), 6, map[int]bool{0: false, 1: true, 2: true, 3: false}},
		{"expired_but_swept_within_expire_every", now.Add(2*time.Hour + 30*time.Second), 6, map[int]bool{0: false, 1: true}},
		{"second_expired_removed", now.Add(3 * time.Hour), 7, map[int]bool{0: false, 1: false, 2: true, 3: false}},
		{"sweep_again_adds_nothing", now.Add(5 * time.Hour), 7, map[int]bool{0: false, 1: false, 2: true}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			clock = s.at
			if got, code := syncOnce(t, n, gw, 10); code != "000" || got.Version != s.wantVersion {
				t.Fatalf("sync: version %d (%s), want %d", got.Version, code, s.wantVersion)
			}
			for i, want := range s.blocked {
				if ok, err := gw.Blocked(fp(i)); err != nil || ok != want {
					t.Fatalf("card %d blocked=%v (%v), want %v", i, ok, err, want)
				}
			}
		})
	}
	var last store.NegativeEntry
	if err := st.View(ctx, func(tx *store.Tx) error {
		es, err := tx.NegativeEntries(ctx, 6, 10)
		if len(es) == 1 {
			last = es[0]
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if last.Action != store.NegativeRemove || last.Reason != ExpiredReason || last.Fingerprint != fp(1) {
		t.Fatalf("version 7 is %+v, want the expiry removal of card 1", last)
	}
}
