package domain

import (
	"unicode/utf8"

	"github.com/rivo/uniseg"
)

// MaxEmojiBytes bounds an emoji's encoding: the longest sequences (a family
// with skin tones, a subdivision flag) are well under it.
const MaxEmojiBytes = 64

// ErrBadEmoji is the refusal of a reaction that is not one emoji.
var ErrBadEmoji = FieldError("emoji", "Not a single emoji.")

// ValidEmoji reports whether s is exactly one grapheme cluster (Unicode
// UAX #29, as uniseg segments it) that is an emoji: a pictographic
// character with its modifiers, variation selectors, tags and zero-width
// joined parts, a flag of two regional indicators, or a keycap ("1️⃣").
func ValidEmoji(s string) bool {
	if s == "" || len(s) > MaxEmojiBytes || !utf8.ValidString(s) || uniseg.GraphemeClusterCount(s) != 1 {
		return false
	}
	runes := []rune(s)
	first := runes[0]
	switch {
	case isRegionalIndicator(first):
		return len(runes) == 2 && isRegionalIndicator(runes[1])
	case isKeycapBase(first):
		// 1⃣ or 1️⃣: the base, an optional VS16, the enclosing keycap.
		rest := runes[1:]
		if len(rest) > 0 && rest[0] == 0xFE0F {
			rest = rest[1:]
		}
		return len(rest) == 1 && rest[0] == 0x20E3
	case !isPictographic(first):
		return false
	}
	for _, r := range runes[1:] {
		switch {
		case r == 0x200D, r == 0xFE0F, r == 0x20E3: // ZWJ, emoji presentation, keycap
		case r >= 0x1F3FB && r <= 0x1F3FF: // skin tones
		case r >= 0xE0020 && r <= 0xE007F: // tags of subdivision flags
		case isPictographic(r):
		default:
			return false
		}
	}
	return true
}

func isRegionalIndicator(r rune) bool { return r >= 0x1F1E6 && r <= 0x1F1FF }

func isKeycapBase(r rune) bool { return r == '#' || r == '*' || (r >= '0' && r <= '9') }

// pictographic are the code point ranges of Unicode's Extended_Pictographic
// property (emoji-data.txt), merged where unassigned code points lie
// between: new emoji of a later Unicode version are accepted too.
var pictographic = [][2]rune{
	{0x00A9, 0x00A9}, {0x00AE, 0x00AE}, {0x203C, 0x203C}, {0x2049, 0x2049},
	{0x2122, 0x2122}, {0x2139, 0x2139}, {0x2194, 0x2199}, {0x21A9, 0x21AA},
	{0x231A, 0x231B}, {0x2328, 0x2328}, {0x2388, 0x2388}, {0x23CF, 0x23CF},
	{0x23E9, 0x23F3}, {0x23F8, 0x23FA}, {0x24C2, 0x24C2}, {0x25AA, 0x25AB},
	{0x25B6, 0x25B6}, {0x25C0, 0x25C0}, {0x25FB, 0x25FE}, {0x2600, 0x2605},
	{0x2607, 0x2612}, {0x2614, 0x2685}, {0x2690, 0x2705}, {0x2708, 0x2712},
	{0x2714, 0x2714}, {0x2716, 0x2716}, {0x271D, 0x271D}, {0x2721, 0x2721},
	{0x2728, 0x2728}, {0x2733, 0x2734}, {0x2744, 0x2744}, {0x2747, 0x2747},
	{0x274C, 0x274C}, {0x274E, 0x274E}, {0x2753, 0x2755}, {0x2757, 0x2757},
	{0x2763, 0x2767}, {0x2795, 0x2797}, {0x27A1, 0x27A1}, {0x27B0, 0x27B0},
	{0x27BF, 0x27BF}, {0x2934, 0x2935}, {0x2B05, 0x2B07}, {0x2B1B, 0x2B1C},
	{0x2B50, 0x2B50}, {0x2B55, 0x2B55}, {0x3030, 0x3030}, {0x303D, 0x303D},
	{0x3297, 0x3297}, {0x3299, 0x3299},
	{0x1F000, 0x1F0FF}, {0x1F10D, 0x1F10F}, {0x1F12F, 0x1F12F}, {0x1F16C, 0x1F171},
	{0x1F17E, 0x1F17F}, {0x1F18E, 0x1F18E}, {0x1F191, 0x1F19A}, {0x1F1AD, 0x1F1E5},
	{0x1F201, 0x1F20F}, {0x1F21A, 0x1F21A}, {0x1F22F, 0x1F22F}, {0x1F232, 0x1F23A},
	{0x1F23C, 0x1F23F}, {0x1F249, 0x1F3FA}, {0x1F400, 0x1F53D}, {0x1F546, 0x1F64F},
	{0x1F680, 0x1F6FF}, {0x1F774, 0x1F77F}, {0x1F7D5, 0x1F7FF}, {0x1F80C, 0x1F80F},
	{0x1F848, 0x1F84F}, {0x1F85A, 0x1F85F}, {0x1F888, 0x1F88F}, {0x1F8AE, 0x1F8FF},
	{0x1F90C, 0x1F93A}, {0x1F93C, 0x1F945}, {0x1F947, 0x1FAFF}, {0x1FC00, 0x1FFFD},
}

func isPictographic(r rune) bool {
	for _, rg := range pictographic {
		if r < rg[0] {
			return false
		}
		if r <= rg[1] {
			return true
		}
	}
	return false
}
