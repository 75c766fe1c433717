#!/usr/bin/env bash
# Regenerates proto/gen/ from proto/tunefleet/v1/*.proto with protoc (Debian's
# protobuf-compiler) and ts-proto. env=both makes `bytes` fields Uint8Array
# views into the received buffer (zero-copy), where env=node would copy them
# into Buffers. `npm run proto` runs this; never edit gen/.
set -euo pipefail
cd "$(dirname "$0")"
out=${1:-gen}
rm -rf "$out" && mkdir -p "$out"
protoc --plugin=../node_modules/.bin/protoc-gen-ts_proto \
  --ts_proto_out="$out" \
  --ts_proto_opt=outputServices=grpc-js,env=both,esModuleInterop=true,forceLong=number,useOptionals=none,oneof=unions-value \
  tunefleet/v1/tunefleet.proto
