// Command target is the app in the distroless test image. It runs until
// SIGTERM, re-reads its config on SIGHUP, and with -crash (or TARGET_CRASH=1)
// leaves an error file behind and exits 3, like a crash-looping app.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// crashMessage is what a crashing target writes to its error file.
const crashMessage = "fatal: simulated crash: config check failed\n"

// crashExitCode is the exit code tests expect from a crashing target.
const crashExitCode = 3

func main() {
	os.Exit(run())
}

func run() int {
	config := flag.String("config", "/etc/app.conf", "config file to load")
	crash := flag.Bool("crash", os.Getenv("TARGET_CRASH") == "1", "write the error file and exit 3")
	errorFile := flag.String("error-file", "/tmp/last-error", "where a crash leaves its message")
	flag.Parse()

	if *crash {
		return crashNow(*errorFile)
	}

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)

	fmt.Printf("target running as uid %d\n", os.Getuid())
	for sig := range sigs {
		if sig != syscall.SIGHUP {
			fmt.Println("target stopping")
			return 0
		}
		reload(*config)
	}
	return 0
}

func reload(path string) {
	data, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "reload config %s: %v\n", path, err)
		return
	}
	fmt.Printf("reloaded config: %d bytes\n", len(data))
}

func crashNow(errorFile string) int {
	if err := os.WriteFile(errorFile, []byte(crashMessage), 0o644); err != nil {
		fmt.Fprintf(os.Stderr, "write error file %s: %v\n", errorFile, err)
	}
	fmt.Fprint(os.Stderr, crashMessage)
	return crashExitCode
}
