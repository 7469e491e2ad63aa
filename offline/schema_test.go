package offline_test

import (
	"encoding/binary"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/posgate/posgate/offline"
)

func TestOpenRefusesOtherFiles(t *testing.T) {
	tests := []struct {
		name  string
		setup func(tx *bolt.Tx) error
		want  error
	}{
		{"never_released_schema", func(tx *bolt.Tx) error {
			b, err := tx.CreateBucket([]byte("meta"))
			if err != nil {
				return err
			}
			return b.Put([]byte("schema"), binary.BigEndian.AppendUint32(nil, 0))
		}, offline.ErrSchema},
		{"newer_schema", func(tx *bolt.Tx) error {
			b, err := tx.CreateBucket([]byte("meta"))
			if err != nil {
				return err
			}
			return b.Put([]byte("schema"), binary.BigEndian.AppendUint32(nil, offline.SchemaVersion+1))
		}, offline.ErrSchema},
		{"foreign_bbolt_file", func(tx *bolt.Tx) error {
			_, err := tx.CreateBucket([]byte("devices"))
			return err
		}, offline.ErrNotStore},
		{"missing_bucket", func(tx *bolt.Tx) error {
			b, err := tx.CreateBucket([]byte("meta"))
			if err != nil {
				return err
			}
			return b.Put([]byte("schema"), binary.BigEndian.AppendUint32(nil, offline.SchemaVersion))
		}, offline.ErrNotStore},
		{"missing_nested_bucket", func(tx *bolt.Tx) error {
			b, err := tx.CreateBucket([]byte("meta"))
			if err != nil {
				return err
			}
			for _, top := range []string{"saf", "negative", "standin", "outbox", "pos"} {
				if _, err := tx.CreateBucket([]byte(top)); err != nil {
					return err
				}
			}
			return b.Put([]byte("schema"), binary.BigEndian.AppendUint32(nil, offline.SchemaVersion))
		}, offline.ErrNotStore},
		{"schema1_missing_buckets", func(tx *bolt.Tx) error {
			b, err := tx.CreateBucket([]byte("meta"))
			if err != nil {
				return err
			}
			return b.Put([]byte("schema"), binary.BigEndian.AppendUint32(nil, 1))
		}, offline.ErrNotStore},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "old.db")
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Update(tt.setup); err != nil {
				t.Fatal(err)
			}
			db.Close()
			before := dumpFile(t, path)
			_, err = offline.Open(offline.Config{Path: path, Sealer: softSealer(t)})
			if !errors.Is(err, tt.want) {
				t.Fatalf("Open = %v, want %v", err, tt.want)
			}
			var se *offline.SchemaError
			if errors.Is(tt.want, offline.ErrSchema) && !errors.As(err, &se) {
				t.Fatalf("Open error %v is not a *SchemaError", err)
			}
			if se != nil && se.Found > offline.SchemaVersion && !strings.Contains(err.Error(), "newer than this build") {
				t.Fatalf("Open error %q does not say the file is newer", err)
			}
			// The file was left as it was.
			if d := dumpFile(t, path).diff(before); d != "" {
				t.Fatalf("Open changed a file it refused: %s", d)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	_, err := offline.Open(offline.Config{MaxBatch: -1})
	if err == nil {
		t.Fatal("Open accepted an empty config")
	}
	for _, want := range []string{"path: required", "sealer: required", "max_batch -1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}
