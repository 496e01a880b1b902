package iscsi

import (
	"crypto/md5"
	"crypto/subtle"
)

// CHAP algorithm identifiers (RFC 1994, RFC 7143 section 12.1.3).
const (
	// ChapAlgorithmMD5 is the only algorithm VBS offers.
	ChapAlgorithmMD5 = 5
	// ChapMinChallenge and ChapMaxChallenge bound challenge lengths we
	// accept from a peer; we send ChapChallengeLength bytes.
	ChapMinChallenge    = 1
	ChapMaxChallenge    = 1024
	ChapChallengeLength = 16
)

// ChapResponse computes the MD5 CHAP response MD5(id || secret ||
// challenge) (RFC 1994 section 4.1).
func ChapResponse(id byte, secret, challenge []byte) [md5.Size]byte {
	h := md5.New()
	h.Write([]byte{id})
	h.Write(secret)
	h.Write(challenge)
	var out [md5.Size]byte
	h.Sum(out[:0])
	return out
}

// ChapVerify reports whether resp is the right response for id, secret and
// challenge, in constant time.
func ChapVerify(id byte, secret, challenge, resp []byte) bool {
	want := ChapResponse(id, secret, challenge)
	return subtle.ConstantTimeCompare(want[:], resp) == 1
}
