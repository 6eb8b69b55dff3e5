#!/bin/sh
# The image's entry point: the first argument names the role, the rest go to it (e.g. --help).
#   docker run pagestream analytics | producer | supplier | consumer | transformer
set -eu

# where the image keeps the app; set it to run this script from a checkout
app=${PAGESTREAM_HOME:-/app}
role=${1:-}
case $role in
  analytics) port=8080 ;;
  producer) port=8081 ;;
  supplier) port=8082 ;;
  consumer) port=8083 ;;
  transformer) port=8084 ;;
  *)
    echo "pagestream: unknown role '$role'; run the image with one of: analytics producer supplier consumer transformer" >&2
    exit 64
    ;;
esac
shift

# The role's own default port, exported so the HEALTHCHECK (healthcheck.mjs) finds it.
export HTTP_PORT="${HTTP_PORT:-$port}"
exec node --enable-source-maps "$app/services/$role/dist/server.js" "$@"
