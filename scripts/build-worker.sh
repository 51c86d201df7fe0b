#!/usr/bin/env bash
#! Builds the worker with worker-build (wrangler.toml's [build] command runs this).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT/worker"
worker-build --release
