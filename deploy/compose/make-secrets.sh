#!/bin/sh
# Creates the compose stack's two secrets once: the HMAC key (32 random
# bytes, base64) and the bearer token of /metrics. secrets/ is private to
# you (0700); the files are readable inside the containers, which run as
# other users. Keep the key: the same key gives the same pseudonyms.
set -eu
cd "$(dirname "$0")"
mkdir -p secrets
chmod 700 secrets
for name in vigie-key metrics-token; do
  if [ ! -s "secrets/$name" ]; then
    head -c 32 /dev/urandom | base64 | tr -d '\n' > "secrets/$name"
    chmod 644 "secrets/$name"
    echo "created secrets/$name"
  fi
done
