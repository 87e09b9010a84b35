//go:build unix && !linux

package pgtest

import "syscall"

type credential = syscall.Credential

// sysProcAttr runs a process as cred (nil: as this process's user).
func sysProcAttr(cred *credential, _ bool) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred}
}
