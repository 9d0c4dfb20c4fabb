package apitypes

// Error codes of the JSON error body. Clients switch on the code, never on the
// message, which is for people.
const (
	CodeBadRequest  = "BAD_REQUEST"
	CodeNotFound    = "NOT_FOUND"
	CodeTooLarge    = "TOO_LARGE"
	CodeUnavailable = "UNAVAILABLE"
	CodeTimeout     = "TIMEOUT"
	CodeInternal    = "INTERNAL"
	// CodeDiskFull: a replica's disk is below its reserve; writes fail until
	// an operator frees space, so retrying soon is pointless.
	CodeDiskFull = "DISK_FULL"
	// CodeOutOfMemory: the node holds more than its --max-memory and
	// refuses writes of new data; deletes and reads still work.
	CodeOutOfMemory = "OUT_OF_MEMORY"
)

// ErrorBody is the JSON body of every error response.
type ErrorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// Error codes of the guard, which every request passes before its handler.
const (
	// CodeUnauthorized: no credentials, or wrong ones (401).
	CodeUnauthorized = "UNAUTHORIZED"
	// CodeForbidden: the user lacks the right the endpoint needs, or the
	// request came from another site's page (403).
	CodeForbidden = "FORBIDDEN"
	// CodeUnsupportedMediaType: a state-changing request whose body is not
	// declared application/json or application/octet-stream (415).
	CodeUnsupportedMediaType = "UNSUPPORTED_MEDIA_TYPE"
	// CodeTooManyAttempts: the client's address failed to log in too often
	// lately (429).
	CodeTooManyAttempts = "TOO_MANY_ATTEMPTS"
)

// Error codes of the admin API's refusals: a request the node will not act on
// for a reason the operator can fix. They predate the codes above and are
// spelled without underscores; clients read them, so they stay.
const (
	CodeAdminBadRequest = "BADREQUEST" // the request is malformed (400)
	CodeAdminNotFound   = "NOTFOUND"   // no such member (404)
	CodeAdminBadState   = "BADSTATE"   // the node is in no state to make the change (409)
	CodeAdminBusy       = "BUSY"       // another topology change is in progress (409)
	CodeAdminLastNode   = "LASTNODE"   // the change would leave no node (409)
	CodeAdminNodeUp     = "NODEUP"     // a live node cannot be removed (409)
)
