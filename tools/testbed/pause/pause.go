// The sandbox ("pause") process of the testbed's real node: it holds a Pod's namespaces, reaps
// the zombies it inherits as the Pod's PID 1 and exits on SIGINT or SIGTERM. Built as a static
// binary by tools/testbed/realimages.py and imported into containerd as localhost/pause:testbed.
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
			pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
