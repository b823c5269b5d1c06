package anaconda

import (
	"crypto/sha512"
	"strings"
)

// cryptAlphabet is crypt(3)'s base64 alphabet.
const cryptAlphabet = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// SHA512Crypt computes a "$6$" password hash, the SHA-crypt algorithm of
// glibc (Ulrich Drepper, "Unix crypt using SHA-256 and SHA-512"), with the
// default 5000 rounds. Anaconda writes rootpw --plaintext this way.
func SHA512Crypt(password, salt string) string {
	if len(salt) > 16 {
		salt = salt[:16]
	}
	p, s := []byte(password), []byte(salt)
	b := sha512.New()
	b.Write(p)
	b.Write(s)
	b.Write(p)
	bsum := b.Sum(nil)
	a := sha512.New()
	a.Write(p)
	a.Write(s)
	for i := len(p); i > 0; i -= 64 {
		if i > 64 {
			a.Write(bsum)
		} else {
			a.Write(bsum[:i])
		}
	}
	for i := len(p); i > 0; i >>= 1 {
		if i&1 != 0 {
			a.Write(bsum)
		} else {
			a.Write(p)
		}
	}
	asum := a.Sum(nil)
	dp := sha512.New()
	for range p {
		dp.Write(p)
	}
	dpSum := dp.Sum(nil)
	pSeq := make([]byte, 0, len(p))
	for i := len(p); i > 0; i -= 64 {
		pSeq = append(pSeq, dpSum[:min(i, 64)]...)
	}
	ds := sha512.New()
	for i := 0; i < 16+int(asum[0]); i++ {
		ds.Write(s)
	}
	dsSum := ds.Sum(nil)
	sSeq := dsSum[:len(s)]
	c := asum
	for i := 0; i < 5000; i++ {
		h := sha512.New()
		if i&1 != 0 {
			h.Write(pSeq)
		} else {
			h.Write(c)
		}
		if i%3 != 0 {
			h.Write(sSeq)
		}
		if i%7 != 0 {
			h.Write(pSeq)
		}
		if i&1 != 0 {
			h.Write(c)
		} else {
			h.Write(pSeq)
		}
		c = h.Sum(nil)
	}
	var out strings.Builder
	out.WriteString("$6$" + salt + "$")
	enc := func(b2, b1, b0 byte, n int) {
		w := uint(b2)<<16 | uint(b1)<<8 | uint(b0)
		for ; n > 0; n-- {
			out.WriteByte(cryptAlphabet[w&0x3f])
			w >>= 6
		}
	}
	order := [][3]int{{0, 21, 42}, {22, 43, 1}, {44, 2, 23}, {3, 24, 45}, {25, 46, 4}, {47, 5, 26}, {6, 27, 48}, {28, 49, 7},
		{50, 8, 29}, {9, 30, 51}, {31, 52, 10}, {53, 11, 32}, {12, 33, 54}, {34, 55, 13}, {56, 14, 35}, {15, 36, 57},
		{37, 58, 16}, {59, 17, 38}, {18, 39, 60}, {40, 61, 19}, {62, 20, 41}}
	for _, o := range order {
		enc(c[o[0]], c[o[1]], c[o[2]], 4)
	}
	enc(0, 0, c[63], 2)
	return out.String()
}

// crypted reports whether s looks like a crypt(3) hash already.
func crypted(s string) bool {
	return strings.HasPrefix(s, "$") && strings.Count(s, "$") >= 3
}
