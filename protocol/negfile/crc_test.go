package negfile_test

import (
	"fmt"
	"hash/crc32"
)

// crcHex computes a chunk checksum independently of the package, as the
// format defines it: CRC-32C of the body, 8 lower-case hex digits.
func crcHex(body string) string {
	return fmt.Sprintf("%08x", crc32.Checksum([]byte(body), crc32.MakeTable(crc32.Castagnoli)))
}
