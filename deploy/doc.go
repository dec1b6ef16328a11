// Package deploy holds no code: its tests check the files that deploy stickyseat (the
// Dockerfile, docker-compose.yml with the HAProxy files under deploy/compose, and the systemd
// unit in examples/systemd) without a Docker engine or a running systemd.
package deploy
