package resp

// globMatch reports whether s matches the Redis glob pattern p: '*', '?',
// '[abc]', '[^abc]', '[a-z]' and '\' escapes, byte-wise and case-sensitive, as
// SCAN MATCH and CONFIG GET use it.
func globMatch(p, s []byte) bool {
	// Iterative with one backtrack point for the last '*': linear in practice
	// and never exponential, unlike the naive recursion.
	var starP, starS = -1, 0
	pi, si := 0, 0
	for si < len(s) {
		if pi < len(p) {
			switch p[pi] {
			case '*':
				for pi < len(p) && p[pi] == '*' {
					pi++
				}
				if pi == len(p) {
					return true
				}
				starP, starS = pi, si
				continue
			case '?':
				pi++
				si++
				continue
			case '[':
				if n, ok := matchClass(p[pi:], s[si]); n > 0 {
					if ok {
						pi += n
						si++
						continue
					}
					break
				}
				if s[si] == '[' {
					pi++
					si++
					continue
				}
			case '\\':
				if pi+1 < len(p) {
					if p[pi+1] == s[si] {
						pi += 2
						si++
						continue
					}
					break
				}
				fallthrough
			default:
				if p[pi] == s[si] {
					pi++
					si++
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		starS++
		pi, si = starP, starS
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// matchClass matches c against the class at the start of p ("[...]"). n is the
// class's length in p, 0 when the class is unterminated (then '[' is literal).
func matchClass(p []byte, c byte) (n int, ok bool) {
	i := 1
	neg := i < len(p) && p[i] == '^'
	if neg {
		i++
	}
	first := true
	for i < len(p) && (p[i] != ']' || first) {
		first = false
		switch {
		case p[i] == '\\' && i+1 < len(p):
			ok = ok || p[i+1] == c
			i += 2
		case i+2 < len(p) && p[i+1] == '-' && p[i+2] != ']':
			lo, hi := p[i], p[i+2]
			if lo > hi {
				lo, hi = hi, lo
			}
			ok = ok || (c >= lo && c <= hi)
			i += 3
		default:
			ok = ok || p[i] == c
			i++
		}
	}
	if i >= len(p) {
		return 0, false
	}
	return i + 1, ok != neg
}
