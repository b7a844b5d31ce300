module shm-webhook/bench/goref

go 1.19
