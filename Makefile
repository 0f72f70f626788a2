# pvtime: the harness around the linux/ and qemu/ patch series.
# `make help` lists the targets.

SHELL := /bin/sh
S := scripts

.PHONY: help deps fetch tree-linux tree-qemu export-linux export-qemu \
	qemu kernel initramfs demo check stress bench clean

help:
	@echo "make deps          install the Debian 12 packages the harness needs"
	@echo "make fetch         fetch and verify the Linux 7.1.8 and QEMU 10.2.2 bases"
	@echo "make tree-linux    build/tree-linux: base + one commit per linux/ patch"
	@echo "make tree-qemu     build/tree-qemu:  base + one commit per qemu/ patch"
	@echo "make export-linux  write build/tree-linux's commits back to linux/"
	@echo "make export-qemu   write build/tree-qemu's commits back to qemu/"
	@echo "make qemu|kernel|initramfs   cached, incremental builds"
	@echo "make demo          boot a 2-vCPU guest and show its timer devices"
	@echo "make check         gates, builds, harness self-tests, the guest matrix"
	@echo "make stress        the long counts of the robustness figures (tests/stress)"
	@echo "make bench         PV device vs stock timers: figures, plots (BENCH_QUICK=1: reduced)"

deps:
	@$(S)/deps.sh

fetch:
	@$(S)/fetch.sh

tree-linux tree-qemu: fetch
	@$(S)/tree.sh $(@:tree-%=%)

export-linux export-qemu:
	@$(S)/tree.sh export $(@:export-%=%)

qemu: fetch
	@$(S)/build-qemu.sh

kernel: fetch
	@$(S)/build-kernel.sh

initramfs: fetch
	@$(S)/build-initramfs.sh "$$($(S)/build-kernel.sh)"

demo: fetch
	@$(S)/demo.sh

check:
	@$(S)/check.sh

stress: fetch
	@$(S)/stress.sh

bench: fetch
	@/usr/bin/python3 $(S)/bench.py

clean:
	rm -rf build
