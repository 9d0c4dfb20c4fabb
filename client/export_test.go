package client

// SharedClusterSeeds gives the Examples, which live in package client_test,
// the HTTP addresses of the cluster TestMain starts.
func SharedClusterSeeds() []string { return exampleSeeds() }
