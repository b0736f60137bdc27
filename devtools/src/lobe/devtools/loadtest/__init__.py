"""`lobe loadtest`: load against the chat path (HTTP gateway or straight onto the bus), every answer
validated, CPU and memory of every suite process sampled, reports as JSON, markdown and plots.

Modules, one role each: `shape` (what the fake upstream answers, hence what every answer must be),
`upstream` (the fast fake OpenAI server), `http_client` / `bus_client` (one request each way),
`load` (closed and open loop), `stats`, `processes` (psutil), `machine`, `report`, `plots`,
`profile` (py-spy), `command` (the CLI), `suite` and `bench` (the standard set on `lobe dev`).
"""
