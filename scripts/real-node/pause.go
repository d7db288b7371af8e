// pause is the sandbox process of every pod on the local real node: what
// registry.k8s.io/pause is elsewhere, built here because no registry is
// reachable. It holds the pod's namespaces open, reaps children re-parented to
// it (pods that share their PID namespace), and exits on SIGINT or SIGTERM.
// Built static (CGO_ENABLED=0) into a FROM scratch image by real-node.sh.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var status syscall.WaitStatus
			if pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
	}
}
