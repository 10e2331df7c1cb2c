// Command native serves bench.Native, the plain net/http baseline that
// bench/http.sh measures the Lua handlers against.
//
//	go build -o /tmp/native ./bench/native && /tmp/native --listen 127.0.0.1:0
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/luahost/luahost/bench"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8009", "address to listen on (port 0: any free port)")
	flag.Parse()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "native:", err)
		os.Exit(1)
	}
	// The same line shape as luahost serve, so the script finds the port.
	fmt.Printf("native: serving on http://%s\n", ln.Addr())
	srv := &http.Server{Handler: bench.Native(), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintln(os.Stderr, "native:", srv.Serve(ln))
	os.Exit(1)
}
