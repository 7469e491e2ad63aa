package iso93_test

import (
	"encoding/hex"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/posgate/posgate/protocol/iso93"
)

// seedCorpus adds the golden samples, the typed fixtures and random valid
// messages.
func seedCorpus(f *testing.F) {
	f.Helper()
	files, _ := filepath.Glob(filepath.Join(goldenDir, "*.hex"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		raw, err := hex.DecodeString(strings.TrimSpace(string(b)))
		if err != nil {
			f.Fatalf("%s: %v", p, err)
		}
		f.Add(raw)
	}
	for _, tc := range typedCases(f) {
		raw, err := iso93.Pack(tc.v, tc.mti)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	r := rand.New(rand.NewPCG(7, 7))
	for range 20 {
		raw, err := randomMessage(f, r).Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte{})
	f.Add([]byte("1804"))
}

// FuzzUnpack: whenever Unpack accepts x, packing the result and unpacking
// again yields the same field values, and Peek agrees with Unpack.
func FuzzUnpack(f *testing.F) {
	seedCorpus(f)
	f.Fuzz(func(t *testing.T, x []byte) {
		mti, msg, err := iso93.Unpack(x)
		if err != nil {
			return
		}
		packed, err := iso93.PackMessage(msg)
		if err != nil {
			t.Fatalf("repack of an accepted message failed: %v", err)
		}
		mti2, msg2, err := iso93.Unpack(packed)
		if err != nil {
			t.Fatalf("unpack of the repacked message failed: %v", err)
		}
		if mti2 != mti {
			t.Fatal("MTI changed across the round trip")
		}
		if a, b := fieldValues(t, msg), fieldValues(t, msg2); !maps.Equal(a, b) {
			t.Fatal("field values changed across the round trip")
		}
		checkPeekAgrees(t, x)
		_ = iso93.Validate(msg) // must not panic
	})
}

// FuzzPeek: Peek never panics, accepts exactly what Unpack accepts, and
// agrees with it.
func FuzzPeek(f *testing.F) {
	seedCorpus(f)
	f.Fuzz(func(t *testing.T, x []byte) {
		checkPeekAgrees(t, x)
	})
}

// FuzzNetworkReply: the center's Reply never panics and always produces a
// well-formed 1814, with an error exactly when the answer is not 800.
func FuzzNetworkReply(f *testing.F) {
	seedCorpus(f)
	f.Fuzz(func(t *testing.T, x []byte) {
		var c iso93.NetworkCodec
		c.Now = func() time.Time { return testNow }
		resp, err := c.Reply(x)
		if resp == nil {
			t.Fatalf("no reply (error %v)", err)
		}
		h, perr := iso93.Peek(resp)
		if perr != nil {
			t.Fatalf("reply is malformed: %v", perr)
		}
		if h.MTI != iso93.MTINetworkManagementResponse {
			t.Fatalf("reply MTI %s", h.MTI)
		}
		if (err == nil) != (h.ActionCode == string(iso93.ActionNetworkAccepted)) {
			t.Fatalf("error %v with action code %s", err, h.ActionCode)
		}
	})
}
