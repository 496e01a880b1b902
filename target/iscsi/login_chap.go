package iscsi

import (
	"bytes"
	"crypto/md5"
	"crypto/subtle"

	"io"
	"strconv"
)

// maxChapID is the largest CHAP identifier (one octet, RFC 1994).
const maxChapID = 255

func authFailure(format string, args ...any) *LoginError {
	return loginErr(StatusInitiatorError, DetailAuthFailure, format, args...)
}

// security runs the security stage keys of one request (RFC 7143 section
// 12): AuthMethod selection, then CHAP (RFC 1994, MD5 only) one-way or
// mutual. Any step of the CHAP exchange out of order, or any bad value in
// it, is an authentication failure.
func (l *Login) security(s *secKeys, n *negotiation) error {
	if s.authMethod != nil {
		if err := l.chooseAuthMethod(*s.authMethod, n); err != nil {
			return err
		}
	}
	if s.chapA != nil {
		if err := l.chapChallengeStep(*s.chapA, n); err != nil {
			return err
		}
	}
	if s.chapN != nil || s.chapR != nil || s.chapI != nil || s.chapC != nil {
		if err := l.chapResponseStep(s, n); err != nil {
			return err
		}
	}
	return nil
}

func (l *Login) chooseAuthMethod(list string, n *negotiation) error {
	if l.auth != authStart {
		return authFailure("AuthMethod after authentication started")
	}
	want := ValueNone
	if l.chap != nil {
		want = ValueCHAP
	}
	v, ok := firstSupported(list, func(v string) bool { return v == want })
	if !ok {
		if !l.allowed {
			return loginErr(StatusInitiatorError, DetailAuthorizationFailure, "initiator %q not allowed", l.p.InitiatorName)
		}
		return authFailure("AuthMethod %.64q lacks %s", list, want)
	}
	n.answer(KeyAuthMethod, v)
	if v == ValueCHAP {
		l.auth = authWaitAlgorithm
	} else {
		l.auth = authDone
	}
	return nil
}

func (l *Login) chapChallengeStep(algs string, n *negotiation) error {
	if l.auth != authWaitAlgorithm {
		return authFailure("CHAP_A out of sequence")
	}
	md5Alg := strconv.Itoa(ChapAlgorithmMD5)
	if _, ok := firstSupported(algs, func(v string) bool { return v == md5Alg }); !ok {
		return authFailure("no supported CHAP algorithm in %.64q", algs)
	}
	var buf [1 + ChapChallengeLength]byte
	if _, err := io.ReadFull(l.cfg.Rand, buf[:]); err != nil {
		return loginErr(StatusTargetError, DetailTargetError, "read CHAP challenge: %v", err)
	}
	l.chapID = buf[0]
	copy(l.chapChallenge[:], buf[1:])
	n.answer(KeyChapA, md5Alg)
	n.answer(KeyChapI, strconv.Itoa(int(l.chapID)))
	n.answer(KeyChapC, EncodeHex(l.chapChallenge[:]))
	l.auth = authWaitResponse
	return nil
}

func (l *Login) chapResponseStep(s *secKeys, n *negotiation) error {
	if l.auth != authWaitResponse {
		return authFailure("CHAP response out of sequence")
	}
	if s.chapN == nil || s.chapR == nil {
		return authFailure("CHAP_N and CHAP_R must come together")
	}
	if (s.chapI == nil) != (s.chapC == nil) {
		return authFailure("CHAP_I and CHAP_C must come together")
	}
	if subtle.ConstantTimeCompare([]byte(*s.chapN), []byte(l.chap.User)) != 1 {
		return authFailure("wrong CHAP_N")
	}
	r, err := DecodeBinary(*s.chapR)
	if err != nil || len(r) != md5.Size {
		return authFailure("malformed CHAP_R")
	}
	if !ChapVerify(l.chapID, []byte(l.chap.Secret), l.chapChallenge[:], r) {
		return authFailure("wrong CHAP_R")
	}
	if s.chapI != nil {
		resp, err := l.mutualResponse(*s.chapI, *s.chapC)
		if err != nil {
			return err
		}
		n.answer(KeyChapN, l.mutual.User)
		n.answer(KeyChapR, resp)
	}
	l.auth = authDone
	return nil
}

// mutualResponse answers the initiator's challenge with the target's
// credentials.
func (l *Login) mutualResponse(idValue, challengeValue string) (string, error) {
	if l.mutual == nil {
		return "", authFailure("initiator asked for mutual CHAP, none configured")
	}
	// RFC 7143 section 12.1.3: a secret must never authenticate both
	// directions, or a reflected challenge would pass.
	if l.mutual.Secret == l.chap.Secret {
		return "", authFailure("mutual CHAP secret equals the initiator's")
	}
	id, ok := parseNumber(idValue)
	if !ok || id > maxChapID {
		return "", authFailure("malformed CHAP_I")
	}
	c, err := DecodeBinary(challengeValue)
	if err != nil || len(c) < ChapMinChallenge || len(c) > ChapMaxChallenge {
		return "", authFailure("malformed CHAP_C")
	}
	if bytes.Equal(c, l.chapChallenge[:]) {
		return "", authFailure("reflected CHAP challenge")
	}
	sum := ChapResponse(byte(id), []byte(l.mutual.Secret), c)
	return EncodeHex(sum[:]), nil
}
