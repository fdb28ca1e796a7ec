#!/bin/sh
# Takes motoserver/moto's arguments (-H HOST -p PORT) and runs deploy/local/moto-s3.py.
host=0.0.0.0 port=5000
while [ $# -gt 0 ]; do
  case "$1" in
    -H) host="$2"; shift 2 ;;
    -p) port="$2"; shift 2 ;;
    *) echo "s3-entrypoint: unknown argument $1" >&2; exit 64 ;;
  esac
done
exec python3 /usr/local/lib/moto-s3.py "$host" "$port"
