package hsm

/*
#include <stdlib.h>
#include <string.h>

// Layout of CK_KEY_DERIVATION_STRING_DATA from the PKCS#11 headers
// (CK_BYTE_PTR pData; CK_ULONG ulLen), with CK_ULONG = unsigned long as on
// every Unix PKCS#11 ABI.
typedef struct {
	unsigned char *pData;
	unsigned long ulLen;
} posgate_kdsd;
*/
import "C"

import (
	"fmt"
	"unsafe"

	"github.com/miekg/pkcs11"
)

// maxDeriveData is the most derivation data one C_DeriveKey takes here
// (two AES blocks, for 256-bit keys).
const maxDeriveData = 32

// cBuf is a block of C memory owned by one session: the derivation data of
// CKM_*_ECB_ENCRYPT_DATA must be behind a pointer inside the mechanism
// parameter, and the binding only copies the flat parameter bytes into C
// memory. The data therefore lives in C memory allocated here, which the
// Go garbage collector neither moves nor frees, and which stays valid until
// free. A session is used by one goroutine at a time, so is its buffer.
type cBuf struct {
	p unsafe.Pointer
}

func newCBuf() cBuf { return cBuf{p: C.calloc(maxDeriveData, 1)} }

func (b cBuf) free() {
	if b.p != nil {
		// Wipe before release: the buffer held derivation data only, but
		// keep the habit.
		C.memset(b.p, 0, maxDeriveData)
		C.free(b.p)
	}
}

// encryptDataMechanism returns a CKM_*_ECB_ENCRYPT_DATA mechanism whose
// CK_KEY_DERIVATION_STRING_DATA parameter points at data copied into b.
// The mechanism is valid until the next call with the same buffer.
func (b cBuf) encryptDataMechanism(mech uint, data []byte) (*pkcs11.Mechanism, error) {
	if len(data) == 0 || len(data) > maxDeriveData {
		return nil, fmt.Errorf("derivation data of %d bytes, want 1..%d: %w", len(data), maxDeriveData, ErrInput)
	}
	dst := unsafe.Slice((*byte)(b.p), maxDeriveData)
	copy(dst, data)
	p := C.posgate_kdsd{pData: (*C.uchar)(b.p), ulLen: C.ulong(len(data))}
	raw := C.GoBytes(unsafe.Pointer(&p), C.int(unsafe.Sizeof(p)))
	return pkcs11.NewMechanism(mech, raw), nil
}
