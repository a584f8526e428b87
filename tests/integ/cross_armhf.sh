#!/usr/bin/env bash
# The cross test of cross_arm64.sh for 32-bit Raspberry Pi OS (armhf, qemu-arm).
exec bash "$(dirname "$0")/cross_arm64.sh" armhf
