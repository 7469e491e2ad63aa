package cardblock

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"fmt"

	"github.com/posgate/posgate/p2pe/dukpt"
)

// Keys and plaintexts are cleared with the builtin clear after use: best
// effort, since the runtime may have copied them.

// tdesCipher returns two-key TDES (K1 K2 K1) for a 16-byte key.
func tdesCipher(key []byte) (cipher.Block, error) {
	var k [24]byte
	copy(k[:], key)
	copy(k[16:], key[:8])
	defer clear(k[:])
	return des.NewTripleDESCipher(k[:])
}

// SealAES encrypts c for transaction ksn on the terminal side: it derives
// the AES-128 data-encryption working key (usage 3000) from the initial key
// ik (AES-128, -192 or -256) and encrypts c.Plaintext() with AES-CBC, IV
// zero. ksn must pass Validate; using each KSN for one block only is the
// caller's duty (advance it with ksn.Next).
func SealAES(ik []byte, ksn dukpt.AESKSN, c ClearData) (Block, error) {
	if err := ksn.Validate(); err != nil {
		return Block{}, fmt.Errorf("seal card data under AES KSN %s: %w: %w", ksn, ErrKSN, err)
	}
	key, err := dukpt.AESWorkingKey(ik, ksn, dukpt.UsageDataEncrypt, dukpt.AlgAES128)
	if err != nil {
		return Block{}, fmt.Errorf("seal card data: derive AES data key: %w", err)
	}
	defer clear(key)
	blk, err := aes.NewCipher(key)
	if err != nil {
		return Block{}, fmt.Errorf("seal card data: %w", err)
	}
	ct, err := encrypt(blk, c)
	if err != nil {
		return Block{}, err
	}
	return Block{Algorithm: AlgAES, Usage: UsageDataEncrypt, KSN: append([]byte(nil), ksn[:]...), Ciphertext: ct}, nil
}

// SealTDES encrypts c for transaction ksn on the terminal side: it derives
// the TDES data-request key (variant plus one-way step) from the IPEK and
// encrypts c.Plaintext() with TDES-CBC, IV zero.
func SealTDES(ipek []byte, ksn dukpt.TDESKSN, c ClearData) (Block, error) {
	if err := ksn.Validate(); err != nil {
		return Block{}, fmt.Errorf("seal card data under TDES KSN %s: %w: %w", ksn, ErrKSN, err)
	}
	key, err := dukpt.TDESDataRequestKey(ipek, ksn)
	if err != nil {
		return Block{}, fmt.Errorf("seal card data: derive TDES data key: %w", err)
	}
	defer clear(key)
	blk, err := tdesCipher(key)
	if err != nil {
		return Block{}, fmt.Errorf("seal card data: %w", err)
	}
	ct, err := encrypt(blk, c)
	if err != nil {
		return Block{}, err
	}
	return Block{Algorithm: AlgTDES, Usage: UsageDataEncrypt, KSN: append([]byte(nil), ksn[:]...), Ciphertext: ct}, nil
}

// encrypt returns the CBC (IV zero) encryption of c's padded plaintext.
func encrypt(blk cipher.Block, c ClearData) ([]byte, error) {
	pt, err := c.Plaintext()
	if err != nil {
		return nil, fmt.Errorf("seal card data: %w", err)
	}
	defer clear(pt)
	ct := make([]byte, len(pt))
	cipher.NewCBCEncrypter(blk, make([]byte, blk.BlockSize())).CryptBlocks(ct, pt)
	return ct, nil
}

// decrypt checks b and returns its CBC (IV zero) decryption, parsed.
func decrypt(blk cipher.Block, b Block) (ClearData, error) {
	pt := make([]byte, len(b.Ciphertext))
	defer clear(pt)
	cipher.NewCBCDecrypter(blk, make([]byte, blk.BlockSize())).CryptBlocks(pt, b.Ciphertext)
	c, err := ParsePlaintext(pt)
	if err != nil {
		return ClearData{}, fmt.Errorf("open card data: %w", err)
	}
	return c, nil
}

// OpenAES decrypts an AES block with the terminal's initial key ik, in pure
// Go. It exists for tests and the key-injection tool; the center decrypts
// inside its token and calls ParsePlaintext. A wrong key usually gives an
// error matching ErrPadding.
func OpenAES(ik []byte, b Block) (ClearData, error) {
	if b.Algorithm != AlgAES {
		return ClearData{}, fmt.Errorf("open %s block with an AES key: %w", b.Algorithm, ErrAlgorithm)
	}
	if err := b.check(); err != nil {
		return ClearData{}, fmt.Errorf("open card data: %w", err)
	}
	key, err := dukpt.AESWorkingKey(ik, dukpt.AESKSN(b.KSN), dukpt.UsageDataEncrypt, dukpt.AlgAES128)
	if err != nil {
		return ClearData{}, fmt.Errorf("open card data: derive AES data key: %w", err)
	}
	defer clear(key)
	blk, err := aes.NewCipher(key)
	if err != nil {
		return ClearData{}, fmt.Errorf("open card data: %w", err)
	}
	return decrypt(blk, b)
}

// OpenTDES decrypts a TDES block with the terminal's IPEK, in pure Go, for
// tests and the key-injection tool, like OpenAES.
func OpenTDES(ipek []byte, b Block) (ClearData, error) {
	if b.Algorithm != AlgTDES {
		return ClearData{}, fmt.Errorf("open %s block with a TDES key: %w", b.Algorithm, ErrAlgorithm)
	}
	if err := b.check(); err != nil {
		return ClearData{}, fmt.Errorf("open card data: %w", err)
	}
	key, err := dukpt.TDESDataRequestKey(ipek, dukpt.TDESKSN(b.KSN))
	if err != nil {
		return ClearData{}, fmt.Errorf("open card data: derive TDES data key: %w", err)
	}
	defer clear(key)
	blk, err := tdesCipher(key)
	if err != nil {
		return ClearData{}, fmt.Errorf("open card data: %w", err)
	}
	return decrypt(blk, b)
}
