package daemon

import (
	"net"
	"testing"
)

func TestExposed(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8081": false, "127.0.0.2:8081": false, "[::1]:8081": false,
		"0.0.0.0:8081": true, "[::]:8081": true, "192.0.2.7:8081": true, "[2001:db8::1]:8081": true,
	} {
		tcp, err := net.ResolveTCPAddr("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := exposed(tcp); got != want {
			t.Errorf("exposed(%s) = %v, want %v", addr, got, want)
		}
	}
}
