//go:build linux

package offline_test

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestMigrationKilled proves that the schema-1 migration is atomic: a
// child opens a large schema-1 file (so Open migrates it) and is
// SIGKILLed once it has written to the file (the k-th write inotify
// reports, k random per round; one round is not killed). Whatever the
// moment, the file afterwards is exactly the schema-1 file or exactly its
// migration, never a mix, and the store then opens it.
func TestMigrationKilled(t *testing.T) {
	template := copyFile(t, schema1Golden)
	growSchema1(t, template, 30_000)
	orig, err := os.ReadFile(template)
	if err != nil {
		t.Fatal(err)
	}
	v1 := dumpFile(t, template)
	v2 := migrated(v1)
	seed := rand.Uint64()
	rng := rand.New(rand.NewPCG(seed, 0))
	t.Logf("seed %d", seed)
	const rounds = 8
	var olds, midway, news int
	var path string
	for r := range rounds {
		path = copyFile(t, template)
		killAfter := 0 // round 0: not killed
		if r > 0 {
			killAfter = 1 + rng.IntN(16)
		}
		killed := openAndKill(t, path, killAfter)
		got := dumpFile(t, path)
		switch dOld, dNew := got.diff(v1), got.diff(v2); {
		case dOld == "":
			olds++
			if after, err := os.ReadFile(path); err == nil && !bytes.Equal(after, orig) {
				midway++ // pages of the new layout were written
			}
		case dNew == "":
			news++
		default:
			t.Fatalf("round %d (killed %v): the file is neither layout: against schema 1: %s; against the migration: %s", r, killed, dOld, dNew)
		}
		if r == 0 && got.diff(v2) != "" {
			t.Fatal("a migration that was not killed did not finish")
		}
	}
	t.Logf("%d rounds: %d left schema 1 (%d after the migration had written to the file), %d migrated", rounds, olds, midway, news)
	// The last round's file opens, whichever layout the kill left.
	st, _ := open(t, opts{path: path, clock: goldenClock()})
	st.Close()
	if d := dumpFile(t, path).diff(v2); d != "" {
		t.Fatalf("after the kill, Open did not migrate: %s", d)
	}
}

// openAndKill runs the crash-test child with -open on path and SIGKILLs
// it once inotify has reported killAfter writes to the file (0: never);
// it reports whether the kill was sent before the child ended.
func openAndKill(t *testing.T, path string, killAfter int) bool {
	t.Helper()
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC | syscall.IN_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	events := os.NewFile(uintptr(fd), "inotify") // non-blocking: Close ends a Read
	if _, err := syscall.InotifyAddWatch(fd, path, syscall.IN_MODIFY); err != nil {
		events.Close()
		t.Fatal(err)
	}
	cmd := exec.Command(crashBin, "-db", path, "-key", hex.EncodeToString(testKey), "-open")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		events.Close()
		t.Fatal(err)
	}
	var killed atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		n := 0
		for {
			m, err := events.Read(buf)
			if err != nil {
				return // closed once the child ended
			}
			for off := 0; off+syscall.SizeofInotifyEvent <= m; off += syscall.SizeofInotifyEvent + int(binary.NativeEndian.Uint32(buf[off+12:])) {
				n++
			}
			if killAfter > 0 && n >= killAfter {
				if cmd.Process.Signal(syscall.SIGKILL) == nil {
					killed.Store(true)
				}
				return
			}
		}
	}()
	err = cmd.Wait()
	events.Close()
	<-done
	if !killed.Load() && (err != nil || stdout.String() != "open\n") {
		t.Fatalf("child: %v, output %q, stderr %s", err, stdout.String(), stderr.String())
	}
	return killed.Load()
}

// growSchema1 adds n fingerprints to the live negative-file bucket and
// n/5 cards' velocity entries to the schema-1 file at path, so that its
// migration writes megabytes.
func growSchema1(t *testing.T, path string, n int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	key := func() []byte {
		k := make([]byte, 16)
		binary.BigEndian.PutUint64(k, rng.Uint64())
		binary.BigEndian.PutUint64(k[8:], rng.Uint64())
		return k
	}
	editFile(t, path, func(tx *bolt.Tx) error {
		neg, vel := tx.Bucket([]byte("neg.b")), tx.Bucket([]byte("vel"))
		for range n {
			if err := neg.Put(key(), []byte{1}); err != nil {
				return err
			}
		}
		for range n / 5 {
			if err := vel.Put(key(), key()); err != nil {
				return err
			}
		}
		return nil
	})
}
