package e2e_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"testing"

	"github.com/posgate/posgate/cloud/store"
)

// These read the state the tests wait on (never a daemon's log wording):
// the simulated terminal's non-volatile record and the center's database,
// which the center keeps in WAL mode so a second reader is safe while it
// runs.

// terminalOwesAnswer reports whether the simulated terminal whose state
// file is path has a financial request out whose answer has not come: the
// firmware records it (reversals_owed) just before it sends the request.
// A file not yet written or half-renamed reads as false.
func terminalOwesAnswer(t *testing.T, path string) bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Last struct {
			Owed []json.RawMessage `json:"reversals_owed"`
		} `json:"last_txn"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return false
	}
	return len(st.Last.Owed) > 0
}

// centerSignatures counts the authorizations of terminalID at the center
// that have their signature stored.
func centerSignatures(t *testing.T, st *store.Store, terminalID string) int {
	t.Helper()
	ctx := context.Background()
	n := 0
	err := st.View(ctx, func(tx *store.Tx) error {
		auths, err := tx.Authorizations(ctx, store.AuthFilter{TerminalID: terminalID, Limit: 100})
		if err != nil {
			return err
		}
		for _, a := range auths {
			_, err := tx.SignatureByAuthorization(ctx, a.ID)
			switch {
			case err == nil:
				n++
			case !errors.Is(err, store.ErrNotFound):
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("count signatures at the center: %v", err)
	}
	return n
}

// openCenterStore opens the center's SQLite database beside the running
// center, closed when the test ends.
func openCenterStore(t *testing.T, path string) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), store.Config{Driver: "sqlite", Path: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}
