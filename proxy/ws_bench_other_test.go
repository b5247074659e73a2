//go:build !unix

package proxy

// processCPU returns 0: getrusage is a unix call, and the benchmarks'
// cpu-ns/op means nothing here.
func processCPU() int64 { return 0 }
