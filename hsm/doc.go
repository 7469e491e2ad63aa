// Package hsm is posgate's PKCS#11 layer: a pooled, logged-in connection to
// one token (SoftHSM2 in tests, any PKCS#11 HSM in production) and the key
// operations the gateway and the center need, all performed inside the
// token: key generation and import, key check values, AES-ECB/CBC/GCM,
// AES-CMAC, HMAC-SHA256, ECDSA P-256 signing behind a crypto.Signer, and
// DUKPT derivation (AES DUKPT entirely through C_DeriveKey with
// CKM_AES_ECB_ENCRYPT_DATA, legacy TDES DUKPT with the BDK kept in the
// token).
//
// Keys are named by their CKA_LABEL. No PKCS#11 handle, session or object
// type appears in this package's API, and no error returned by it carries
// key bytes or card data.
//
// A process talks to a PKCS#11 module through one C_Initialize; Open shares
// that initialisation between every Token of the process and finalises the
// module when the last Token closes. SoftHSM2 reads the SOFTHSM2_CONF
// environment variable at C_Initialize, so a process must call
// UseSoftHSMConf (or set the variable) before its first Open.
package hsm
