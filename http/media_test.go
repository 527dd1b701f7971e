package http

import (
	"encoding/binary"
	"testing"
)

// box builds an ISO media / QuickTime box: a 4-byte big-endian size, the
// type, then the payload.
func box(typ string, payload ...byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(8+len(payload)))
	return append(append(b, typ...), payload...)
}

func ftyp(major string, compatible ...string) []byte {
	payload := append([]byte(major), 0, 0, 2, 0)
	for _, c := range compatible {
		payload = append(payload, c...)
	}
	return box("ftyp", payload...)
}

func TestSniffVideo(t *testing.T) {
	mvhd := box("mvhd", make([]byte, 12)...)
	cases := []struct {
		name string
		head []byte
		want string
	}{
		{"mp4 isom", append(ftyp("isom", "isom", "iso2", "avc1", "mp41"), box("free")...), "video/mp4"},
		{"mp4 mp42", ftyp("mp42", "mp42", "isom"), "video/mp4"},
		{"quicktime with ftyp", ftyp("qt  ", "qt  "), "video/quicktime"},
		{"quicktime, movie atom first", append(binary.BigEndian.AppendUint32(nil, 1000), append([]byte("moov"), mvhd...)...), "video/quicktime"},
		{"quicktime, wide then mdat", append(box("wide"), box("mdat", make([]byte, 16)...)...), "video/quicktime"},
		{"webm", []byte{0x1A, 0x45, 0xDF, 0xA3, 0x9F, 0x42, 0x86, 0x81, 0x01, 0x42, 0xF7, 0x81, 0x01, 0x42, 0xF2, 0x81, 0x04, 0x42, 0xF3, 0x81, 0x08, 0x42, 0x82, 0x84, 'w', 'e', 'b', 'm'}, "video/webm"},

		{"heic picture", ftyp("heic", "mif1", "heic"), ""},
		{"avif picture", ftyp("avif", "avif", "mif1", "miaf"), ""},
		{"m4a audio", ftyp("M4A ", "M4A ", "mp42", "isom"), ""},
		{"ftyp with an absurd size", append([]byte{0x7f, 0, 0, 0}, append([]byte("ftypisom"), make([]byte, 8)...)...), ""},
		{"text that says free", []byte("abcdfree this is just a text file"), ""},
		{"text that says moov", []byte("abcdmoov this is just a text file"), ""},
		{"padding atom running past the head", append(binary.BigEndian.AppendUint32(nil, 4000), []byte("free and more text")...), ""},
		{"png", []byte("\\x89PNG\\r\\n\\x1a\\n0000000000000"), ""},
		{"too short", []byte("ftyp"), ""},
	}
	for _, c := range cases {
		if got := sniffVideo(c.head); got != c.want {
			t.Errorf("%s: sniffVideo = %q; want %q", c.name, got, c.want)
		}
	}
}
