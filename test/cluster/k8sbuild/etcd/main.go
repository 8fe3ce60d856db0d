// Command etcd is the etcd server for the integration cluster, built from
// the published etcd module so no release download is needed.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
