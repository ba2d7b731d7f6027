#!/usr/bin/env bash
# The docker route, opt-in: `sam local invoke` runs each built function in a container as Lambda does, with
# the files in events/ and the variables in an env file (events/env.json, filled in from a deployed stack's
# outputs: see docs/deploying.md#reproducing-the-container-locally).
#
# Docker cannot pull Lambda's base image here, so this builds a stand-in under the tag `sam` looks for,
# public.ecr.aws/lambda/python:3.13-x86_64, from Debian's packages: a debootstrap root file system, this
# machine's Python 3.13 at the path it was built for, and `awslambdaric` (from the artifact tools' lock) as the
# runtime interface client behind /var/runtime/bootstrap. `sam` adds its own emulator and the built layer on top.
#
# Installing docker.io and debootstrap and running dockerd need root: without it, or without apt-get, this says
# so and exits 0 having done nothing.
#
# Usage: local/sam_local.sh BUILD_DIR SAM_CLI PYTHON313 [ENV_FILE]
set -euo pipefail

build_dir=$1 sam_cli=$2 python313=$3 env_file=${4:-events/env.json}
artifact=$(dirname "$build_dir")
image=public.ecr.aws/lambda/python:3.13-x86_64

sam() {
	PATH="$(dirname "$python313"):$PATH" SAM_CLI_TELEMETRY=0 "$sam_cli" "$@"
}

skip() {
	echo "sam-local skipped: $*"
	exit 0
}

[ "$(id -u)" = 0 ] || skip "it needs root (to install docker.io and debootstrap, and to run dockerd)"
if ! command -v dockerd > /dev/null || ! command -v debootstrap > /dev/null; then
	command -v apt-get > /dev/null || skip "it installs docker.io and debootstrap with apt-get, which this machine lacks"
	apt-get install -y -q docker.io debootstrap > "$artifact/apt.log" 2>&1 ||
		skip "apt-get could not install docker.io and debootstrap (see $artifact/apt.log)"
fi
if ! docker info > /dev/null 2>&1; then
	nohup dockerd > "$artifact/dockerd.log" 2>&1 &
	for _ in $(seq 120); do docker info > /dev/null 2>&1 && break || sleep 1; done
	docker info > /dev/null 2>&1 || skip "dockerd did not start (see $artifact/dockerd.log)"
fi

if ! docker image inspect "$image" > /dev/null 2>&1; then
	rootfs=$artifact/lambda-rootfs
	rm -rf "$rootfs"
	echo "sam-local: building $image from Debian's packages (about a minute, once)"
	debootstrap --variant=minbase --include=libssl3,libffi8,zlib1g,libbz2-1.0,liblzma5,libsqlite3-0,ca-certificates \
		bookworm "$rootfs" http://deb.debian.org/debian > "$artifact/debootstrap.log"
	# The interpreter at the path it was built for (its rpath), with its standard library and nothing installed.
	prefix=$("$python313" -c 'import sys; print(sys.base_prefix)')
	mkdir -p "$rootfs$prefix/bin" "$rootfs$prefix/lib" "$rootfs/var/lang/bin" "$rootfs/var/runtime" "$rootfs/var/task"
	cp -a "$prefix"/bin/python3.13 "$rootfs$prefix/bin/"
	cp -a "$prefix"/lib/libpython3.13* "$rootfs$prefix/lib/" 2> /dev/null || true
	tar -C "$prefix/lib" --exclude=site-packages --exclude=test --exclude=__pycache__ -cf - python3.13 |
		tar -C "$rootfs$prefix/lib" -xf -
	ln -s "$prefix/bin/python3.13" "$rootfs/var/lang/bin/python3.13"
	cp -a "$artifact/runtime-client/." "$rootfs/var/runtime/"
	cat > "$rootfs/var/runtime/bootstrap" << 'EOF'
#!/bin/sh
# What Lambda's Python images run: the runtime interface client, asking the runtime API for the handler's work.
export PYTHONPATH=/var/runtime:/var/task:/opt/python
exec /var/lang/bin/python3.13 -S -m awslambdaric "$_HANDLER"
EOF
	chmod +x "$rootfs/var/runtime/bootstrap"
	tar -C "$rootfs" -cf - . | docker import \
		--change 'ENV LANG=C.UTF-8 LAMBDA_TASK_ROOT=/var/task LAMBDA_RUNTIME_DIR=/var/runtime' \
		--change 'ENV PATH=/var/lang/bin:/usr/local/bin:/usr/bin:/bin' \
		--change 'WORKDIR /var/task' - "$image" > /dev/null
	rm -rf "$rootfs"
fi

# One invocation per event, as `sam local invoke` runs them: a container per invocation, the function's answer
# printed. What an invocation does with AWS and Encord depends on the env file: placeholders fail fast and the
# function says so in its log; a deployed stack's outputs make it run against that stack.
invoke() {
	echo "sam-local: $1 with $2"
	sam local invoke --template "$build_dir/template.yaml" --skip-pull-image --env-vars "$env_file" \
		--event "$2" "$1"
}
invoke ValidateAndChunkFunction events/s3-object-created.json
invoke ImportLabelsFunction events/sqs-chunk.json
invoke RollbackFunction events/rollback.json
invoke ValidationFailuresFunction events/sqs-validation-failure.json
echo "sam-local: each function ran in the container and answered above (with the placeholders of events/env.json" \
	"its AWS calls fail: there is no stack to reach). To serve them to boto3 or the AWS CLI on http://127.0.0.1:3001:" \
	"sam local start-lambda --template $build_dir/template.yaml --skip-pull-image --env-vars $env_file"
