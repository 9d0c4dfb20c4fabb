package client_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ringkv/ringkv/client"
)

// seeds returns the HTTP addresses of a running cluster; the Examples run
// against three nodes started in the test process.
func seeds() []string { return client.SharedClusterSeeds() }

func Example() {
	ctx := context.Background()
	c, err := client.New(ctx, client.Config{Seeds: seeds()})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	if err := c.Set(ctx, "example:greeting", []byte("hello, ring")); err != nil {
		fmt.Println(err)
		return
	}
	v, err := c.Get(ctx, "example:greeting")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(string(v))
	// Output: hello, ring
}

func ExampleClient_Get_notFound() {
	ctx := context.Background()
	c, err := client.New(ctx, client.Config{Seeds: seeds()})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	_, err = c.Get(ctx, "example:never-written")
	fmt.Println(errors.Is(err, client.ErrNotFound))
	// Output: true
}

func ExampleClient_Set_ttlAndConditions() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.New(ctx, client.Config{Seeds: seeds()})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	_, _ = c.Delete(ctx, "example:session") // start afresh; absent is fine

	// A session that expires in an hour, written only if it is new.
	err = c.Set(ctx, "example:session", []byte("s1"), client.WithTTL(time.Hour), client.NX())
	fmt.Println("first:", err)
	err = c.Set(ctx, "example:session", []byte("s2"), client.NX())
	fmt.Println("second is not set:", errors.Is(err, client.ErrNotSet))

	ttl, err := c.TTL(ctx, "example:session")
	fmt.Println("expires within the hour:", err == nil && ttl > 59*time.Minute && ttl <= time.Hour)
	// Output:
	// first: <nil>
	// second is not set: true
	// expires within the hour: true
}

func ExampleWithConsistency() {
	ctx := context.Background()
	// Writes and reads at QUORUM unless a call says otherwise.
	c, err := client.New(ctx, client.Config{Seeds: seeds(), Consistency: client.Quorum})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	// Every replica acknowledges this write before Set returns, so a read
	// at ONE on any replica sees it.
	if err := c.Set(ctx, "example:config", []byte("v2"), client.WithConsistency(client.All)); err != nil {
		fmt.Println(err)
		return
	}
	v, err := c.Get(ctx, "example:config", client.WithConsistency(client.One))
	fmt.Println(string(v), err)
	// Output: v2 <nil>
}

func ExampleClient_MSet() {
	ctx := context.Background()
	c, err := client.New(ctx, client.Config{Seeds: seeds()})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	err = c.MSet(ctx, []client.KV{
		{Key: "example:fruit:1", Value: []byte("apple")},
		{Key: "example:fruit:2", Value: []byte("banana")},
		{Key: "example:fruit:3", Value: []byte("cherry")},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	vals, err := c.MGet(ctx, []string{"example:fruit:3", "example:fruit:missing", "example:fruit:1"})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, v := range vals {
		fmt.Printf("%q\n", v)
	}
	// Output:
	// "cherry"
	// ""
	// "apple"
}

func ExampleClient_Scan() {
	ctx := context.Background()
	c, err := client.New(ctx, client.Config{Seeds: seeds()})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	for _, k := range []string{"example:color:red", "example:color:green", "example:color:blue"} {
		if err := c.Set(ctx, k, []byte("1")); err != nil {
			fmt.Println(err)
			return
		}
	}
	var keys []string
	for key, err := range c.Scan(ctx, client.Match("example:color:*"), client.Count(2)) {
		if err != nil {
			fmt.Println(err)
			return
		}
		keys = append(keys, key)
	}
	// Keys come in ring order, which is not their lexical order.
	slices.Sort(keys)
	fmt.Println(keys)
	// Output: [example:color:blue example:color:green example:color:red]
}

func ExampleNearCache() {
	ctx := context.Background()
	c, err := client.New(ctx, client.Config{
		Seeds: seeds(),
		// Reads of a key may be served from memory for up to 100 ms.
		NearCache: client.NearCache{Size: 10000, TTL: 100 * time.Millisecond},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	if err := c.Set(ctx, "example:hot", []byte("v1")); err != nil {
		fmt.Println(err)
		return
	}
	v, _ := c.Get(ctx, "example:hot") // from the cluster, now cached
	fmt.Println(string(v))
	// This client's own write invalidates the cached value at once.
	if err := c.Set(ctx, "example:hot", []byte("v2")); err != nil {
		fmt.Println(err)
		return
	}
	v, _ = c.Get(ctx, "example:hot")
	fmt.Println(string(v))
	// Output:
	// v1
	// v2
}
