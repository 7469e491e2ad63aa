package tlink

// crcTable is the byte-wise table of CRC-16/CCITT-FALSE (polynomial 0x1021,
// initial value 0xFFFF, no reflection, no final XOR).
var crcTable = func() (t [256]uint16) {
	for i := range t {
		c := uint16(i) << 8
		for range 8 {
			if c&0x8000 != 0 {
				c = c<<1 ^ 0x1021
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return t
}()

// crcInit is the initial register value of CRC-16/CCITT-FALSE.
const crcInit uint16 = 0xFFFF

// crcUpdate folds p into the running CRC-16/CCITT-FALSE value c.
func crcUpdate(c uint16, p ...byte) uint16 {
	for _, b := range p {
		c = c<<8 ^ crcTable[byte(c>>8)^b]
	}
	return c
}

// Checksum returns the CRC-16/CCITT-FALSE of p (polynomial 0x1021, initial
// value 0xFFFF, not reflected, no final XOR; the check value of "123456789"
// is 0x29B1). It is the frame check value of the terminal link.
func Checksum(p []byte) uint16 {
	return crcUpdate(crcInit, p...)
}
