# underlink-scheduler: the UnderlayNetwork plugin (scheduler/), its command and its benchmark.

.PHONY: test-scheduler bench-scheduler

test-scheduler: ## Unit tests of the scheduler plugin, then its integration tests (real binary, real apiserver)
	go test ./scheduler/... ./cmd/underlink-scheduler/...
	go test -tags integration -run 'TestScheduler' ./test/integration/

bench-scheduler: ## Scheduling throughput, default profile vs underlink-scheduler, 1000 nodes x 3000 pods (one run, a table)
	go test -tags integration -run '^$$' -bench BenchmarkSchedulingThroughput -benchtime 1x -timeout 40m ./test/bench/scheduler/
