"""Fakes of the outside APIs: real HTTP servers on loopback, port 0, speaking the real
wire format, each with a script (`enqueue`) and a record (`history`)."""
