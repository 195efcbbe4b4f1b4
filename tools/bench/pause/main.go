// pause stands in for a Kubernetes component in the audit benchmark: it is started under the
// component's name (a symbolic link), with the component's command line, and waits to be killed.
// It ignores its arguments, so every flag stays visible in /proc and `ps` exactly as given.
package main

import "time"

func main() {
	for {
		time.Sleep(time.Hour)
	}
}
