// Command mkimage builds a FROM-scratch image from a Go program of this
// repository, for demos and benchmarks on machines without a registry:
//
//	go run ./internal/runtime/docker/dockertest/mkimage ./testdata/greeter greeter:demo
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/wisp-run/wisp/internal/runtime/docker/dockertest"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: mkimage PACKAGE TAG   (for example ./testdata/greeter greeter:demo)")
		os.Exit(2)
	}
	id, err := dockertest.BuildGoImage(context.Background(), os.Args[1], os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
	fmt.Println(id)
}
