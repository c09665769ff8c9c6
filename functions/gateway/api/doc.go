// Package api holds the gateway's request and answer bodies, shared by the
// gateway (functions/gateway) and its Go client (functions/gateway/client).
package api
