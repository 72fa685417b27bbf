# underlink-scheduler: the UnderlayNetwork plugin (scheduler/), its command and its benchmark.

.PHONY: test-scheduler bench-scheduler

BENCH_TARGETS += bench-scheduler

test-scheduler: ## Unit tests of the scheduler plugin, then its integration tests (real binary, real apiserver)
	$(GO) test ./scheduler/... ./cmd/underlink-scheduler/...
	$(GO) test -tags integration ./test/integration/scheduler/

bench-scheduler: ## Scheduling throughput, default profile vs underlink-scheduler, 1000 nodes x 3000 pods (one run, a table)
	$(GO) test -tags integration -run '^$$' -bench BenchmarkSchedulingThroughput -benchtime 1x -timeout 40m ./test/bench/scheduler/
