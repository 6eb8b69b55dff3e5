// pause holds a pod's namespaces open until the kubelet stops the sandbox (built here: no registry serves one).
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go reapChildren()
	<-stop
}

// reapChildren collects zombies, as pid 1 of a shared pid namespace must.
func reapChildren() {
	children := make(chan os.Signal, 8)
	signal.Notify(children, syscall.SIGCHLD)
	for range children {
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
