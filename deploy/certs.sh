#!/usr/bin/env bash
# Writes the certificates deploy/ needs into deploy/certs/ (or $1): a CA,
# the gateway's certificate and the agents' certificate. Existing files are
# kept, so running it again changes nothing; delete the folder to rotate.
#
#   deploy/certs.sh && kubectl apply -k deploy/
set -euo pipefail
out=${1:-"$(dirname "$0")/certs"}
days=${NODEDEBUG_CERT_DAYS:-365}
mkdir -p "$out"
cd "$out"
umask 077

if [[ ! -f ca.crt ]]; then
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout ca.key -out ca.crt -days "$days" -subj "/CN=nodedebug-ca" 2>/dev/null
fi

# issue NAME CN SAN USAGE
issue() {
	local name=$1 cn=$2 san=$3 usage=$4
	[[ -f $name.crt ]] && return
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$name.key" -out "$name.csr" -subj "/CN=$cn" 2>/dev/null
	openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial \
		-out "$name.crt" -days "$days" 2>/dev/null -extfile <(printf '%s\n' \
		"subjectAltName=$san" "extendedKeyUsage=$usage" "keyUsage=digitalSignature")
	rm -f "$name.csr"
}

# The gateway serves the API server under its Service name, and is the
# only client the agents accept (by this common name).
issue gateway nodedebug-gateway \
	"DNS:nodedebug-gateway.nodedebug.svc,DNS:nodedebug-gateway.nodedebug.svc.cluster.local" \
	"serverAuth,clientAuth"
issue agent nodedebug-agent "DNS:nodedebug-agent" "serverAuth"
echo "certificates in $out"
