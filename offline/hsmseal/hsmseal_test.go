package hsmseal_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"path/filepath"
	"testing"

	"github.com/posgate/posgate/hsm"
	"github.com/posgate/posgate/hsm/hsmtest"
	"github.com/posgate/posgate/offline"
	"github.com/posgate/posgate/offline/hsmseal"
	"github.com/posgate/posgate/protocol/negfile"
)

func TestMain(m *testing.M) { hsmtest.Main(m) }

// TestStoreOnToken runs approvals and forwarding with records sealed by a
// real SoftHSM2 token, and checks that another token key cannot open them.
func TestStoreOnToken(t *testing.T) {
	tok := hsmtest.Token(t)
	label := hsmtest.Label(t, "at-rest")
	if err := tok.GenerateAES(label, 256, hsm.UseEncrypt|hsm.UseDecrypt); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "offline.db")
	st, err := offline.Open(offline.Config{Path: path, Sealer: hsmseal.New(tok, label)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.ApplyChunk(negfile.Chunk{Op: negfile.OpSnapshot, Version: 1, Seq: 1, Total: 1}); err != nil {
		t.Fatal(err)
	}
	keys := []string{"tok-1", "tok-2", "tok-3"}
	for i, k := range keys {
		sum := sha256.Sum256([]byte(k))
		d, err := st.Approve(offline.Sale{IdempotencyKey: k, TerminalID: "T0000001", MerchantID: "M1", Brand: "visa",
			Fingerprint: hex.EncodeToString(sum[:16]), MaskedPAN: "411111******1111", Amount: int64(100 * (i + 1)),
			Currency: "392", Message: []byte("req " + k)})
		if err != nil || !d.Approved {
			t.Fatalf("Approve %s: %+v, %v", k, d, err)
		}
	}
	recs, err := st.Queue().Next(10)
	if err != nil || len(recs) != 3 {
		t.Fatalf("Next = %d records, %v", len(recs), err)
	}
	for i, r := range recs {
		if r.IdempotencyKey != keys[i] || string(r.Message) != "req "+keys[i] || r.Amount != int64(100*(i+1)) {
			t.Fatalf("record %d did not round-trip through the token: %v", i, r)
		}
	}
	st.Close()

	other := hsmtest.Label(t, "other")
	if err := tok.GenerateAES(other, 256, hsm.UseEncrypt|hsm.UseDecrypt); err != nil {
		t.Fatal(err)
	}
	st, err = offline.Open(offline.Config{Path: path, Sealer: hsmseal.New(tok, other)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Queue().Next(1); !errors.Is(err, offline.ErrRecordSeal) {
		t.Fatalf("Next under another token key = %v, want ErrRecordSeal", err)
	}
}
