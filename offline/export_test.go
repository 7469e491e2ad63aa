package offline

// OpenBoltBatch opens a store whose writes go through bbolt's db.Batch
// instead of the committer, to compare the two in benchmarks.
func OpenBoltBatch(cfg Config) (*Store, error) { return open(cfg, true) }
