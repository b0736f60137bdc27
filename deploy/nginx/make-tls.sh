#!/usr/bin/env bash
# A local certificate authority and a server certificate signed by it, for compose's nginx:
#   deploy/nginx/make-tls.sh [DIR] [HOSTS]     (make tls; DIR deploy/tls, HOSTS localhost,127.0.0.1)
# Writes DIR/ca.crt (trust this one: curl --cacert, SSL_CERT_FILE), ca.key, server.crt, server.key.
# An existing certificate is kept; delete DIR's files to make new ones.
set -euo pipefail

DIR="${1:-deploy/tls}"
HOSTS="${2:-localhost,127.0.0.1}"
DAYS_CA=3650
DAYS_SERVER=397  # what browsers accept for a server certificate

command -v openssl >/dev/null || { echo "tls: openssl is required (Debian: openssl)" >&2; exit 2; }
mkdir -p "$DIR"
if [[ -s "$DIR/server.crt" && -s "$DIR/server.key" && -s "$DIR/ca.crt" ]]; then
  echo "tls: keeping the certificate in $DIR (delete its files for a new one)"
  exit 0
fi

san=""
IFS=',' read -ra names <<<"$HOSTS"
for name in "${names[@]}"; do
  if [[ "$name" =~ ^[0-9.]+$ || "$name" == *:* ]]; then kind=IP; else kind=DNS; fi
  san="${san:+$san,}$kind:$name"
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
umask 077
ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)

openssl req -x509 "${ec[@]}" -days "$DAYS_CA" -subj "/CN=Lobe local CA" \
  -addext "basicConstraints=critical,CA:TRUE,pathlen:0" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -keyout "$work/ca.key" -out "$work/ca.crt" 2>/dev/null
openssl req -new "${ec[@]}" -subj "/CN=${names[0]}" -keyout "$work/server.key" -out "$work/server.csr" 2>/dev/null
printf '%s\n' "subjectAltName=$san" "basicConstraints=critical,CA:FALSE" \
  "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" >"$work/server.ext"
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" -CAcreateserial \
  -days "$DAYS_SERVER" -sha256 -extfile "$work/server.ext" -out "$work/server.crt" 2>/dev/null

install -m 0644 "$work/ca.crt" "$work/server.crt" "$DIR/"
# nginx reads the key as root in its container; nothing else needs it.
install -m 0600 "$work/ca.key" "$work/server.key" "$DIR/"
echo "tls: wrote $DIR/server.crt for $san, signed by $DIR/ca.crt"
