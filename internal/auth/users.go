// Package auth decides who a client is and what it may do, for the RESP and
// HTTP ports alike: the "default" user of --password, the named users of
// --users-file with bcrypt-hashed passwords and rights (read, write, admin),
// a cache of verified credentials so that a reconnect storm does not spend a
// bcrypt per connection, and a per-source limit on failed logins, which are
// logged sampled and counted.
package auth

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"golang.org/x/crypto/bcrypt"
	"gopkg.in/yaml.v3"
)

// Rights is a set of rights; a command or endpoint needs one of them.
type Rights uint8

// The rights a user may hold.
const (
	Read  Rights = 1 << iota // read keys (GET, SCAN, GET /v1/kv/...)
	Write                    // write and delete keys
	Admin                    // repair, decommission, metrics, debug endpoints, CONFIG
	// All is what the default user of --password holds.
	All = Read | Write | Admin
)

// DefaultUser is Redis' name for the user AUTH <password> logs in as.
const DefaultUser = "default"

var rightNames = []struct {
	r    Rights
	name string
}{{Read, "read"}, {Write, "write"}, {Admin, "admin"}}

// ParseRight parses one right's name.
func ParseRight(s string) (Rights, error) {
	for _, n := range rightNames {
		if strings.EqualFold(s, n.name) {
			return n.r, nil
		}
	}
	return 0, fmt.Errorf("unknown right %q, want read, write or admin", s)
}

// Has reports whether r holds every right of need.
func (r Rights) Has(need Rights) bool { return r&need == need }

func (r Rights) String() string {
	var names []string
	for _, n := range rightNames {
		if r&n.r != 0 {
			names = append(names, n.name)
		}
	}
	return strings.Join(names, ",")
}

// Identity is an authenticated user.
type Identity struct {
	Name   string
	Rights Rights
}

// user is one entry of the users file.
type user struct {
	name   string
	hash   []byte
	rights Rights
}

// usersFile is the YAML layout of --users-file.
type usersFile struct {
	Users []struct {
		Name     string   `yaml:"name"`
		Password string   `yaml:"password"`
		Rights   []string `yaml:"rights"`
	} `yaml:"users"`
}

// BcryptCost is the work factor of HashPassword: bcrypt's default, about
// 50 ms a check on a current core, which the credential cache pays once per
// user and password rather than once per connection.
const BcryptCost = bcrypt.DefaultCost

// HashPassword returns the bcrypt hash of password for a users file.
func HashPassword(password []byte) ([]byte, error) {
	if len(password) == 0 {
		return nil, errors.New("auth: empty password")
	}
	// bcrypt reads only the first 72 bytes; a longer password would be
	// accepted by any string sharing them, so refuse it outright.
	if len(password) > 72 {
		return nil, errors.New("auth: password longer than 72 bytes (bcrypt's limit)")
	}
	return bcrypt.GenerateFromPassword(password, BcryptCost)
}

// loadUsers reads and checks a users file.
func loadUsers(path string) ([]user, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth: users file: %w", err)
	}
	users, err := parseUsers(data)
	if err != nil {
		return nil, fmt.Errorf("auth: users file %s: %w", path, err)
	}
	return users, nil
}

func parseUsers(data []byte) ([]user, error) {
	var f usersFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, err
	}
	var users []user
	for i, u := range f.Users {
		if u.Name == "" {
			return nil, fmt.Errorf("user %d has no name", i+1)
		}
		if u.Name == DefaultUser {
			return nil, fmt.Errorf("user %q: the default user's password is --password", u.Name)
		}
		if slices.ContainsFunc(users, func(o user) bool { return o.name == u.Name }) {
			return nil, fmt.Errorf("user %q appears twice", u.Name)
		}
		if _, err := bcrypt.Cost([]byte(u.Password)); err != nil {
			return nil, fmt.Errorf("user %q: password is not a bcrypt hash (make one with `ringkv hash-password`): %w", u.Name, err)
		}
		var rights Rights
		for _, s := range u.Rights {
			r, err := ParseRight(s)
			if err != nil {
				return nil, fmt.Errorf("user %q: %w", u.Name, err)
			}
			rights |= r
		}
		if rights == 0 {
			return nil, fmt.Errorf("user %q has no rights (want any of read, write, admin)", u.Name)
		}
		users = append(users, user{name: u.Name, hash: []byte(u.Password), rights: rights})
	}
	return users, nil
}
