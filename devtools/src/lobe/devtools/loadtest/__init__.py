"""`lobe loadtest`: load against the chat path (HTTP gateway or straight onto the bus), every answer
validated, CPU and memory of every suite process sampled, reports as JSON, markdown and plots.

Modules, one role each: `shape` (what the fake upstream answers, hence what every answer must be),
`upstream` and `wire` (the fast fake OpenAI server and its bytes), `outcome` (one request's result
and the answer check), `http_client` / `bus_client` (one request each way), `load` (closed and
open loop), `measure` (levels with the processes read around them), `stats`, `processes`
(psutil), `machine`, `report`, `plots`, `profile` (py-spy), `command` (the CLI), `suite`, `bench`
and `bench_doc` / `perf_doc` (the standard sets on `lobe dev`, into docs/performance.md).
"""
