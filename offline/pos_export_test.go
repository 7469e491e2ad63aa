package offline

// POSUnframe exposes the POS record framing to the fuzz test.
func POSUnframe(v []byte) (pos, key string, sealed []byte, err error) { return posUnframe(v) }

// POSFrame exposes the POS record framing to the fuzz test.
func POSFrame(pos, key string, sealed []byte) []byte { return posFrame(pos, key, sealed) }
