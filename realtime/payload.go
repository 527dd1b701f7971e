package realtime

// CloseInvalidPayload closes a connection that sent a text frame that is
// not UTF-8 (RFC 6455).
const CloseInvalidPayload = 1007

// invalidPayloadClose: a text frame that is not UTF-8.
var invalidPayloadClose = &closeMsg{CloseInvalidPayload, "invalid UTF-8"}

// InvalidPayload closes a session whose client sent a text frame that is
// not UTF-8 (RFC 6455 section 8.1: fail the connection, code 1007).
func (h *Hub) InvalidPayload(so *Session) { h.closeNow(so, invalidPayloadClose) }
