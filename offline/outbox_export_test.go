package offline

// OutboxUnframe exposes the reversal and signature record framing to the
// fuzz test.
func OutboxUnframe(v []byte) (key string, sealed []byte, err error) { return outboxUnframe(v) }

// OutboxFrame exposes the reversal and signature record framing to the
// fuzz test.
func OutboxFrame(key string, sealed []byte) []byte { return outboxFrame(key, sealed) }
