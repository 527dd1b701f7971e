package http

import (
	"context"
	"time"

	"github.com/evchat/evchat/commands"
	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/readmodel"
)

// Commands are the writes the API asks for (package commands). Each
// validates, appends to the log and returns what it wrote, with the log
// position the read model must reach to show it.
type Commands interface {
	Limits() domain.Limits
	// Registry decodes the events the commands write; WebSocket frames are
	// rendered from them.
	Registry() *domain.Registry
	Register(ctx context.Context, a commands.Actor, cmd commands.Register, h commands.PasswordHasher) (commands.Registered, error)
	CreateChatroom(ctx context.Context, a commands.Actor, cmd commands.CreateChatroom) (commands.Created, error)
	CreateInvite(ctx context.Context, a commands.Actor, conversation int64) (commands.Invite, error)
	JoinChatroom(ctx context.Context, a commands.Actor, conversation int64, invite string) (commands.Joined, error)
	LeaveChatroom(ctx context.Context, a commands.Actor, conversation int64) (commands.Written, error)
	SendMessage(ctx context.Context, a commands.Actor, cmd commands.SendMessage) (commands.Sent, error)
	MarkRead(ctx context.Context, a commands.Actor, cmd commands.MarkRead) (commands.Read, error)
	// A message's life after its send (message_life.go).
	EditMessage(ctx context.Context, a commands.Actor, id int64, text string) (commands.Changed, error)
	DeleteMessage(ctx context.Context, a commands.Actor, id int64) (commands.Changed, error)
	React(ctx context.Context, a commands.Actor, id int64, emoji string, add bool) (commands.Changed, error)
	// Group administration (rooms.go).
	UpdateChatroom(ctx context.Context, a commands.Actor, cmd commands.UpdateChatroom) (commands.Written, error)
	AddMember(ctx context.Context, a commands.Actor, conversation, user int64) (commands.Joined, error)
	RemoveMember(ctx context.Context, a commands.Actor, conversation, user int64) (commands.Written, error)
	PromoteAdmin(ctx context.Context, a commands.Actor, conversation, user int64) (commands.Written, error)

	// Conversation is a room as the write side knows it, for the checks a
	// request makes before it reads a body (a send's membership).
	Conversation(ctx context.Context, id int64) (*domain.Conversation, error)
	// KeyedMessage is the message a send with this idempotency key wrote.
	KeyedMessage(ctx context.Context, a commands.Actor, conversation int64, key string) (domain.MessageSent, time.Time, error)
}

// Queries are the reads the API answers from the read model (package
// readmodel). They show the log up to the watermark, which a request
// waits on when it must see its own writes.
type Queries interface {
	UserByUsername(ctx context.Context, username string) (readmodel.User, error)
	Message(ctx context.Context, id int64) (readmodel.Message, error)
	ConversationMessages(ctx context.Context, conversation int64, p readmodel.Page) (readmodel.PageResult, error)
	UserMessages(ctx context.Context, user int64, p readmodel.Page) (readmodel.PageResult, error)
	Chatroom(ctx context.Context, id int64) (readmodel.Chatroom, error)
	UserChatrooms(ctx context.Context, user int64) ([]readmodel.Chatroom, error)
	Membership(ctx context.Context, conversation, user int64) (exists, member bool, err error)
	AttachmentAccess(ctx context.Context, key string, user int64) (exists bool, contentType string, err error)
	MessageHistory(ctx context.Context, id int64) ([]readmodel.Version, error)
	// CoMembers and SharesRoom: who shares a room with a user (presence).
	CoMembers(ctx context.Context, user int64) ([]int64, error)
	SharesRoom(ctx context.Context, a, b int64) (bool, error)
}
