# The `redpanda` service of redpanda-compose.yml, replaced for tests where Redpanda's image cannot be pulled:
# Apache Kafka in KRaft mode from the jars deploy/local/broker.sh resolves, started by that same script.
# Built by test/compose/broker-image.sh from a context it assembles (the script, its pom and the jars).
ARG BASE_IMAGE=pagestream-base/debian:bookworm
FROM ${BASE_IMAGE}
# the JRE's set-up links its man page into a folder the slim base does not have
RUN mkdir -p /usr/share/man/man1 \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends openjdk-17-jre-headless \
 && rm -rf /var/lib/apt/lists/*
COPY cache /opt/pagestream/cache
COPY local /opt/pagestream/local
# the data folder where Redpanda keeps its own, so the compose file's volume holds the broker's log
RUN useradd --uid 101 --user-group --no-create-home kafka \
 && mkdir -p /var/lib/redpanda/data && chown kafka:kafka /var/lib/redpanda/data
USER 101:101
ENV PAGESTREAM_CACHE=/opt/pagestream/cache \
    BROKER_ENGINE=kafka \
    BROKER_DATA=/var/lib/redpanda/data \
    KAFKA_PORT=9092
EXPOSE 9092 29092
ENTRYPOINT ["/opt/pagestream/local/broker.sh"]
CMD ["run"]
