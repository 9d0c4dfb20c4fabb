package authtest_test

import (
	"net/netip"
	"testing"

	"github.com/ringkv/ringkv/internal/auth"
	"github.com/ringkv/ringkv/internal/auth/authtest"
)

// The file is one the server accepts: each user logs in with its password,
// holding the rights it was given, and with no other password.
func TestWriteUsersFileIsReadByAuth(t *testing.T) {
	path := authtest.WriteUsersFile(t, nil,
		authtest.User{Name: "reader", Password: "readpw", Rights: []string{"read"}},
		authtest.User{Name: "ops", Password: "opspw", Rights: []string{"read", "write", "admin"}},
	)
	a, err := auth.New(auth.Config{UsersFile: path})
	if err != nil {
		t.Fatal(err)
	}
	src := netip.MustParseAddr("127.0.0.1")
	for _, tc := range []struct {
		user, pass string
		want       auth.Rights
	}{
		{"reader", "readpw", auth.Read},
		{"ops", "opspw", auth.Read | auth.Write | auth.Admin},
	} {
		id, err := a.Verify([]byte(tc.user), []byte(tc.pass), src, "resp")
		if err != nil || id.Name != tc.user || id.Rights != tc.want {
			t.Errorf("%s: %+v, %v; want rights %v", tc.user, id, err, tc.want)
		}
	}
	if _, err := a.Verify([]byte("reader"), []byte("opspw"), src, "resp"); err == nil {
		t.Error("reader logged in with ops' password")
	}
}
