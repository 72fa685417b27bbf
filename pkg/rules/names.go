package rules

import "strings"

// Nearest is the candidate closest to name when close enough to be a typo of it, else "": the
// did-you-mean of the rules, for the CLI's own checks (a mistyped kind).
func Nearest(name string, candidates []string) string { return nearest(name, candidates) }

// nearest returns the candidate closest to name by edit distance when it is close enough to be a typo
// (at most 3 edits and under a third of the name), else "" (also when name itself is a candidate). Ties go to the first candidate in sorted
// order, so the suggestion is stable.
func nearest(name string, candidates []string) string {
	best, bestD := "", -1
	for _, cand := range candidates {
		if cand == name {
			return "" // the name exists: nothing to correct
		}
		d := editDistance(strings.ToLower(name), strings.ToLower(cand))
		if bestD < 0 || d < bestD || (d == bestD && cand < best) {
			best, bestD = cand, d
		}
	}
	if bestD < 0 || bestD > 3 || bestD*3 > len([]rune(name)) {
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance over runes. Names are short (≤ 253 runes in Kubernetes),
// and longer inputs are cut so an absurd annotation cannot cost quadratic time.
func editDistance(a, b string) int {
	const maxRunes = 300
	ra, rb := []rune(a), []rune(b)
	if len(ra) > maxRunes {
		ra = ra[:maxRunes]
	}
	if len(rb) > maxRunes {
		rb = rb[:maxRunes]
	}
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
