package pgtest

import "syscall"

type credential = syscall.Credential

// sysProcAttr runs a process as cred (nil: as this process's user) and,
// with dieWithParent, has the kernel stop it when the test binary ends,
// however it ends. SIGQUIT is PostgreSQL's immediate shutdown.
func sysProcAttr(cred *credential, dieWithParent bool) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Credential: cred}
	if dieWithParent {
		a.Pdeathsig = syscall.SIGQUIT
	}
	return a
}
