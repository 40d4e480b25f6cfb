#!/bin/sh
# Creates the overlay's secret files once (never committed): the HMAC key
# (32 random bytes, base64) and the bearer token of /metrics. Keep the key:
# the same key gives the same pseudonyms, and losing it breaks the link
# between the store's pseudonyms and new ones.
set -eu
cd "$(dirname "$0")"
umask 077
mkdir -p secrets
for name in vigie-key metrics-token; do
  if [ ! -s "secrets/$name" ]; then
    head -c 32 /dev/urandom | base64 | tr -d '\n' > "secrets/$name"
    echo "created secrets/$name"
  fi
done
