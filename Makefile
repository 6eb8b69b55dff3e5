# pagestream: real-time page-event analytics on a Kafka-API broker.
# Targets are thin: the logic lives in npm scripts and deploy/ scripts.

SHELL := /usr/bin/env bash
.DEFAULT_GOAL := help
TOPIC ?= R1
IMAGE ?= pagestream:dev
comma := ,

# The image's Node (24) first on PATH when the system's is older, so tests and local runs use the runtime users
# get; fetched once into the cache folder (deploy/local/setup.sh runtime). Not for `make help`.
ifneq ($(filter-out help,$(or $(MAKECMDGOALS),help)),)
NODE_BIN := $(shell deploy/local/setup.sh runtime)
ifneq ($(NODE_BIN),)
export PATH := $(NODE_BIN):$(PATH)
endif
endif

##@ General

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_-]+:.*?##/ { printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Run

.PHONY: up
up: ## Run the whole system and print the URLs (Docker compose when an engine answers and its images can be had, local processes otherwise)
	@if [ "$$(deploy/local/docker.sh mode)" = docker ]; then deploy/local/docker.sh up; else $(MAKE) --no-print-directory up-local; fi

.PHONY: up-local
up-local: deps build ## Run the broker and every role as local processes, without Docker
	@deploy/local/broker.sh up
	@deploy/local/run.sh up

.PHONY: down
down: ## Stop everything `make up` started (broker data is deleted)
	@if deploy/local/docker.sh running; then deploy/local/docker.sh down; fi
	@deploy/local/run.sh down
	@deploy/local/broker.sh down

.PHONY: status
status: ## Show which roles run and whether they are ready
	@deploy/local/run.sh status

.PHONY: logs
logs: ## Follow the logs (ROLE=producer for one)
	@if deploy/local/docker.sh running; then deploy/local/docker.sh logs $(ROLE); else deploy/local/run.sh logs $(ROLE); fi

.PHONY: broker
broker: ## Start only the local broker on localhost:9092
	@deploy/local/broker.sh up

.PHONY: broker-down
broker-down: ## Stop the local broker and delete its data
	@deploy/local/broker.sh down

.PHONY: produce
produce: build ## Send stdin lines (PageEvent JSON) to TOPIC, like kafka-console-producer (RAW=1: as they are)
	@node services/console/dist/produce.js $(if $(RAW),--raw) $(TOPIC)

.PHONY: consume
consume: build ## Print the records of TOPIC, like kafka-console-consumer (FROM_BEGINNING=1 to read it all)
	@node services/console/dist/consume.js $(if $(FROM_BEGINNING),--from-beginning) $(TOPIC)

##@ Develop

.PHONY: deps
deps: ## Install system packages and npm dependencies (idempotent)
	@deploy/local/setup.sh system
	@deploy/local/setup.sh node

.PHONY: build
build: deps ## Compile every TypeScript package
	@npm run --silent build

.PHONY: test
test: build ## Run all tests against a real broker (installs what they need)
	@deploy/local/setup.sh system --test
	@deploy/local/broker.sh jars
	@deploy/local/setup.sh helm >/dev/null
	@deploy/local/setup.sh prometheus >/dev/null
	@deploy/local/setup.sh otelcol >/dev/null
	@npm run --silent typecheck
	@npm run --silent lint
	@npm test -- --no-allow-incomplete-coverage

.PHONY: e2e
e2e: build ## Run the container tests: Docker engine, bases, image, compose end to end (installs what is missing)
	@deploy/local/setup.sh system --test
	@deploy/local/broker.sh jars
	@deploy/local/setup.sh docker
	@IMAGE=$(IMAGE) deploy/local/docker.sh image
	@test/compose/broker-image.sh >/dev/null
	@# the roles run in containers, so coverage of this process says nothing
	@IMAGE=$(IMAGE) npx tap --disable-coverage --timeout=1800 test/e2e/*.e2e.ts

.PHONY: bench
bench: build ## Run the benchmark rows against their anchors on the local broker (ROW=publish,latency for some)
	@deploy/local/broker.sh up
	@# the fanout row holds 10,000 sockets in one process
	@ulimit -n 65536 2>/dev/null || ulimit -n "$$(ulimit -Hn)"; \
	  KAFKA_BROKERS="$${KAFKA_BROKERS:-localhost:$${KAFKA_PORT:-9092}}" npm run --silent bench -- $(subst $(comma), ,$(ROW))

.PHONY: chaos
chaos: build ## Run the fault drills on a broker of their own, print their table (DRILL=name for one, EVENTS=n)
	@deploy/local/broker.sh jars
	@node chaos/run.mjs $(DRILL) $(if $(EVENTS),--events $(EVENTS))

.PHONY: clean
clean: ## Remove build output
	@npm run --silent clean

##@ Containers and Kubernetes

.PHONY: image
image: ## Build the one image of every role (IMAGE=pagestream:dev); on local bases where no registry answers
	@deploy/local/setup.sh docker
	@IMAGE=$(IMAGE) deploy/local/docker.sh image

.PHONY: base-images
base-images: ## Build the image's Debian + Node 24 bases here, without a registry (make image does when it must)
	@deploy/local/setup.sh docker
	@deploy/local/base-images.sh build >/dev/null

.PHONY: kind-up
kind-up: image ## kind cluster with ingress-nginx, the image loaded, the chart installed and tested
	@IMAGE=$(IMAGE) deploy/kind/cluster.sh up

.PHONY: helm-install
helm-install: ## Install or upgrade the chart in the current kubectl context (VALUES=file, IMAGE=repo:tag)
	@IMAGE=$(IMAGE) deploy/kind/cluster.sh install

.PHONY: port-forward
port-forward: ## Forward the dashboard of the installed release to http://localhost:8080
	@deploy/kind/cluster.sh port-forward

.PHONY: kind-down
kind-down: ## Delete the kind cluster
	@deploy/kind/cluster.sh down

.PHONY: k8s-up
k8s-up: image ## Single-node cluster of host processes built here (deploy/local/k8s), the chart installed and tested
	@deploy/local/k8s/cluster.sh up >/dev/null
	@IMAGE=$(IMAGE) deploy/local/k8s/cluster.sh install

.PHONY: k8s-down
k8s-down: ## Stop the single-node cluster and remove its state (its built programs stay cached)
	@deploy/local/k8s/cluster.sh down

.PHONY: k8s-test
k8s-test: build image ## The chart on the single-node cluster: install, helm test, port-forward, ingress, pod deaths
	@deploy/local/setup.sh system --test
	@deploy/local/setup.sh helm >/dev/null
	@deploy/local/broker.sh jars
	@test/compose/broker-image.sh >/dev/null
	@# the cluster's programs are built before tap, so a first build (half an hour here) is not the test's time
	@deploy/local/k8s/build.sh >/dev/null
	@PAGESTREAM_K8S_TEST=1 PAGESTREAM_TEST_BROKERS=in-cluster npx tap --disable-coverage --timeout 2700 \
	  test/k8s/cluster.test.ts
