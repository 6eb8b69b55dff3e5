#!/usr/bin/env bash
# Builds the test broker image (kafka.Dockerfile) once per Kafka version and prints its tag.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
local_dir=$here/../../deploy/local
cache=${PAGESTREAM_CACHE:-$HOME/.cache/pagestream}
kafka_version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$local_dir/pom.xml")
tag=pagestream-test/kafka:$kafka_version
export DOCKER_BUILDKIT=${DOCKER_BUILDKIT:-0}

if ! docker image inspect "$tag" >/dev/null 2>&1; then
  "$local_dir/broker.sh" jars
  base=$("$local_dir/base-images.sh" debian)
  context=$(mktemp -d "${TMPDIR:-/tmp}/pagestream-kafka-image.XXXXXX")
  trap 'rm -rf "$context"' EXIT
  mkdir -p "$context/cache" "$context/local"
  cp -a "$cache/kafka-$kafka_version" "$context/cache/"
  cp "$local_dir/broker.sh" "$local_dir/pom.xml" "$local_dir/log4j2.properties" "$context/local/"
  echo "broker-image: building $tag" >&2
  docker build --force-rm --quiet --build-arg "BASE_IMAGE=$base" -t "$tag" -f "$here/kafka.Dockerfile" "$context" >/dev/null
fi
echo "$tag"
