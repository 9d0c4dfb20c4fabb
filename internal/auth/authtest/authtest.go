// Package authtest writes the users files (--users-file) that tests of
// authentication need, in the layout internal/auth reads. It is a package of
// its own so that the server binary links none of it.
package authtest

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/bcrypt"
	"gopkg.in/yaml.v3"
)

// User is one user of a users file, with the password in the clear.
type User struct {
	Name     string
	Password string
	Rights   []string // read, write, admin
}

type entry struct {
	Name     string   `yaml:"name"`
	Password string   `yaml:"password"`
	Rights   []string `yaml:"rights,flow"`
}

// WriteUsersFile writes a users file of users into a temporary directory of
// tb and returns its path. hash makes each stored hash; nil hashes with
// bcrypt at its lowest cost, which keeps a test fast where the server's
// default cost would spend 50 ms on every one. Tests of the binary pass its
// `ringkv hash-password`, the way an operator makes them.
func WriteUsersFile(tb testing.TB, hash func(password string) string, users ...User) string {
	tb.Helper()
	if hash == nil {
		hash = func(pw string) string {
			h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
			if err != nil {
				tb.Fatal(err)
			}
			return string(h)
		}
	}
	var f struct {
		Users []entry `yaml:"users"`
	}
	for _, u := range users {
		f.Users = append(f.Users, entry{Name: u.Name, Password: hash(u.Password), Rights: u.Rights})
	}
	data, err := yaml.Marshal(f)
	if err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(tb.TempDir(), "users.yaml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

// ReaderWriterOps are three users with one kind of right each, for tests
// of what each right allows: reader (read; password readpw), writer (read
// and write; writepw) and ops (admin; opspw).
func ReaderWriterOps() []User {
	return []User{
		{Name: "reader", Password: "readpw", Rights: []string{"read"}},
		{Name: "writer", Password: "writepw", Rights: []string{"read", "write"}},
		{Name: "ops", Password: "opspw", Rights: []string{"admin"}},
	}
}
