package hugepages

import "testing"

func TestParseMode(t *testing.T) {
	for in, want := range map[string]string{
		"always [madvise] never\n":                   ModeMadvise,
		"[always] madvise never\n":                   ModeAlways,
		"always madvise [never]":                     ModeNever,
		"always defer defer+madvise [madvise] never": ModeMadvise,
		"":                     ModeUnknown,
		"always madvise never": ModeUnknown,
		"[]":                   ModeUnknown,
	} {
		if got := parseMode(in); got != want {
			t.Errorf("parseMode(%q) = %q, want %q", in, got, want)
		}
	}
}
