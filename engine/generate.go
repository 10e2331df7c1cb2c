package engine

// The typed invokers (invokers_gen.go) and the CLI's call table are
// generated from the callback catalogue.
//go:generate go run ../internal/gen/cmd
