// Command underlink-testapp is the seed scenario's test application in place of nginx: an HTTP server that
// answers every GET or HEAD with `HTTP/1.1 200 OK` and a body naming itself (its hostname, i.e. the pod
// name) and its pod IP, so a cross-cluster curl shows which pod answered.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	// Installed as ip, ping and curl too (tools.go): the seed's in-pod checks.
	if code, ok := runTool(); ok {
		os.Exit(code)
	}
	listen := flag.String("listen", ":80", "address to serve HTTP on")
	flag.Parse()
	name, _ := os.Hostname()
	ip := os.Getenv("POD_IP") // the downward API's status.podIP, when the pod sets it
	if ip == "" {
		ip = firstAddress()
	}
	srv := &http.Server{Addr: *listen, Handler: handler(name, ip), ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	fmt.Printf("underlink-testapp: %s (%s) serving on %s\n", name, ip, *listen)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "underlink-testapp:", err)
		os.Exit(1)
	}
}

// handler answers every path: GET and HEAD with 200 and "underlink-testapp <name> <ip>", anything else 405.
func handler(name, ip string) http.Handler {
	body := fmt.Sprintf("underlink-testapp %s %s\n", name, ip)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Server", "underlink-testapp")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = w.Write([]byte(body))
		}
	})
}

// firstAddress is the first global unicast address of the pod (eth0's, in a pod with one network).
func firstAddress() string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "unknown"
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.IsGlobalUnicast() {
			return n.IP.String()
		}
	}
	return "unknown"
}
