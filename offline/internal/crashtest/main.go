// Command crashtest is the child process of offline's crash tests. It
// opens a store and approves sales as fast as it can from several
// goroutines, printing "ok <record id> <idempotency key>" on stdout after
// each Approve has returned: the moment a terminal would be told
// "approved". The test kills it with SIGKILL at a moment of its choosing
// and checks that every printed approval survived, exactly once.
//
// With -fsize it first limits the size of files it may write
// (RLIMIT_FSIZE), so the store runs into a full-disk failure; it then
// prints "err storage=<bool>" for the first failed Approve and exits 3.
//
// With -open it only opens the store (migrating a file of an older schema),
// prints "open" and exits: the crash test of the migration kills it
// while Open writes.
//
// The store's sealer is a software AES-GCM key given as hex with -key.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/posgate/posgate/offline"
	"github.com/posgate/posgate/offline/offlinetest"
	"github.com/posgate/posgate/offline/standin"
	"github.com/posgate/posgate/protocol/negfile"
)

func main() {
	path := flag.String("db", "", "bbolt file")
	keyHex := flag.String("key", "", "AES-256 sealing key, hex")
	run := flag.String("run", "r0", "prefix of this run's idempotency keys")
	workers := flag.Int("workers", 8, "concurrent approvers")
	limit := flag.Int("n", 0, "stop after this many approvals (0: until killed)")
	fsize := flag.Uint64("fsize", 0, "RLIMIT_FSIZE in bytes (0: none)")
	openOnly := flag.Bool("open", false, "only open the store (and migrate it), then exit")
	flag.Parse()
	var err error
	if *openOnly {
		err = openStore(*path, *keyHex)
	} else {
		err = runMain(*path, *keyHex, *run, *workers, *limit, *fsize)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "crashtest:", err)
		os.Exit(2)
	}
}

// Policy lets every sale of the crash test through: its limits are far
// above anything the test can reach.
func Policy() standin.Policy {
	return standin.Policy{TotalExposure: 1 << 60, MaxStaleness: 1 << 62,
		Default: standin.Rules{FloorLimit: 1 << 40, CardCount: 1 << 30, CardAmount: 1 << 60, MerchantExposure: 1 << 60}}
}

func openStore(path, keyHex string) error {
	key, err := hex.DecodeString(keyHex)
	if err != nil {
		return fmt.Errorf("key: %w", err)
	}
	sealer, err := offlinetest.NewSealer(key)
	if err != nil {
		return err
	}
	st, err := offline.Open(offline.Config{Path: path, Sealer: sealer, Policy: Policy()})
	if err != nil {
		return err
	}
	fmt.Println("open")
	return st.Close()
}

func runMain(path, keyHex, run string, workers, limit int, fsize uint64) error {
	key, err := hex.DecodeString(keyHex)
	if err != nil {
		return fmt.Errorf("key: %w", err)
	}
	sealer, err := offlinetest.NewSealer(key)
	if err != nil {
		return err
	}
	st, err := offline.Open(offline.Config{Path: path, Sealer: sealer, Policy: Policy()})
	if err != nil {
		return err
	}
	defer st.Close()
	neg, err := st.Negative()
	if err != nil {
		return err
	}
	if !neg.Loaded {
		if _, err := st.ApplyChunk(negfile.Chunk{Op: negfile.OpSnapshot, Version: 1, Seq: 1, Total: 1}); err != nil {
			return err
		}
	}
	if fsize > 0 {
		signal.Ignore(syscall.SIGXFSZ)
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: fsize, Max: fsize}); err != nil {
			return fmt.Errorf("setrlimit: %w", err)
		}
	}
	var (
		mu     sync.Mutex
		seq    atomic.Int64
		failed atomic.Bool
		wg     sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			for !failed.Load() {
				i := seq.Add(1)
				if limit > 0 && i > int64(limit) {
					return
				}
				idem := fmt.Sprintf("%s-%d-%d", run, w, i)
				sum := sha256.Sum256([]byte(idem))
				d, err := st.Approve(offline.Sale{IdempotencyKey: idem, TerminalID: "T0000001", MerchantID: "M1",
					Brand: "visa", Fingerprint: hex.EncodeToString(sum[:16]), MaskedPAN: "411111******1111",
					Amount: 100 + i%900, Currency: "392", Message: []byte("crash-test request " + idem)})
				mu.Lock()
				switch {
				case err != nil:
					if !failed.Swap(true) {
						fmt.Printf("err storage=%v\n", errors.Is(err, offline.ErrStorage))
					}
				case d.Approved:
					fmt.Printf("ok %d %s\n", d.RecordID, idem)
				default:
					fmt.Printf("declined %s\n", d.Reason)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if failed.Load() {
		os.Exit(3)
	}
	return nil
}
