package chatd_test

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// browserHung bounds each wait on the page: it only says "this hung", it
// is not what a test measures.
const browserHung = 90 * time.Second

// findChromium returns the path of a Chromium or Chrome binary, or skips.
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no Chromium found (looked for chromium, chromium-browser, google-chrome in PATH): " +
		"the browser test needs one (Debian/Ubuntu: apt-get install chromium; `make test` installs it as root)")
	return ""
}

// startBrowser starts one headless Chromium for the test and returns its
// context; each browserUser opens its own browser context (its own cookies
// and storage) in it.
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	exe := findChromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox, // tests run as root in CI, where the sandbox cannot start
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.WindowSize(1100, 700),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	browser, cancelBrowser := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancelBrowser(); cancelAlloc() })
	// The first run starts the browser, which lives as long as the context
	// of that run: this one, not one with a timeout.
	if err := chromedp.Do(browser); err != nil {
		t.Fatalf("start %s: %v", exe, err)
	}
	return browser
}

// browserUser is one person at the web client, in a browser context of
// their own.
type browserUser struct {
	t    *testing.T
	name string
	ctx  context.Context

	mu     sync.Mutex
	errors []string // uncaught exceptions of the page
}

func newBrowserUser(t *testing.T, browser context.Context, name string) *browserUser {
	t.Helper()
	u := &browserUser{t: t, name: name}
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext(),
		chromedp.WithListener(func(ev any) {
			if e, ok := ev.(*runtime.EventExceptionThrown); ok {
				u.mu.Lock()
				d := e.ExceptionDetails
				msg := d.Text
				if d.Exception != nil {
					msg += " " + d.Exception.Description
				}
				u.errors = append(u.errors, fmt.Sprintf("%s (%s:%d)", msg, d.URL, d.LineNumber+1))
				u.mu.Unlock()
			}
		}))
	t.Cleanup(cancel)
	u.ctx = ctx
	// The first run opens the tab, which lives as long as the context of
	// that run (so: not one with a timeout).
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1100, 700)); err != nil {
		t.Fatalf("%s: open a tab: %v", name, err)
	}
	return u
}

// do runs steps, failing the test with what was being done.
func (u *browserUser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	u.t.Helper()
	ctx, cancel := context.WithTimeout(u.ctx, browserHung)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		u.mu.Lock()
		defer u.mu.Unlock()
		u.t.Fatalf("%s: %s: %v (page exceptions: %q)", u.name, what, err, u.errors)
	}
}

// waitFor polls a JavaScript condition on the page until it holds.
func (u *browserUser) waitFor(what, js string) {
	u.t.Helper()
	u.do("wait until "+what, chromedp.Action[chromedp.Void](func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Poll[bool](js, chromedp.WithPollingInterval(50*time.Millisecond),
			chromedp.WithPollingTimeout(browserHung))(ctx, t)
		return chromedp.Void{}, err
	}))
}

func (u *browserUser) eval(js string) string {
	u.t.Helper()
	ctx, cancel := context.WithTimeout(u.ctx, browserHung)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
	if err != nil {
		u.t.Fatalf("%s: evaluate %s: %v", u.name, js, err)
	}
	return v
}

func (u *browserUser) screenshot(path string) {
	u.t.Helper()
	ctx, cancel := context.WithTimeout(u.ctx, browserHung)
	defer cancel()
	b, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		u.t.Fatalf("%s: screenshot: %v", u.name, err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		u.t.Fatal(err)
	}
}

// register signs up at the page and waits for the chat screen.
func (u *browserUser) register(base, password string) {
	u.t.Helper()
	u.do("register",
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible("#auth-form"),
		chromedp.SendKeys("#username", u.name),
		chromedp.SendKeys("#password", password),
		chromedp.Click("#register-btn"),
		chromedp.WaitVisible("#rooms"),
	)
	u.waitFor("the user's name shows", fmt.Sprintf(`document.getElementById("me-name").textContent === %q`, u.name))
}

// roomLive waits until the room is open and its WebSocket connected.
func (u *browserUser) roomLive(room string) {
	u.t.Helper()
	u.waitFor("room "+room+" is open and live", fmt.Sprintf(
		`document.getElementById("room-view").dataset.room === %q && document.getElementById("conn-status").dataset.state === "open"`, room))
}

// say types a message into the composer and sends it.
func (u *browserUser) say(text string) {
	u.t.Helper()
	u.do("send "+text, chromedp.SendKeys("#composer-text", text), chromedp.Click("#send-btn"))
	u.waitFor("the sent message shows", hasMessage(text, true))
}

// hasMessage is a condition: a message with exactly this text is shown,
// as one's own or as someone else's.
func hasMessage(text string, mine bool) string {
	sel := "#messages li.message:not(.mine) .text"
	if mine {
		sel = "#messages li.message.mine .text"
	}
	return fmt.Sprintf(`[...document.querySelectorAll(%q)].some((e) => e.textContent === %q)`, sel, text)
}

// readTick is a condition: one's own message with this text shows as read.
func readTick(text string) string {
	return fmt.Sprintf(`[...document.querySelectorAll("#messages li.message.mine")].some((li) =>
		li.querySelector(".text")?.textContent === %q && li.querySelector(".tick.read") !== null)`, text)
}

// TestBrowserChat drives two people through the web client in headless
// Chromium: sign-up, a group, joining it, a message each way, typing,
// read ticks, unread counts, a picture, and logout.
func TestBrowserChat(t *testing.T) {
	browser := startBrowser(t)
	s := startServer(t)
	const password = "correct-horse-1"
	n := userSeq.Add(1)
	alice := newBrowserUser(t, browser, fmt.Sprintf("alice%d", n))
	bob := newBrowserUser(t, browser, fmt.Sprintf("bob%d", n))

	// Bob's browser reaches the server through a proxy that can cut his
	// connections: his client must resume the room where it left off.
	bobNet := newCutProxy(t, strings.TrimPrefix(s.base, "http://"))
	alice.register(s.base, password)
	bob.register(bobNet.URL(), password)

	// Alice creates a group; Bob joins it by its number.
	alice.do("create a group",
		chromedp.SetValue("#room-type", "group"),
		chromedp.SendKeys("#room-name", "Browser test"),
		chromedp.Click("#create-btn"),
		chromedp.WaitVisible("#room-view"))
	room := alice.eval(`document.getElementById("room-view").dataset.room`)
	if _, err := strconv.Atoi(room); err != nil {
		t.Fatalf("the open room's number is %q", room)
	}
	alice.roomLive(room)
	bob.do("join the group", chromedp.SendKeys("#join-id", room), chromedp.Click("#join-btn"))
	bob.roomLive(room)
	alice.waitFor("Alice sees Bob join", `document.getElementById("room-info").textContent.includes("2 members")`)

	// A message from Alice reaches Bob live; Bob has the room open, so he
	// reads it and Alice sees the read tick.
	alice.say("Hello Bob!")
	bob.waitFor("Bob sees Alice's message", hasMessage("Hello Bob!", false))
	alice.waitFor("Alice sees her message read", readTick("Hello Bob!"))

	// Bob types: Alice sees it. Then he sends, and it reaches her.
	bob.do("start typing", chromedp.SendKeys("#composer-text", "Hi Alice"))
	alice.waitFor("Alice sees Bob typing", `document.getElementById("typing").textContent.includes("is typing")`)
	bob.do("send", chromedp.Click("#send-btn"))
	alice.waitFor("Alice sees Bob's message", hasMessage("Hi Alice", false))
	bob.waitFor("Bob sees his message read", readTick("Hi Alice"))

	// A picture from Bob shows at Alice's (fetched with her token).
	pic := filepath.Join(t.TempDir(), "picture.png")
	writeTestPNG(t, pic)
	bob.do("attach a picture",
		chromedp.SetUploadFiles("#attach", []string{pic}),
		chromedp.SendKeys("#composer-text", "A picture"),
		chromedp.Click("#send-btn"))
	alice.waitFor("Alice sees Bob's picture", `[...document.querySelectorAll("#messages li.message:not(.mine) img")].some((i) =>
		i.src.startsWith("blob:") && i.complete && i.naturalWidth === 160)`)

	// Bob opens a room of his own; a message in the group then counts as
	// unread in his list, until he opens the group again.
	bob.do("create a second room", chromedp.SendKeys("#room-name", "Bob's notes"), chromedp.Click("#create-btn"))
	bob.waitFor("Bob's second room is open", fmt.Sprintf(`document.getElementById("room-view").dataset.room !== %q &&
		document.getElementById("room-title").textContent === "Bob's notes"`, room))
	alice.say("Are you there?")
	unread := fmt.Sprintf(`document.querySelector('#rooms li[data-room=%q] .unread')`, room)
	bob.waitFor("Bob sees one unread message in the group", unread+`?.textContent === "1"`)
	bob.do("open the group again", chromedp.Click(fmt.Sprintf(`#rooms li[data-room=%q]`, room)))
	bob.roomLive(room)
	bob.waitFor("the group has no unread count", unread+` === null`)
	alice.waitFor("Alice sees her last message read", readTick("Are you there?"))

	// Bob's connection drops. What Alice says meanwhile reaches him once
	// he is back: his socket resumes from the last position it heard.
	bobNet.cut()
	bob.waitFor("Bob's socket sees the drop", `document.getElementById("conn-status").dataset.state !== "open"`)
	alice.say("Sent while you were offline")
	bobNet.restore()
	bob.roomLive(room)
	bob.waitFor("Bob gets what was said while he was offline", hasMessage("Sent while you were offline", false))
	alice.waitFor("Alice sees it read", readTick("Sent while you were offline"))

	dir := t.TempDir()
	shots := []string{filepath.Join(dir, "alice.png"), filepath.Join(dir, "bob.png")}
	alice.screenshot(shots[0])
	bob.screenshot(shots[1])
	if out := os.Getenv("CHAT_SCREENSHOT_DIR"); out != "" {
		if err := os.MkdirAll(out, 0o755); err != nil {
			t.Fatal(err)
		}
		alice.screenshot(filepath.Join(out, "browser-alice.png"))
		bob.screenshot(filepath.Join(out, "browser-bob.png"))
	}
	t.Logf("screenshots: %v", shots)

	// Logging out returns to the login form, and the page no longer holds
	// a session: a reload stays logged out.
	alice.do("log out", chromedp.Click("#logout-btn"), chromedp.WaitVisible("#auth-form"))
	alice.do("reload", chromedp.Reload(), chromedp.WaitVisible("#auth-form"))
	if got := alice.eval(`sessionStorage.getItem("evchat.session") ?? ""`); got != "" {
		t.Fatalf("the session is still stored after logout: %s", got)
	}

	for _, u := range []*browserUser{alice, bob} {
		u.mu.Lock()
		if len(u.errors) > 0 {
			t.Errorf("%s: page exceptions: %q", u.name, u.errors)
		}
		u.mu.Unlock()
	}
}

// writeTestPNG writes a 160x90 picture.
func writeTestPNG(t *testing.T, path string) {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 160, 90))
	for y := range 90 {
		for x := range 160 {
			img.Set(x, y, color.RGBA{R: uint8(x), G: uint8(80 + y), B: 200, A: 255})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestWebClientServed checks what the server answers for the client's
// paths beside the API's (the API adds a trailing slash to every path; the
// client's files must not get one), and that other paths stay 404.
func TestWebClientServed(t *testing.T) {
	s := startServer(t)
	for _, c := range []struct{ path, ctype string }{
		{"/", "text/html; charset=utf-8"},
		{"/app/app.js", "text/javascript; charset=utf-8"},
		{"/app/app.css", "text/css; charset=utf-8"},
	} {
		r := s.do("GET", c.path, "", nil)
		if r.Status != http.StatusOK || r.Header.Get("Content-Type") != c.ctype ||
			r.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: %d %q %q", c.path, r.Status, r.Header.Get("Content-Type"), r.Header.Get("X-Content-Type-Options"))
		}
	}
	if r := s.do("GET", "/", "", nil); !strings.Contains(string(r.Body), `src="/app/app.js"`) {
		t.Errorf("GET / is not the client's page: %.200s", r.Body)
	}
	for _, p := range []string{"/app/missing.js", "/app/", "/no-such-thing/", "/list-chatroom/"} {
		if r := s.do("GET", p, "", nil); r.Status != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, r.Status)
		}
	}
	// An unknown API path answers as before: 404 with a JSON detail.
	r := s.do("GET", "/no-such-thing/", "", nil)
	if d, _ := r.Map(t)["detail"].(string); d == "" {
		t.Errorf("GET /no-such-thing/: %s, want a JSON detail", r.Body)
	}
}
